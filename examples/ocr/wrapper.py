"""ocr: text detection and recognition in an image with RapidOCR (PP-OCR models on onnxruntime).

Input ``image1`` (a jpg or png). Outputs: ``boxes``, JSON text with one entry per text line found,
``{"text", "score", "box"}`` (``box``: four [x, y] corners, clockwise from top left), and ``text``,
the lines' text joined with newlines, top to bottom. Parameter ``min_score`` (0..1) drops lines
scoring below it. The ``Api`` class at the end declares this API in code: ``asectl api gen``
writes its service schema.
"""

from __future__ import annotations

import json
import logging
import threading

import cv2
import numpy as np
from rapidocr_onnxruntime import RapidOCR

from ase_serving import api as base

log = logging.getLogger("ocr")

ERR_NO_IMAGE = 20301
ERR_BAD_IMAGE = 20302
ERR_ENGINE = 20303
ERR_CONFIG = 20304

ERRORS = {
    ERR_NO_IMAGE: "no image: send payload.image1 (encoding jpg or png)",
    ERR_BAD_IMAGE: "payload.image1 is not an image that can be decoded (send a jpg or png)",
    ERR_ENGINE: "the OCR engine failed on this image",
    ERR_CONFIG: "a [wrapper] setting in ase.toml has a bad value (see the loader's log)",
}

#: [wrapper] settings passed on to RapidOCR, with the type each string is converted to.
SETTINGS = {"text_score": float, "det_limit_side_len": int, "det_limit_type": str}

engine: RapidOCR | None = None
# wrapperOnceExec may run concurrently, but RapidOCR's detector keeps per-call state on the instance
# (the resize step it picks for each image), so calls take turns. Little is lost: onnxruntime already
# spreads one call over all cores. More throughput = more worker processes (`--workers`).
engine_lock = threading.Lock()


def wrapperInit(config: dict) -> int:
    global engine
    try:
        kwargs = {key: kind(config[key]) for key, kind in SETTINGS.items() if config.get(key)}
    except ValueError as exc:
        log.error("ocr: bad [wrapper] setting: %s", exc)
        return ERR_CONFIG
    engine = RapidOCR(**kwargs)  # once per worker process: loading the models takes a while
    return 0


def wrapperFini() -> int:
    global engine
    engine = None
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt) -> int:
    # The gateway has checked min_score against the schema (a number, 0..1); it arrives as a string.
    floor = float(params.get("min_score") or 0)
    images = [item for item in reqData if item["key"] == "image1"]
    if not images or not images[0]["data"]:
        return ERR_NO_IMAGE
    image = cv2.imdecode(np.frombuffer(images[0]["data"], np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return ERR_BAD_IMAGE
    try:
        with engine_lock:
            found, _elapsed = engine(image)
    except Exception as exc:
        log.error("ocr: %s failed: %s", usrTag, exc)
        return ERR_ENGINE
    lines = [
        {"text": text, "score": round(float(score), 4), "box": [[float(x), float(y)] for x, y in box]}
        for box, text, score in found or []  # `found` is None when there is no text at all
        if float(score) >= floor
    ]
    boxes = json.dumps(lines, ensure_ascii=False)
    text = "\n".join(line["text"] for line in lines)
    respData.append(
        {
            "key": "boxes",
            "data": boxes,
            "len": len(boxes.encode()),
            "status": 3,
            "type": 0,
            "desc": {"encoding": "utf8", "format": "json"},
        }
    )
    respData.append(
        {
            "key": "text",
            "data": text,
            "len": len(text.encode()),
            "status": 3,
            "type": 0,
            "desc": {"encoding": "utf8", "format": "plain"},
        }
    )
    return 0


def wrapperError(ret: int) -> str:
    return ERRORS.get(ret, f"unknown error {ret}")


class Api(base.BaseASEApi):
    """Text detection and recognition in an image (RapidOCR)."""

    interface = "once"

    def request(self):
        min_score = base.Arg("min_score", float, "drop text lines scoring below this", min=0, max=1)
        image1 = base.Data("image1", "image", "the image", encoding=["jpg", "png"], required=True)

    def response(self):
        boxes = base.Data(
            "boxes", "text", "one {text, score, box} per line found", encoding="utf8", format="json"
        )
        text = base.Data("text", "text", "the lines' text, top to bottom", encoding="utf8", format="plain")
