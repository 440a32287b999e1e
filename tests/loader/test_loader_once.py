"""Once calls through a real `asectl loader run`: results, codes, wrapper styles, Info."""

from __future__ import annotations

import json

import pytest

from ase_serving import errors
from ase_serving.loader.client import LoaderClient
from ase_serving.protocol.items import DataItem, OutputSpec, Request, Status
from tests.conftest import StartLoader
from tests.support import WRAPPERS, LoaderProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def echo(module_loaders: StartLoader) -> LoaderProcess:
    return module_loaders(WRAPPERS / "echo", "--workers", "2", "--lic", "2")


@pytest.fixture(scope="module")
def client(echo: LoaderProcess) -> LoaderClient:
    return echo.client()


def test_ready_line_names_service_workers_and_metrics(echo: LoaderProcess) -> None:
    assert echo.line.startswith("loader echo 1.0.0 serving on 127.0.0.1:")
    assert "(2 workers x 2 licences); grpc 127.0.0.1:" in echo.line
    assert "; metrics http://127.0.0.1:" in echo.line


def test_once_echoes_items(client: LoaderClient) -> None:
    item = DataItem(key="text", data=b"hello \xe4\xb8\x96", desc={"encoding": "utf8"})
    res = client.once(Request(sid="s-1", items=[item]))
    assert res.code == 0, res.message
    assert res.sid == "s-1"
    assert [(i.key, i.data, i.status) for i in res.items] == [("text", b"hello \xe4\xb8\x96", Status.ONCE)]


def test_params_and_headers_reach_the_wrapper(client: LoaderClient) -> None:
    req = Request(sid="s-2", headers={"app_id": "a1"}, params={"upper": "1", "echo_params": "1"})
    req.items = [DataItem(key="t", data=b"abc")]
    # The attributes asked of an output (the request's expect) reach it too (over gRPC here).
    req.expect = [OutputSpec(key="t", desc={"encoding": "utf8", "format": "plain"})]
    res = client.once(req)
    assert res.code == 0
    by_key = {i.key: i.data for i in res.items}
    assert by_key["t"] == b"ABC"
    assert by_key["params"].decode().split(",") == [
        "accept.t.encoding",
        "accept.t.format",
        "app_id",
        "echo_params",
        "sid",
        "upper",
    ]


def test_large_payload_round_trips(client: LoaderClient) -> None:
    blob = bytes(range(256)) * 16384  # 4 MiB: more than one socket buffer each way
    res = client.once(Request(items=[DataItem(key="blob", data=blob, type=4)]))
    assert res.code == 0
    assert res.items[0].data == blob


def test_info_reports_workers_and_licences(client: LoaderClient) -> None:
    info = client.info()
    assert (info.service_id, info.version, info.state, info.healthy) == ("echo", "1.0.0", "serving", True)
    assert (info.lic_total, info.lic_busy, info.modes) == (4, 0, "once")
    assert [(w.index, w.state, w.lic_total) for w in info.workers] == [(1, "ready", 2), (2, "ready", 2)]
    assert len({w.pid for w in info.workers}) == 2


def test_session_on_a_once_only_service_is_refused(client: LoaderClient) -> None:
    sess = client.session(Request(sid="s-3", status=Status.BEGIN))
    results = sess.results(timeout=10)
    assert [r.code for r in results] == [errors.UNSUPPORTED_MODE]
    assert "once requests only" in results[0].message


def test_unreachable_loader_is_a_code_not_an_exception() -> None:
    with LoaderClient("127.0.0.1:1") as c:
        res = c.once(Request(), timeout=2)
    assert res.code == errors.NO_LOADER


def test_error_code_with_wrapper_error_text(module_loaders: StartLoader) -> None:
    loader = module_loaders(WRAPPERS / "error")
    res = loader.client().once(Request(sid="e1"))
    assert (res.code, res.message) == (10042, "the engine refuses this input (error 10042)")
    assert res.sid == "e1"


def test_exception_in_wrapper_is_10910(module_loaders: StartLoader) -> None:
    loader = module_loaders(WRAPPERS / "raiser")
    c = loader.client()
    res = c.once(Request())
    assert res.code == errors.WRAPPER_EXCEPTION
    assert res.message == "wrapperOnceExec raised ValueError: boom: the model exploded"
    assert c.once(Request()).code == errors.WRAPPER_EXCEPTION  # the worker lives on
    assert c.info().workers[0].restarts == 0


def test_seed_style_plugin_runs_unchanged(module_loaders: StartLoader) -> None:
    loader = module_loaders(WRAPPERS / "seed_style")
    c = loader.client()
    res = c.once(Request(sid="seed", items=[DataItem(key="text", data=b"three little words")]))
    assert res.code == 0
    assert res.items[0].key == "result"
    assert json.loads(res.items[0].data) == {"words": 3, "chars": 18}
    empty = c.once(Request(items=[DataItem(key="text", data=b"")]))
    assert (empty.code, empty.message) == (10013, "input text is empty")
    # The plugin prints; the loader's stdout stays reserved for its ready line.
    assert "wrapperOnceExec usrTag: seed" in loader.stderr()


def test_wrapper_class_style_and_ase_toml(module_loaders: StartLoader) -> None:
    loader = module_loaders(WRAPPERS / "class_style")
    assert loader.line.startswith("loader greeter 2.1.0 serving on ")
    c = loader.client()
    res = c.once(Request(params={"name": "Ada"}))
    assert res.code == 0
    assert res.items[0].data == b"bonjour Ada"
    assert (c.info().service_id, c.info().version) == ("greeter", "2.1.0")
