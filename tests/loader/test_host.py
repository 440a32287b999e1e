"""EngineHost's error mapping and EngineSession's end-of-session rule, with a toy wrapper in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ase_serving import errors
from ase_serving.errors import AseError
from ase_serving.loader.host import ASYNC, AUTO, SYNC, EngineHost, EngineSession, params_for
from ase_serving.protocol.items import DataItem, Request, Status
from ase_serving.wrapper import callback, load_plugin
from ase_serving.wrapper.push import set_sink

TOY = Path(__file__).parents[1] / "wrapper" / "plugins" / "host_toy.py"


@pytest.fixture
def host() -> Iterator[EngineHost]:
    h = EngineHost(load_plugin(TOY))  # a fresh module each time: its `calls` list starts empty
    h.init({"model": "m1"})
    yield h
    set_sink(None)


def calls(host: EngineHost) -> list[Any]:
    result: list[Any] = host.plugin.module.calls
    return result


def once(host: EngineHost, do: str, items: list[DataItem] | None = None) -> Any:
    return host.once(Request(sid="s1", params={"do": do}, items=items or []))


def test_init_passes_config_and_fini_runs(host: EngineHost) -> None:
    assert calls(host) == [("init", {"model": "m1"})]
    host.fini()
    assert calls(host)[-1] == ("fini",)


@pytest.mark.parametrize(
    ("fail", "code", "message"),
    [
        ("code", 10042, "the engine refused the input"),
        ("raise", errors.WRAPPER_EXCEPTION, "wrapperInit raised OSError: model file missing"),
    ],
)
def test_init_failures(fail: str, code: int, message: str) -> None:
    h = EngineHost(load_plugin(TOY))
    with pytest.raises(AseError) as info:
        h.init({"fail": fail})
    assert (info.value.code, info.value.message) == (code, message)


def test_once_echo_passes_params_headers_items_and_psr(host: EngineHost) -> None:
    req = Request(
        sid="s1",
        headers={"app_id": "a"},
        params={"do": "echo"},
        psr_ids=["p1"],
        items=[DataItem(key="in", data=b"abc", type=1, desc={"encoding": "raw"})],
    )
    result = host.once(req)
    assert result.ok and result.sid == "s1"
    assert result.items == [DataItem(key="out", data=b"abc", status=3, type=1, desc={"encoding": "raw"})]
    _, tag, params, items, psr_ids, psr_cnt = calls(host)[-1]
    assert tag == "s1" and params == {"app_id": "a", "sid": "s1", "do": "echo"}
    assert items[0]["len"] == 3 and items[0]["data"] == b"abc"
    assert (psr_ids, psr_cnt) == (["p1"], 1)


def test_nonzero_ret_gives_code_and_wrapper_error_text(host: EngineHost) -> None:
    result = once(host, "code")
    assert (result.code, result.message) == (10042, "the engine refused the input")


def test_wrapper_error_that_raises_falls_back_to_a_plain_message(host: EngineHost) -> None:
    result = once(host, "code-unknown")
    assert (result.code, result.message) == (10043, "wrapperOnceExec returned error code 10043")


def test_exception_is_10910_with_its_text(host: EngineHost) -> None:
    result = once(host, "raise")
    assert result.code == errors.WRAPPER_EXCEPTION == 10910
    assert result.message == "wrapperOnceExec raised ValueError: bad input shape"


def test_str_data_is_utf8_encoded(host: EngineHost) -> None:
    (item,) = once(host, "str").items
    assert item.data == "héllo".encode()


@pytest.mark.parametrize(
    ("do", "fragment"),
    [
        ("not-a-dict", "a result item must be a dict, got int"),
        ("bad-data", "'data' must be bytes or str, got float"),
        ("bad-status", "'status' must be 0, 1, 2 or 3, got 7"),
        ("bad-ret", "wrapperOnceExec returned 'ok', expected an int"),
    ],
)
def test_bad_results_are_exec_errors(host: EngineHost, do: str, fragment: str) -> None:
    result = once(host, do)
    assert result.code == errors.WRAPPER_EXEC
    assert fragment in result.message


def test_unsupported_mode() -> None:
    h = EngineHost(load_plugin(Path(__file__).parents[1] / "wrapper" / "plugins" / "class_style.py"))
    assert h.once(Request()).code == errors.UNSUPPORTED_MODE
    once_only = EngineHost(load_plugin(Path(__file__).parents[1] / "wrapper" / "plugins" / "module_once.py"))
    with pytest.raises(AseError) as info:
        once_only.create(Request())
    assert info.value.code == errors.UNSUPPORTED_MODE


def test_create_decodes_bytes_handle_and_rejects_empty(host: EngineHost) -> None:
    assert host.create(Request(sid="s2")) == "h-s2"
    with pytest.raises(AseError) as info:
        host.create(Request(sid="s3", params={"do": "no-handle"}))
    assert info.value.code == errors.WRAPPER_CREATE


def test_write_and_read_errors(host: EngineHost) -> None:
    with pytest.raises(AseError) as info:
        host.write("h", [DataItem(key="a", data=b"fail")])
    assert (info.value.code, info.value.message) == (10042, "the engine refused the input")
    host.write("h", [DataItem(key="a", data=b"dict")])
    assert host.read("h") == [DataItem(key="r", data=b"single", status=1)]
    host.write("h", [DataItem(key="a", data=b"bad")])
    with pytest.raises(AseError) as info:
        host.read("h")
    assert info.value.code == errors.WRAPPER_READ and "returned str" in info.value.message


def test_destroy_never_raises(host: EngineHost) -> None:
    assert host.destroy("h-ok").ok
    result = host.destroy("h-destroy-fails")
    assert result.code == errors.WRAPPER_EXCEPTION and "cannot free" in result.message


def test_params_for_puts_service_params_last() -> None:
    req = Request(sid="s", headers={"app_id": "a", "sid": "old"}, params={"app_id": "p"})
    assert params_for(req) == {"app_id": "p", "sid": "s"}


# -- EngineSession ---------------------------------------------------------------------------


def frame(data: bytes, status: int = Status.CONTINUE) -> list[DataItem]:
    return [DataItem(key="a", data=data, status=status)]


def test_result_with_status_2_ends_the_session(host: EngineHost) -> None:
    state = EngineSession(host, "h", SYNC)
    assert state.frame(Status.BEGIN, frame(b"one")) == ([DataItem("r", b"one", 1)], False, False)
    out, ended, wait = state.frame(Status.CONTINUE, frame(b"end"))
    assert (out[0].status, ended, wait) == (2, True, False)
    with pytest.raises(AseError) as info:
        state.frame(Status.CONTINUE, frame(b"late"))
    assert info.value.code == errors.FRAME_AFTER_END


def test_sync_last_frame_ends_the_session(host: EngineHost) -> None:
    state = EngineSession(host, "h", SYNC)
    assert state.frame(Status.END, frame(b"x", 2))[1:] == (True, False)


def test_async_last_frame_waits_for_a_callback(host: EngineHost) -> None:
    state = EngineSession(host, "h", ASYNC)
    assert state.frame(Status.END, frame(b"x", 2))[1:] == (False, True)
    assert state.push([DataItem("r", b"partial", 1)]) is False
    assert state.push([DataItem("r", b"final", 2)]) is True and state.ended


def test_auto_is_sync_until_the_wrapper_pushes(host: EngineHost) -> None:
    assert EngineSession(host, "h", AUTO).frame(Status.END, frame(b"x", 2))[1:] == (True, False)
    state = EngineSession(host, "h", AUTO)
    state.push([])
    assert state.frame(Status.END, frame(b"x", 2))[1:] == (False, True)


def test_destroy_runs_once(host: EngineHost) -> None:
    state = EngineSession(host, "h-x", SYNC)
    state.destroy()
    state.destroy()
    assert [c for c in calls(host) if c[0] == "destroy"] == [("destroy", "h-x")]
    assert state.ended


def test_install_callback_converts_items_and_errors(host: EngineHost) -> None:
    got: list[tuple[str, list[DataItem], int, str]] = []
    host.install_callback(lambda *args: got.append(args))
    callback("h", [{"key": "r", "data": "txt"}])
    callback("h", [], ret=10042)
    callback("h", [{"key": "r", "status": 9}])
    assert got[0] == ("h", [DataItem("r", b"txt", 1)], 0, "success")
    assert got[1] == ("h", [], 10042, "the engine refused the input")
    assert got[2][2] == errors.WRAPPER_EXEC and "'status' must be 0, 1, 2 or 3" in got[2][3]
