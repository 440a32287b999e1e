"""ocr: real RapidOCR in-process on the committed PNG, error paths, and its test cases."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import pytest

from ase_serving.loader.host import EngineHost
from ase_serving.protocol.items import DataItem, DataType, Request
from examples.support import failed_cases, loader_test, serve, start_host, text_item
from tests.support import LoaderProcess

# Skipped where the engine is not installed (the `ocr` extra). Looked up, not imported: RapidOCR,
# OpenCV, NumPy and onnxruntime take 0.3 s to import, which every test worker would pay to collect.
pytestmark = pytest.mark.skipif(
    find_spec("rapidocr_onnxruntime") is None or find_spec("PIL") is None,
    reason="the ocr extra (rapidocr-onnxruntime, pillow) is not installed",
)

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
    from PIL import Image

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
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(PNG) as image:
        image.convert("RGB").save(buf, format="JPEG", quality=90)
    out = outputs(host, image_request(buf.getvalue(), "jpg"))
    assert "HELLO WORLD" in out["text"]


@pytest.mark.timeout(60)
def test_an_image_without_text_gives_empty_outputs(host: EngineHost) -> None:
    from PIL import Image

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


@pytest.mark.timeout(180)
def test_through_the_gateway_over_http_equals_a_direct_call(tmp_path: Path) -> None:
    import base64

    import cv2
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    from ase_serving.loader.project import load_project
    from examples.support import example_dir, through_gateway

    # RapidOCR itself, with the [wrapper] settings of ase.toml, on the image decoded as the wrapper does.
    config = load_project(example_dir("ocr")).wrapper_config
    engine = RapidOCR(
        text_score=float(config["text_score"]),
        det_limit_type=config["det_limit_type"],
        det_limit_side_len=int(config["det_limit_side_len"]),
    )
    found, _ = engine(cv2.imdecode(np.frombuffer(PNG.read_bytes(), np.uint8), cv2.IMREAD_COLOR))
    direct = "\n".join(text for _box, text, _score in found or [])
    body = {
        "header": {"app_id": "test"},
        "parameter": {"ocr": {}},
        "payload": {"image1": {"encoding": "png", "image": base64.b64encode(PNG.read_bytes()).decode()}},
    }
    with through_gateway("ocr", tmp_path) as gw:
        resp = gw.post("/v1/private/ocr", body)
        assert resp.status_code == 200, resp.text
        payload = resp.json()["payload"]
        text = base64.b64decode(payload["text"]["text"]).decode()
        assert text == direct and "hello" in text.lower()
        boxes = json.loads(base64.b64decode(payload["boxes"]["text"]))
        assert [b["text"] for b in boxes] == direct.split("\n")
        # The schema from the Api class checks the parameters: min_score is at most 1.
        bad = gw.post("/v1/private/ocr", {**body, "parameter": {"ocr": {"min_score": 2}}})
        assert bad.status_code == 400 and "parameter.ocr.min_score" in bad.json()["header"]["message"]
