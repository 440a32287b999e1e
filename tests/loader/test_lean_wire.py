"""The lean wire (ase_serving.wire) and a real loader's data port through WireLoaderClient.

Framing split at every byte, deadlines, a lost connection (10911 at once), a worker killed with
calls and sessions in flight, a caller that never reads (bounded memory), and the handshake that
refuses a connection without the cluster's secret.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ase_serving import errors, wire
from ase_serving.loader.wire_client import WireLoaderClient
from ase_serving.protocol.items import DataItem, Request, Result, Status
from tests.conftest import StartLoader
from tests.support import WRAPPERS, LoaderProcess, run, self_signed_cert, wait_for

pytestmark = pytest.mark.timeout(120)


# -- framing ---------------------------------------------------------------------------------
def _frames() -> list[tuple[int, int, int, int, bytes]]:
    req = wire.encode(Request(service_id="echo", sid="s1", items=[DataItem(key="t", data=b"x" * 300)]))
    return [
        (wire.OP_ONCE, 0, 1, 250, req),
        (wire.OP_ONCE_DONE, 0, 2, 0, b""),
        (wire.OP_SESSION_PUSH, wire.FLAG_END, 2**32 - 1, -10911, wire.error_result(10911, "gone")),
        (wire.OP_FRAME, 0, 7, 0, b"\x00" * 17),
    ]


def test_framing_split_at_every_byte() -> None:
    frames = _frames()
    stream = b"".join(wire.pack(op, cid, code, p, flags) for op, flags, cid, code, p in frames)
    for cut in range(len(stream) + 1):
        for second in (cut, min(len(stream), cut + 1), len(stream)):
            got: list[tuple[int, int, int, int, bytes]] = []
            buf = wire.FrameBuffer()
            for part in (stream[:cut], stream[cut:second], stream[second:]):
                if part:
                    buf.feed(part, _collect(got))
            assert got == frames, (cut, second)
            assert buf.pending == 0


def _collect(got: list[tuple[int, int, int, int, bytes]]) -> wire.FrameHandler:
    def handle(op: int, flags: int, call_id: int, code: int, payload: bytes) -> None:
        got.append((op, flags, call_id, code, bytes(payload)))

    return handle


def test_framing_one_byte_at_a_time() -> None:
    frames = _frames()
    stream = b"".join(wire.pack(op, cid, code, p, flags) for op, flags, cid, code, p in frames)
    got: list[tuple[int, int, int, int, bytes]] = []
    buf = wire.FrameBuffer()
    for i in range(len(stream)):
        buf.feed(stream[i : i + 1], lambda *f: got.append((f[0], f[1], f[2], f[3], bytes(f[4]))))
    assert got == frames


def test_a_frame_over_the_limit_is_a_protocol_error() -> None:
    buf = wire.FrameBuffer(limit=1000)
    with pytest.raises(wire.ProtocolError, match="1001 bytes is over the limit of 1000"):
        buf.feed(wire.HEADER.pack(wire.OP_ONCE, 0, 0, 1, 0, 1001), lambda *f: None)


def test_payloads_round_trip() -> None:
    req = Request(
        service_id="svc", version="1.0.0", sid="s", headers={"app_id": "a"}, params={"p": "1"},
        items=[DataItem(key="k", data=b"\x00\xff", status=Status.END, type=2, desc={"x": "y"}, seq=3)],
        timeout_s=1.5,
    )  # fmt: skip
    assert wire.decode_request(wire.encode(req)) == req
    res = wire.decode_result(wire.error_result(10110, "busy", "sid9", Status.END))
    assert (res.code, res.message, res.sid, res.status, res.items) == (10110, "busy", "sid9", Status.END, [])
    assert wire.read_hello(wire.hello(b"n" * 16)) == b"n" * 16
    with pytest.raises(wire.ProtocolError, match="wire version 9"):
        wire.read_hello(wire.encode((9, b"")))


# -- a real loader's data port -----------------------------------------------------------------


@pytest.fixture(scope="module")
def slow(module_loaders: StartLoader) -> LoaderProcess:
    return module_loaders(WRAPPERS / "slow", "--workers", "1", "--lic", "2")


@pytest.fixture(scope="module")
def echo(module_loaders: StartLoader) -> LoaderProcess:
    return module_loaders(WRAPPERS / "echo", "--workers", "1", "--lic", "2")


def test_once_and_many_calls_on_one_connection(echo: LoaderProcess) -> None:
    async def main() -> list[Result]:
        client = WireLoaderClient(echo.address)
        try:
            reqs = [
                Request(sid=f"s{i}", items=[DataItem(key="text", data=f"n{i}".encode())]) for i in range(40)
            ]
            out = []
            for batch in range(0, 40, 2):  # two licences: two calls at a time
                out += await asyncio.gather(*(client.once(r, 10) for r in reqs[batch : batch + 2]))
            return out
        finally:
            await client.close()

    results = run(main())
    assert [r.code for r in results] == [0] * 40
    assert [r.items[0].data for r in results] == [f"n{i}".encode() for i in range(40)]
    assert [r.sid for r in results] == [f"s{i}" for i in range(40)]


def test_more_calls_than_licences_get_10110_at_once(slow: LoaderProcess, tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    async def main() -> list[Result]:
        client = WireLoaderClient(slow.address)
        try:
            started = str(tmp_path / "started")
            busy = [
                asyncio.ensure_future(
                    client.once(Request(sid=f"b{i}", params={"gate": str(gate), "started": started}), 30)
                )
                for i in range(2)
            ]
            await _until(lambda: len(list(tmp_path.glob("started.*"))) == 2)
            third = await client.once(Request(sid="x"), 30)
            gate.touch()
            return [third, *await asyncio.gather(*busy)]
        finally:
            await client.close()

    third, *busy = run(main())
    assert third.code == errors.NO_LICENCE
    assert [r.code for r in busy] == [0, 0]


def test_the_deadline_ends_a_call_with_10114(slow: LoaderProcess, tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    async def main() -> Result:
        client = WireLoaderClient(slow.address)
        try:
            return await client.once(Request(sid="late", params={"gate": str(gate)}), 0.3)
        finally:
            gate.touch()
            await client.close()

    res = run(main())
    assert res.code == errors.TIMEOUT
    assert "before the deadline" in res.message or "did not answer within 0.3 s" in res.message


def test_a_refused_connection_is_no_loader() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        res = run(_once(f"127.0.0.1:{port}", Request(sid="x")))
    assert res.code == errors.NO_LOADER and "loader unreachable at 127.0.0.1:" in res.message


async def _until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.01)


def test_a_lost_connection_ends_its_calls_with_10911_at_once(loaders: StartLoader, tmp_path: Path) -> None:
    loader = loaders(WRAPPERS / "slow", "--workers", "1", "--lic", "2")
    started = str(tmp_path / "started")

    async def main() -> tuple[list[Result], float]:
        client = WireLoaderClient(loader.address)
        calls = [
            asyncio.ensure_future(
                client.once(Request(sid=f"c{i}", params={"sleep": "60", "started": started}), 120)
            )
            for i in range(2)
        ]
        await _until(lambda: len(list(tmp_path.glob("started.*"))) == 2)
        os.killpg(loader.proc.pid, signal.SIGKILL)
        t0 = time.monotonic()
        out = await asyncio.gather(*calls)
        took = time.monotonic() - t0
        await client.close()
        return out, took

    results, took = run(main())
    assert [r.code for r in results] == [errors.WORKER_DIED] * 2
    assert "connection to the loader at" in results[0].message and "lost" in results[0].message
    assert took < 5.0  # at once: not after the 120 s deadline


def test_worker_killed_with_calls_and_sessions_in_flight(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "crasher", "--workers", "1", "--lic", "3")

    async def main() -> tuple[Result, Result, Result]:
        client = WireLoaderClient(loader.address)
        try:
            sess = client.session(Request(sid="sx", status=Status.BEGIN), 30)
            await sess.open()
            boom = await client.once(Request(sid="boom", params={"how": "segv"}), 30)
            died = await asyncio.wait_for(sess.recv(), 10)
            await sess.close()
            # The worker comes back with its slots: a call succeeds again.
            deadline = time.monotonic() + 30
            while True:
                ok = await client.once(Request(sid="ok", params={"how": "ok"}), 30)
                if ok.code == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert died is not None
            return boom, died, ok
        finally:
            await client.close()

    boom, died, ok = run(main())
    assert boom.code == errors.WORKER_DIED and "died (signal SIGSEGV)" in boom.message
    assert died.code == errors.WORKER_DIED
    assert ok.code == 0
    wait_for(lambda: loader.client().info().lic_busy == 0, 10, "every slot free after the restart")


def test_sessions_over_the_data_port(module_loaders: StartLoader) -> None:
    loader = module_loaders(WRAPPERS / "session_sync", "--workers", "1", "--lic", "2")

    async def main() -> list[Result]:
        client = WireLoaderClient(loader.address)
        try:
            sess = client.session(
                Request(sid="s1", status=Status.BEGIN, items=[DataItem(key="a", data=b"1")]), 30
            )
            await sess.open()
            out = []
            for i, status in enumerate((Status.CONTINUE, Status.END)):
                await sess.send(status, [DataItem(key="a", data=f"{i + 2}".encode())])
            while True:
                res = await sess.recv()
                if res is None:
                    break
                out.append(res)
                if sess.ended:
                    break
            await sess.close()
            return out
        finally:
            await client.close()

    results = run(main())
    assert results and all(r.code == 0 for r in results)
    assert results[-1].status == Status.END
    wait_for(lambda: loader.client().info().sessions == 0, 10, "the session destroyed")


def test_a_caller_that_never_reads_is_bounded(echo: LoaderProcess) -> None:
    """Calls pushed by a caller that reads no answer: the loader stops reading from it (its
    memory stays bounded) and still serves other callers."""
    host, port = echo.address.rsplit(":", 1)
    rss_before = _rss_kb(echo.proc.pid)
    # Small calls: their answers (mostly 10110, two licences) are as large as they are.
    call = wire.pack(wire.OP_ONCE, 1, 0, wire.encode(Request(sid="x")))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.setblocking(False)
        pushed = 0
        stalled_since = None
        rest = memoryview(call)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                n = s.send(rest)
                pushed += n
                rest = rest[n:] if n < len(rest) else memoryview(call)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
                time.sleep(0.01)
        assert stalled_since is not None, "the loader kept reading from a caller that never reads"
        assert pushed < 64 * 1024 * 1024
        assert _rss_kb(echo.proc.pid) - rss_before < 64 * 1024
        res = run(_once(echo.address, Request(sid="other", items=[DataItem(key="text", data=b"z")])))
        assert res.code == 0


async def _once(address: str, req: Request) -> Result:
    client = WireLoaderClient(address)
    try:
        return await client.once(req, 10)
    finally:
        await client.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_tls_on_the_data_port(loaders: StartLoader, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    loader = loaders(WRAPPERS / "echo", "--data-tls-cert", str(cert), "--data-tls-key", str(key))
    req = Request(sid="t1", items=[DataItem(key="text", data=b"over tls")])

    async def call(tls: ssl.SSLContext | None) -> Result:
        client = WireLoaderClient(loader.address, tls=tls, connect_timeout=5)
        try:
            return await client.once(req, 10)
        finally:
            await client.close()

    ok = run(call(ssl.create_default_context(cafile=str(cert))))
    assert ok.code == 0 and ok.items[0].data == b"over tls"
    plain = run(call(None))  # a caller speaking plain TCP to a TLS port gets no call through
    assert plain.code == errors.NO_LOADER
    untrusted = run(call(ssl.create_default_context()))  # the system CAs do not know this certificate
    assert untrusted.code == errors.NO_LOADER and "CERTIFICATE_VERIFY_FAILED" in untrusted.message


def test_the_socket_folder_is_swept_of_gone_loaders(tmp_path: Path) -> None:
    """A loader killed with SIGKILL leaves its sockets behind; the next one to start removes them
    (and only them)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = {
        f"echo-1.0.0-{gone.pid}.sock": False,
        f"echo-1.0.0-{gone.pid}-w1.sock": False,
        f"echo-1.0.0-{os.getpid()}.sock": True,  # alive: kept
        f"echo-1.0.0-{os.getpid()}-w2.sock": True,
        "notes.txt": True,  # not a socket of ours
    }
    for name in names:
        (tmp_path / name).touch()
    wire._sweep(str(tmp_path))
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in names.items() if kept}
