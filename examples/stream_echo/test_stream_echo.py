"""stream_echo: sessions in-process (sync results), its test cases via `asectl loader test`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ase_serving.errors import AseError
from ase_serving.loader.host import EngineHost
from ase_serving.protocol.items import Request, Status
from examples.support import audio_item, failed_cases, loader_test, run_session, serve, start_host, text_item
from tests.support import LoaderProcess


@pytest.fixture(scope="module")
def host() -> Iterator[EngineHost]:
    h = start_host("stream_echo")
    yield h
    h.fini()


def first(text: str) -> Request:
    return Request(sid="s1", status=Status.BEGIN, items=[text_item("text", text, Status.BEGIN)])


def test_every_frame_is_echoed_and_the_last_ends_the_session(host: EngineHost) -> None:
    frames = [
        (Status.CONTINUE, [text_item("text", "b", Status.CONTINUE)]),
        (Status.END, [text_item("text", "c", Status.END)]),
    ]
    run = run_session(host, first("a"), frames, results="sync")
    assert run.code == 0, run.message
    assert run.texts("echo") == [(1, "a"), (1, "b"), (2, "c")]
    assert all(kind == "read" for kind, _ in run.batches)
    assert run.destroy_code == 0


def test_a_frame_without_data_gives_no_result(host: EngineHost) -> None:
    frames = [(Status.CONTINUE, []), (Status.END, [text_item("text", "z", Status.END)])]
    run = run_session(host, first("y"), frames, results="sync")
    assert run.texts("echo") == [(1, "y"), (2, "z")]


def test_sessions_are_independent(host: EngineHost) -> None:
    h1 = host.create(first("x"))
    h2 = host.create(first("x"))
    assert h1 != h2
    host.write(h1, [text_item("text", "for one", Status.CONTINUE)])
    assert host.read(h2) == []
    assert [i.data for i in host.read(h1)] == [b"for one"]
    assert host.destroy(h1).code == host.destroy(h2).code == 0


def test_audio_frames_are_refused_with_a_clear_message(host: EngineHost) -> None:
    run = run_session(host, first("ok"), [(Status.END, [audio_item(b"\0\0", Status.END)])], "sync")
    assert run.code == 20101
    assert "text frames only" in run.message
    assert run.texts("echo") == [(1, "ok")]  # what came before the bad frame was delivered
    assert run.destroy_code == 0  # wrapperDestroy ran although the session failed


def test_asectl_loader_test_passes() -> None:
    report = loader_test("stream_echo")
    assert report["ok"], failed_cases(report)
    assert {c["name"] for c in report["cases"]} == {"three-frames", "streamed-file", "audio-is-refused"}


@pytest.fixture(scope="module")
def loader() -> Iterator[LoaderProcess]:
    yield from serve("stream_echo")


@pytest.mark.timeout(60)
def test_session_served_by_a_real_loader(loader: LoaderProcess) -> None:
    session = loader.client().session(first("one"))
    first_result = session.recv(timeout=10)
    assert first_result is not None and first_result.code == 0, first_result
    assert [i.data for i in first_result.items] == [b"one"]  # answered before the next frame is sent
    session.send(Status.CONTINUE, [text_item("text", "two", Status.CONTINUE)])
    session.send(Status.END, [text_item("text", "three", Status.END)])
    rest = session.results(timeout=10)
    assert [(r.code, r.status, [i.data for i in r.items]) for r in rest] == [
        (0, Status.CONTINUE, [b"two"]),
        (0, Status.END, [b"three"]),
    ]
    assert session.recv(timeout=5) is None  # the stream is over
    with pytest.raises(AseError) as info:
        session.send(Status.CONTINUE, [text_item("text", "late", Status.CONTINUE)])
    assert info.value.code == 10202


@pytest.mark.timeout(60)
def test_wrapper_error_ends_a_served_session(loader: LoaderProcess) -> None:
    session = loader.client().session(first("fine"))
    session.send(Status.END, [audio_item(b"\0\0", Status.END)])
    results = session.results(timeout=10)
    assert results[-1].code == 20101
    assert "text frames only" in results[-1].message
