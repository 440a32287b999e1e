"""echo: the engine in-process, its test cases via `asectl loader test`, and a real loader."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ase_serving.loader.host import EngineHost
from ase_serving.protocol.items import Request
from ase_serving.wrapper import load_plugin
from examples.support import example_dir, failed_cases, loader_test, serve, start_host, text_item
from tests.support import LoaderProcess


@pytest.fixture(scope="module")
def host() -> Iterator[EngineHost]:
    h = start_host("echo")
    yield h
    h.fini()


def test_one_input_comes_back_as_echo(host: EngineHost) -> None:
    res = host.once(Request(sid="s1", items=[text_item("text", "héllo wörld")]))
    assert res.code == 0, res.message
    [item] = res.items
    assert (item.key, item.data.decode(), item.status, item.type) == ("echo", "héllo wörld", 3, 0)
    assert item.desc == {"encoding": "utf8"}


def test_several_inputs_keep_their_names(host: EngineHost) -> None:
    res = host.once(Request(items=[text_item("a", "1"), text_item("b", "2")]))
    assert res.code == 0, res.message
    assert {i.key: i.data for i in res.items} == {"a": b"1", "b": b"2"}


def test_no_input_is_the_wrappers_error(host: EngineHost) -> None:
    res = host.once(Request(items=[]))
    assert res.code == 20001
    assert "no input" in res.message


def test_binary_input_is_rejected(host: EngineHost) -> None:
    req = Request(items=[text_item("text", "")])
    req.items[0].data = b"\xff\xfe"
    res = host.once(req)
    assert (res.code, res.message) == (20002, "the input is not UTF-8 text")


def test_prefix_comes_from_the_wrapper_config() -> None:
    other = EngineHost(load_plugin(example_dir("echo")))  # a second, independent module instance
    other.init({"prefix": ">> "})
    res = other.once(Request(items=[text_item("text", "hi")]))
    assert [(i.data, i.desc) for i in res.items] == [(b">> hi", {"encoding": "utf8"})]


def test_asectl_loader_test_passes() -> None:
    report = loader_test("echo")
    assert report["ok"], failed_cases(report)
    assert {c["name"] for c in report["cases"]} >= {"hello", "two-inputs", "no-input", "not-utf8"}


@pytest.fixture(scope="module")
def loader() -> Iterator[LoaderProcess]:
    yield from serve("echo")


@pytest.mark.timeout(60)
def test_served_by_a_real_loader(loader: LoaderProcess) -> None:
    client = loader.client()
    res = client.once(Request(headers={"app_id": "t"}, items=[text_item("text", "over gRPC")]))
    assert res.code == 0, res.message
    assert [(i.key, i.data, i.desc) for i in res.items] == [("echo", b"over gRPC", {"encoding": "utf8"})]
    # The wrapper's own code and wrapperError text cross the process boundary unchanged.
    err = client.once(Request(items=[]))
    assert (err.code, err.message) == (20001, "no input: send at least one payload item, e.g. payload.text")
