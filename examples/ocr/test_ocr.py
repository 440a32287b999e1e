"""ocr: real RapidOCR in-process on the committed PNG, error paths, and its test cases."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ase_serving.loader.host import EngineHost
from ase_serving.protocol.items import DataItem, DataType, Request
from examples.support import failed_cases, loader_test, serve, start_host, text_item
from tests.support import LoaderProcess

pytest.importorskip("rapidocr_onnxruntime")
Image = pytest.importorskip("PIL.Image")

PNG = Path(__file__).parent / "tests" / "hello.png"


@pytest.fixture(scope="module")
def host() -> Iterator[EngineHost]:
    h = start_host("ocr")  # loads the models once for the module
    yield h
    h.fini()


def image_request(data: bytes, encoding: str = "png") -> Request:
    return Request(
        items=[DataItem(key="image1", data=data, type=DataType.IMAGE, desc={"encoding": encoding})]
    )


def outputs(host: EngineHost, req: Request) -> dict[str, str]:
    res = host.once(req)
    assert res.code == 0, res.message
    return {i.key: i.data.decode() for i in res.items}


@pytest.mark.timeout(60)
def test_png_text_and_boxes(host: EngineHost) -> None:
    out = outputs(host, image_request(PNG.read_bytes()))
    assert out["text"].splitlines() == ["HELLO WORLD", "Serving 2025"]
    boxes = json.loads(out["boxes"])
    assert [b["text"] for b in boxes] == ["HELLO WORLD", "Serving 2025"]
    with Image.open(PNG) as image:
        width, height = image.size
    for b in boxes:
        assert 0.5 <= b["score"] <= 1
        assert len(b["box"]) == 4
        assert all(0 <= x <= width and 0 <= y <= height for x, y in b["box"])
    # The first line is above the second.
    assert max(y for _, y in boxes[0]["box"]) < min(y for _, y in boxes[1]["box"])


@pytest.mark.timeout(60)
def test_min_score_drops_the_lines_below_it(host: EngineHost) -> None:
    req = image_request(PNG.read_bytes())
    lines = json.loads(outputs(host, req)["boxes"])
    # Parameters arrive as strings. Just under the lowest score: every line stays; above 1: none.
    req.params = {"min_score": str(min(b["score"] for b in lines) - 0.001)}
    assert json.loads(outputs(host, req)["boxes"]) == lines
    req.params = {"min_score": "1.01"}
    assert json.loads(outputs(host, req)["boxes"]) == []
    assert outputs(host, req)["text"] == ""


@pytest.mark.timeout(60)
def test_jpeg_works_too(host: EngineHost) -> None:
    buf = io.BytesIO()
    with Image.open(PNG) as image:
        image.convert("RGB").save(buf, format="JPEG", quality=90)
    out = outputs(host, image_request(buf.getvalue(), "jpg"))
    assert "HELLO WORLD" in out["text"]


@pytest.mark.timeout(60)
def test_an_image_without_text_gives_empty_outputs(host: EngineHost) -> None:
    buf = io.BytesIO()
    Image.new("L", (200, 100), color=255).save(buf, format="PNG")
    assert outputs(host, image_request(buf.getvalue())) == {"boxes": "[]", "text": ""}


def test_not_an_image(host: EngineHost) -> None:
    res = host.once(image_request(b"GIF89a but not really", "jpg"))
    assert res.code == 20302
    assert "not an image" in res.message


def test_no_image(host: EngineHost) -> None:
    res = host.once(Request(items=[text_item("text", "hello")]))
    assert res.code == 20301
    assert "payload.image1" in res.message


@pytest.mark.timeout(120)
def test_asectl_loader_test_passes() -> None:
    report = loader_test("ocr")
    assert report["ok"], failed_cases(report)
    assert {c["name"] for c in report["cases"]} == {"hello-image", "not-an-image", "no-image"}


@pytest.fixture(scope="module")
def loader() -> Iterator[LoaderProcess]:
    yield from serve("ocr")


@pytest.mark.timeout(60)
def test_served_by_a_real_loader(loader: LoaderProcess) -> None:
    client = loader.client()
    png = PNG.read_bytes()
    # ase.toml gives 2 licences: two concurrent calls are both served.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: client.once(image_request(png)), range(2)))
    for res in results:
        assert res.code == 0, res.message
        out = {i.key: i.data.decode() for i in res.items}
        assert out["text"].splitlines() == ["HELLO WORLD", "Serving 2025"]
        assert [b["text"] for b in json.loads(out["boxes"])] == ["HELLO WORLD", "Serving 2025"]
    bad = client.once(image_request(b"not an image"))
    assert bad.code == 20302
    assert "not an image" in bad.message
