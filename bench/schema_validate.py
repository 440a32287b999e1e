"""Per-request cost of validating a body against a compiled ``schemainput``: three validators.

    python bench/schema_validate.py            # 3 s per point (about 1 minute)
    python bench/schema_validate.py --quick    # 1 s per point, for a smoke run

The schema is what ``asectl api create`` makes of a typical service (below: five parameters with
bounds, an enum, a length, a pattern and a nested object; one text input; one audio output). The
body is a valid request with a 4 KiB text payload (base64), and an invalid one (a parameter out
of its range). Each validator compiles the schema once, as a gateway does per schema version,
then validates back to back in this process (pinned to CPU 0). The baseline in the same run is
``orjson.loads`` of the body, which the gateway does for every request anyway.

- ``jsonschema-rs`` (Rust): ``Draft7Validator.is_valid``; for the invalid body the first error's
  message and path (what the gateway puts in its 10163 answer).
- ``fastjsonschema`` (generates Python code): the compiled function; the invalid body raises.
- ``jsonschema`` (pure Python, the reference): ``Draft7Validator.is_valid`` / ``iter_errors``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import jsonschema_rs
import loadgen
import orjson
from loadgen import Point

from ase_serving.schema import from_yaml

API = """\
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: tts, version: "1.0.0"}
spec:
  request:
    parameters:
      properties:
        vcn: {type: string, enum: [xiaoyan, aisjiuxu, aisxping]}
        speed: {type: integer, minimum: 0, maximum: 100}
        volume: {type: integer, minimum: 0, maximum: 100}
        tag: {type: string, maxLength: 32, pattern: "^[a-z0-9-]*$"}
        options: {type: object, properties: {pitch: {type: integer, minimum: 0, maximum: 100}}}
      required: [vcn]
    payload:
      properties:
        text: {type: text, encoding: [utf8, gb2312], compress: raw, format: plain}
      required: [text]
  response:
    payload:
      properties:
        audio: {type: audio, encoding: [raw, lame], sample_rate: 16000}
"""


def bodies(payload: int) -> tuple[bytes, bytes]:
    text = base64.b64encode(os.urandom(payload)).decode()
    body: dict[str, Any] = {
        "header": {"app_id": "app-123", "uid": "u-42", "status": 3},
        "parameter": {
            "tts": {
                "vcn": "xiaoyan",
                "speed": 50,
                "volume": 60,
                "tag": "news-1",
                "options": {"pitch": 40},
                "audio": {"encoding": "lame"},
            }
        },
        "payload": {
            "text": {"encoding": "utf8", "compress": "raw", "format": "plain", "status": 3, "text": text}
        },
    }
    bad = json.loads(json.dumps(body))
    bad["parameter"]["tts"]["speed"] = 101
    return orjson.dumps(body), orjson.dumps(bad)


def compiled(schema: dict[str, Any]) -> dict[str, tuple[Callable[[Any], bool], Callable[[Any], str], float]]:
    """name -> (is_valid, first error message, compile ms)."""
    out: dict[str, tuple[Callable[[Any], bool], Callable[[Any], str], float]] = {}

    t = time.perf_counter()
    rs = jsonschema_rs.Draft7Validator(schema)
    rs_ms = 1000 * (time.perf_counter() - t)

    def rs_error(doc: Any) -> str:
        err = next(rs.iter_errors(doc))
        return f"{list(err.instance_path)}: {err.message}"

    out["jsonschema-rs"] = (rs.is_valid, rs_error, rs_ms)

    t = time.perf_counter()
    fast = fastjsonschema.compile(schema)
    fast_ms = 1000 * (time.perf_counter() - t)

    def fast_valid(doc: Any) -> bool:
        try:
            fast(doc)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def fast_error(doc: Any) -> str:
        try:
            fast(doc)
        except fastjsonschema.JsonSchemaValueException as exc:
            return f"{exc.path}: {exc.message}"
        return ""

    out["fastjsonschema"] = (fast_valid, fast_error, fast_ms)

    t = time.perf_counter()
    ref = jsonschema.Draft7Validator(schema)
    ref.is_valid({})  # jsonschema compiles lazily: make the first call part of the compile time
    ref_ms = 1000 * (time.perf_counter() - t)

    def ref_error(doc: Any) -> str:
        err = next(ref.iter_errors(doc))
        return f"{list(err.absolute_path)}: {err.message}"

    out["jsonschema"] = (ref.is_valid, ref_error, ref_ms)
    return out


def row(p: Point, baseline: Point | None, compile_ms: float | None) -> str:
    s = p.summary()
    ratio = f"{p.pct_us(50) / baseline.pct_us(50):.2f}x" if baseline is not None else "1x"
    comp = f"{compile_ms:.2f}" if compile_ms is not None else "-"
    return (
        f"| {s['name']} | {s['calls_per_s']:,.0f} | {s['p50_us']:.2f} | {s['p99_us']:.2f} | {ratio} | "
        f"{comp} | {s['other_cpu_pct']:.0f}% |"
    )


HEADER = (
    "| path | calls/s | p50 µs | p99 µs | p50 ÷ parse p50 | compile ms | other CPU |\n"
    "|---|--:|--:|--:|--:|--:|--:|"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="1 s per point")
    ap.add_argument("--seconds", type=float, help="measured seconds per point (default 3, quick 1)")
    ap.add_argument("--payload", type=int, default=4096, help="bytes of text before base64 (default 4096)")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--quiet-wait", type=float, default=60.0, help="wait for a quiet machine (default 60 s)")
    args = ap.parse_args(argv)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    warmup = 0.3 if args.quick else 1.0

    info = loadgen.banner(args.quiet_wait)

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ai_api.yml").write_text(API)
        schema = from_yaml(Path(tmp) / "ai_api.yml").doc["schemainput"]
    good, bad = bodies(args.payload)
    good_doc, bad_doc = orjson.loads(good), orjson.loads(bad)
    validators = compiled(schema)
    # Every validator must give the same answers, or the rows would compare different work.
    for name, (is_valid, error, _) in validators.items():
        assert is_valid(good_doc) and not is_valid(bad_doc), name
        assert "speed" in error(bad_doc) and "100" in error(bad_doc), (name, error(bad_doc))
    print(f"body: {len(good):,} bytes; schemainput: {len(orjson.dumps(schema)):,} bytes", flush=True)

    if loadgen.can_pin(1):
        loadgen.pin({0})
    points: list[tuple[Point, float | None]] = []
    print(f"\n## Validation per request, {seconds:g} s per point (CPU 0)\n\n{HEADER}", flush=True)
    baseline = loadgen.time_inprocess(
        "`orjson.loads(body)` (baseline)", lambda: orjson.loads(good), warmup, seconds
    )
    points.append((baseline, None))
    print(row(baseline, None, None), flush=True)
    for name, (is_valid, error, compile_ms) in validators.items():
        for what, call in (
            ("valid body", lambda v=is_valid: v(good_doc)),
            ("invalid body, first error", lambda e=error: e(bad_doc)),
        ):
            point = loadgen.time_inprocess(f"{name}: {what}", call, warmup, seconds)
            points.append((point, compile_ms))
            print(row(point, baseline, compile_ms), flush=True)
    if args.json:
        doc = {
            "machine": info,
            "commit": loadgen.commit(),
            "body_bytes": len(good),
            "points": [{**p.summary(), "compile_ms": c} for p, c in points],
        }
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
