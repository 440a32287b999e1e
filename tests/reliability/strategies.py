"""Hypothesis strategies for the protocol fuzz (issue 16): once bodies and session frames made
from the protocol's shape with any part of it made wrong (types, numbers past 2^64, nesting to
900 levels, unicode, missing and unknown fields, bad base64, wrong statuses, bytes cut short
or not UTF-8), and the checks every answer must pass.

``ASE_FUZZ_EXAMPLES`` sets how many examples each fuzz test runs; :data:`FUZZ` derandomizes, so
that a run in CI is the same every time.
"""

from __future__ import annotations

import base64
import json
import os
import string
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def examples(default: int) -> int:
    """The examples a fuzz test runs: ``ASE_FUZZ_EXAMPLES`` when set, else ``default``."""
    return int(os.environ.get("ASE_FUZZ_EXAMPLES") or default)


def fuzz_settings(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


#: Close codes a session refused for its input may end with: 1000 (it ended well), 1003, 1007,
#: 1008 (the request's fault), 1009 (too big). Never 1011 (the server's failure), nor 1006.
CLIENT_CLOSES = {1000, 1003, 1007, 1008, 1009}

# -- values ---------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31 - 1, 2**31, -(2**31) - 1, 2**63, 2**64, -(2**64)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
#: Any JSON value, nested a little or (below) very deep.
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested 200 to 900 levels: past what JSON can be written back at (254)."""
    value: Any = draw(scalars)
    shape = draw(st.sampled_from(["list", "object", "both"]))
    for level in range(draw(st.integers(min_value=200, max_value=900))):
        value = [value] if shape == "list" or (shape == "both" and level % 2) else {"k": value}
    return value


odd = st.one_of(json_values, deep())
b64 = st.one_of(
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.text("ABCDEFabcdef0123456789+/=-_ \n", max_size=16),  # base64 almost
    st.text(max_size=16),  # mostly not base64
    odd,
)
statuses = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(-5, 5), odd)


def _wrong(draw: st.DrawFn, one_in: int = 4) -> bool:
    """True once in ``one_in`` draws or so: this part of the body is made wrong. (A value inside
    the range, as hypothesis favours its ends: a body simplified is a right one.)"""
    return draw(st.integers(0, one_in - 1)) == 1


#: A value for each of :data:`TYPED_YAML`'s parameters: mostly of its type (with its edges),
#: sometimes anything.
_TYPED_PARAMS: dict[str, Any] = {
    "speed": st.one_of(st.integers(-1, 101), st.sampled_from([0, 100, 2**64, -(2**70)]), st.floats()),
    "count": st.one_of(st.integers(-(2**32), 2**32), st.sampled_from([2**31 - 1, 2**31, 1e300])),
    "rate": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-3, 3)),
    "voice": st.one_of(st.sampled_from(["a", "b", "c", "", "A"]), st.text(max_size=4)),
    "name": st.one_of(st.text(string.ascii_lowercase, max_size=20), st.text(max_size=20)),
    "when": st.one_of(
        st.datetimes().map(lambda d: d.isoformat() + "Z"),
        st.sampled_from(["2026-02-30T25:61:61Z", "2026-12-05T12:00:00+24:00", "", "9" * 40]),
        st.text(max_size=30),
    ),
    "rule": st.one_of(
        st.sampled_from(
            ["^(a+)+$", "(", "[", "\\", "a{99999999}", "(?P<x>a)(?P=x)", "\\p{L}+", "[[:alpha:]]"]
        ),
        st.text(max_size=12),
    ),
    "loud": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None])),
    "tags": st.one_of(st.lists(st.integers(-(2**70), 2**70), max_size=6), st.lists(json_values, max_size=3)),
    "opts": st.one_of(st.dictionaries(st.text(max_size=6), json_values, max_size=4), deep()),
}


@st.composite
def typed_parameters(draw: st.DrawFn) -> Any:
    """``parameter.typed``: some of its parameters (speed, the required one, usually), any value."""
    params: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(sorted(_TYPED_PARAMS)), max_size=6, unique=True)):
        params[name] = draw(odd) if _wrong(draw, 10) else draw(_TYPED_PARAMS[name])
    if not _wrong(draw, 5):
        params["speed"] = draw(_TYPED_PARAMS["speed"])
    if _wrong(draw, 5):
        params[draw(st.text(max_size=6))] = draw(odd)
    if _wrong(draw, 7):
        params["echo"] = draw(
            st.one_of(st.fixed_dictionaries({"encoding": st.sampled_from(["utf8", "raw", 7])}), odd)
        )
    return params


# -- bodies and frames --------------------------------------------------------------------------


@st.composite
def item(draw: st.DrawFn, name: str = "text") -> Any:
    """A payload entry named ``name``: its data field (base64), encoding, status, seq, format."""
    if _wrong(draw, 12):
        return draw(odd)
    kind = name if name in ("text", "audio") else "text"
    field = (
        draw(st.sampled_from(["text", "audio", "image", "video", "other", "nope"]))
        if _wrong(draw, 8)
        else kind
    )
    entry: dict[str, Any] = {}
    if _wrong(draw, 8):
        pass  # no data field
    elif _wrong(draw):
        entry[field] = draw(b64)
    else:
        entry[field] = base64.b64encode(draw(st.text(max_size=40)).encode()).decode()
    if draw(st.booleans()):
        good = "utf8" if kind == "text" else "raw"
        entry["encoding"] = (
            draw(st.one_of(st.sampled_from(["utf8", "raw", "pcm", "", "UTF8"]), odd))
            if _wrong(draw)
            else good
        )
    keys = ["status", "seq", "format", "compress", "sample_rate", "extra"]
    for key in draw(st.lists(st.sampled_from(keys), max_size=2)):
        if key == "status":
            entry[key] = draw(statuses)
        elif key == "seq":
            entry[key] = draw(
                st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([0, 2**31 - 1, 2**31, 2**64]))
            )
        else:
            entry[key] = draw(odd) if _wrong(draw) else draw(st.text(max_size=10))
    return entry


@st.composite
def body(draw: st.DrawFn, service: str, first: bool = True, params: Any = None) -> Any:
    """A once body or a session frame: the protocol's shape, each part of it right or (one time
    in four, or so) made wrong."""
    if _wrong(draw, 20):
        return draw(odd)  # not even an object
    doc: dict[str, Any] = {}
    if not _wrong(draw, 6):
        header: Any = {}
        if first and not _wrong(draw, 8):
            header["app_id"] = draw(st.one_of(st.text(max_size=70), odd)) if _wrong(draw, 8) else "test"
        if draw(st.booleans()):
            header["status"] = draw(statuses)
        for key in draw(st.lists(st.sampled_from(["uid", "did", "request_id", "sid", "x"]), max_size=2)):
            header[key] = (
                draw(st.one_of(st.text(max_size=140), odd)) if _wrong(draw) else draw(st.text(max_size=8))
            )
        doc["header"] = draw(odd) if _wrong(draw, 10) else header
    if first and (params is not None or draw(st.booleans())):
        inner = params if params is not None else st.dictionaries(st.text(max_size=8), odd, max_size=3)
        doc["parameter"] = draw(odd) if _wrong(draw, 8) else {service: draw(inner)}
    if not _wrong(draw, 6):
        names = (
            ["text"]
            if not _wrong(draw)
            else draw(st.lists(st.sampled_from(["text", "audio", "x", ""]), max_size=3, unique=True))
        )
        doc["payload"] = draw(odd) if _wrong(draw, 10) else {name: draw(item(name)) for name in names}
    if _wrong(draw, 6):
        for key in draw(st.lists(st.text(max_size=6), min_size=1, max_size=2)):
            doc[key] = draw(odd)
    return doc


def wire(draw: st.DrawFn, doc: Any) -> bytes:
    """The bytes sent: the body's JSON, now and then cut short, not UTF-8, or not JSON at all."""
    try:
        raw = orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError):  # nested past 254 levels, or an int past 64 bits
        raw = json.dumps(doc, ensure_ascii=False).encode()
    choice = draw(st.integers(0, 39))
    if choice == 39:
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if choice == 38:
        return b"\xff\xfe" + raw
    if choice == 37:
        return draw(st.binary(max_size=64))
    if choice == 36:  # what orjson refuses but Python's json takes
        return draw(st.sampled_from([b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1, "a": 2}', b"\x00", b""]))
    return raw


@st.composite
def once_bytes(draw: st.DrawFn, service: str, params: Any = None) -> bytes:
    return wire(draw, draw(body(service, params=params)))


@st.composite
def frames(draw: st.DrawFn, service: str) -> list[bytes | str]:
    """A session: a first frame, maybe later frames, some sent as binary messages."""
    sent = [wire(draw, draw(body(service)))]
    for _ in range(draw(st.integers(0, 3))):
        sent.append(wire(draw, draw(body(service, first=False))))
    return [f if _wrong(draw, 5) else f.decode("utf-8", "replace") for f in sent]


# -- checks -------------------------------------------------------------------------------------


def protocol_header(doc: Any) -> dict[str, Any]:
    """The header of an answer in the protocol: ``{"header": {"code", "message", "sid"}}``."""
    assert isinstance(doc, dict) and isinstance(doc.get("header"), dict), doc
    header: dict[str, Any] = doc["header"]
    assert isinstance(header.get("code"), int), doc
    if header["code"] != 0:
        assert isinstance(header.get("message"), str) and header["message"], doc
        assert isinstance(header.get("sid"), str), doc
    return header


#: A parameterised service served by examples/echo's wrapper: a parameter of each JSON type,
#: bounds, an enum, a pattern, formats (date-time, regex), an array and a free object.
TYPED_YAML = """
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: typed, version: "1.0.0", name: typed}
spec:
  interface: once
  client_errors: [20001, 20002]
  request:
    parameters:
      properties:
        speed: {type: integer, minimum: 0, maximum: 100}
        count: {type: integer, format: int32}
        rate: {type: number, minimum: 0.5, maximum: 2.0}
        voice: {type: string, enum: [a, b]}
        name: {type: string, maxLength: 16, pattern: "^[a-z]+$"}
        when: {type: string, format: date-time}
        rule: {type: string, format: regex}
        loud: {type: boolean}
        tags: {type: array, items: {type: integer}, maxItems: 4}
        opts: {type: object}
      required: [speed]
    payload:
      properties:
        text: {type: text, encoding: [utf8, raw]}
        audio: {type: audio, encoding: [raw], sample_rate: 16000}
      required: [text]
  response:
    payload:
      properties:
        echo: {type: text, encoding: [utf8, raw]}  # echo's wrapper answers in the input's encoding
"""
