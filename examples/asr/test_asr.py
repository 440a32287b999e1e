"""asr: real pocketsphinx sessions in-process (partials sync, final async), and its test cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ase_serving.errors import AseError
from ase_serving.loader.host import EngineHost
from ase_serving.protocol.items import DataItem, Request, Status
from ase_serving.wrapper import load_plugin
from examples.support import audio_item, failed_cases, loader_test, run_session, serve, start_host
from tests.support import LoaderProcess

pytest.importorskip("pocketsphinx")

AUDIO = Path(__file__).parent / "tests"
FRAME = 3200  # 100 ms of 16 kHz 16-bit mono


@pytest.fixture(scope="module")
def host() -> Iterator[EngineHost]:
    h = start_host("asr")
    yield h
    h.fini()


def frames_of(pcm: bytes, size: int = FRAME) -> tuple[Request, list[tuple[int, list[DataItem]]]]:
    """The first request (first chunk, status 0) and the later frames (the last has status 2)."""
    chunks = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    first = Request(sid="asr-test", status=Status.BEGIN, items=[audio_item(chunks[0], Status.BEGIN)])
    later = [(Status.CONTINUE, [audio_item(c, Status.CONTINUE)]) for c in chunks[1:-1]]
    later.append((Status.END, [audio_item(chunks[-1], Status.END)]))
    return first, later


@pytest.mark.timeout(60)
def test_hello_world_partials_then_final_by_callback(host: EngineHost) -> None:
    first, later = frames_of((AUDIO / "hello_world.pcm").read_bytes())
    run = run_session(host, first, later, results="async")
    assert run.code == 0, run.message
    texts = run.texts("result")
    partials = [t for s, t in texts if s == 1]
    assert partials, "no partial result while streaming"
    assert len(set(partials)) == len(partials), "a partial was sent although the text had not changed"
    assert texts[-1] == (2, "hello world")
    assert [s for s, _ in texts].count(2) == 1
    # Partials come from wrapperRead, the final from a callback thread.
    assert {kind for kind, items in run.batches if any(i.status == 1 for i in items)} == {"read"}
    assert run.batches[-1][0] == "push"
    assert run.destroy_code == 0


@pytest.mark.timeout(60)
def test_frame_size_does_not_change_the_text(host: EngineHost) -> None:
    pcm = (AUDIO / "coffee.pcm").read_bytes()
    finals = []
    for size in (FRAME, 4801):  # 4801: odd sizes split samples across frames
        run = run_session(host, *frames_of(pcm, size), results="async")
        assert run.code == 0, run.message
        finals.append(run.texts("result")[-1])
    assert finals[0] == finals[1]
    assert finals[0][1].startswith("i would like")


@pytest.mark.timeout(60)
def test_sessions_have_their_own_decoders(host: EngineHost) -> None:
    """Two interleaved sessions: each gets the partials it gets alone (no shared decoder state)."""
    a_first, a_later = frames_of((AUDIO / "hello_world.pcm").read_bytes())
    b_first, b_later = frames_of((AUDIO / "coffee.pcm").read_bytes())
    alone = [t for s, t in run_session(host, a_first, a_later, results="async").texts("result") if s == 1]
    a_frames = [a_first.items] + [items for _, items in a_later[:-1]]
    b_frames = [b_first.items] + [items for _, items in b_later[:-1]]
    assert len(b_frames) > len(a_frames)
    ha, hb = host.create(a_first), host.create(b_first)
    a_partials = []
    try:
        for a_items, b_items in zip(a_frames, b_frames, strict=False):
            host.write(ha, a_items)
            host.write(hb, b_items)
            a_partials += [i.data.decode() for i in host.read(ha)]
            host.read(hb)
    finally:
        assert host.destroy(ha).code == host.destroy(hb).code == 0
    assert a_partials == alone


@pytest.mark.timeout(30)
def test_an_empty_session_is_an_error_from_the_callback(host: EngineHost) -> None:
    first = Request(status=Status.BEGIN, items=[audio_item(b"", Status.BEGIN)])
    run = run_session(host, first, [(Status.END, [audio_item(b"", Status.END)])], results="async")
    assert run.code == 20203
    assert "no audio received" in run.message
    assert run.destroy_code == 0


@pytest.mark.timeout(30)
def test_wrong_audio_format_is_refused(host: EngineHost) -> None:
    bad = audio_item(b"\0" * 320, Status.BEGIN)
    bad.desc["sample_rate"] = "8000"
    run = run_session(host, Request(status=Status.BEGIN, items=[bad]), [], results="async")
    assert run.code == 20202
    assert "16 kHz" in run.message


def test_a_destroyed_session_is_gone(host: EngineHost) -> None:
    first, _ = frames_of((AUDIO / "hello_world.pcm").read_bytes())
    handle = host.create(first)
    host.write(handle, first.items)
    assert host.destroy(handle).code == 0
    assert host.read(handle) == []
    with pytest.raises(AseError) as info:
        host.write(handle, first.items)
    assert info.value.code == 20204
    assert "no such session" in info.value.message


def test_a_missing_model_fails_at_init(tmp_path: Path) -> None:
    bad = EngineHost(load_plugin(Path(__file__).parent))
    with pytest.raises(AseError) as info:
        bad.init({"model_dir": str(tmp_path)})
    assert info.value.code == 20201
    assert "model_dir" in info.value.message


@pytest.mark.timeout(120)
def test_asectl_loader_test_passes() -> None:
    report = loader_test("asr")
    assert report["ok"], failed_cases(report)
    names = {c["name"] for c in report["cases"]}
    assert names == {"hello-world", "coffee", "empty-session", "wrong-sample-rate"}


@pytest.fixture(scope="module")
def loader() -> Iterator[LoaderProcess]:
    yield from serve("asr")


@pytest.mark.timeout(60)
def test_streamed_to_a_real_loader(loader: LoaderProcess) -> None:
    """100 ms frames: partials arrive while audio is still being sent, then the final text."""
    first, later = frames_of((AUDIO / "hello_world.pcm").read_bytes())
    session = loader.client().session(first)
    results = []
    half = len(later) // 2
    for status, items in later[:half]:
        session.send(status, items)
    # Before the rest of the audio is sent, a partial must come back: recognition is streaming.
    results.append(session.recv(timeout=10))
    for status, items in later[half:]:
        session.send(status, items)
    results += session.results(timeout=15)
    assert all(r is not None and r.code == 0 for r in results), results
    texts = [(r.status, i.status, i.data.decode()) for r in results if r for i in r.items]
    assert texts[0][1] == 1 and texts[0][2], texts  # a non-empty partial
    assert texts[-1] == (Status.END, 2, "hello world")
    assert [t[1] for t in texts].count(2) == 1


@pytest.mark.timeout(60)
def test_empty_session_error_from_the_callback_reaches_the_client(loader: LoaderProcess) -> None:
    session = loader.client().session(Request(status=Status.BEGIN, items=[audio_item(b"", Status.BEGIN)]))
    session.send(Status.END, [audio_item(b"", Status.END)])
    results = session.results(timeout=15)
    assert [r.code for r in results] == [20203]
    assert "no audio received" in results[0].message


def direct_streaming_text(pcm: bytes, size: int = FRAME) -> str:
    """pocketsphinx itself, fed the audio in chunks as a stream (no ASE code involved)."""
    from pocketsphinx import Decoder, get_model_path

    model = Path(get_model_path()) / "en-us"
    decoder = Decoder(
        hmm=str(model / "en-us"), lm=str(model / "en-us.lm.bin"), dict=str(model / "cmudict-en-us.dict")
    )
    decoder.start_utt()
    for i in range(0, len(pcm), size):
        decoder.process_raw(pcm[i : i + size], False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


@pytest.mark.timeout(180)
def test_through_the_gateway_over_websocket_equals_pocketsphinx_streaming(tmp_path: Path) -> None:
    import asyncio
    import base64

    import orjson
    from websockets.asyncio.client import connect

    from examples.support import through_gateway

    async def recognise(url: str, pcm: bytes) -> tuple[list[dict], int | None]:
        chunks = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
        got = []
        async with connect(url) as ws:
            for i, chunk in enumerate(chunks):
                status = 0 if i == 0 else (2 if i == len(chunks) - 1 else 1)
                entry = {
                    "encoding": "raw",
                    "sample_rate": 16000,
                    "status": status,
                    "audio": base64.b64encode(chunk).decode(),
                }
                body: dict = {"header": {"status": status}, "payload": {"audio": entry}}
                if i == 0:
                    body["header"]["app_id"] = "test"
                    body["parameter"] = {"asr": {}}
                await ws.send(orjson.dumps(body).decode())
            async for msg in ws:
                got.append(orjson.loads(msg))
            return got, ws.close_code

    with through_gateway("asr", tmp_path) as gw:
        for name in ("hello_world.pcm", "coffee.pcm"):
            pcm = (AUDIO / name).read_bytes()  # made by espeak-ng (tests/make_audio.sh)
            got, close = asyncio.run(recognise(f"{gw.ws_url}/v1/private/asr", pcm))
            assert close == 1000, got
            assert all(r["header"]["code"] == 0 for r in got), got
            final = got[-1]
            assert final["header"]["status"] == 2
            text = base64.b64decode(final["payload"]["result"]["text"]).decode()
            assert text == direct_streaming_text(pcm), name
            assert text  # pocketsphinx heard something
