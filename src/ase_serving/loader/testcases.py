"""Test cases of a wrapper project (``DIR/tests/*.json|yml|yaml``), as ``asectl loader test`` runs them.

A case file holds one case (a mapping) or a list of them. Loading resolves everything the runner
needs up front: data given as ``{utf8: ...}`` or ``{file: ...}`` becomes base64, a ``stream`` becomes
explicit frames, and every mistake in a file becomes a :class:`TestCase` with ``problem`` set (the
runner reports it as a failed case) instead of an exception. The format is documented in
``docs/test-cases.md``.
"""

from __future__ import annotations

import base64
import copy
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from ase_serving.errors import UserError
from ase_serving.protocol.items import DataType, Result, Status
from ase_serving.protocol.public import frame_from_public, request_from_public

if TYPE_CHECKING:
    from ase_serving.loader.client import LoaderClient

ONCE, SESSION = "once", "session"
SUFFIXES = (".json", ".yml", ".yaml")
_DATA_FIELDS = tuple(t.field for t in DataType)
_CASE_KEYS = frozenset({"name", "mode", "request", "frames", "stream", "expect"})
_EXPECT_KEYS = frozenset({"code", "outputs", "payload", "contains", "message_contains"})
_STREAM_KEYS = frozenset({"payload", "file", "chunk", "type"})


class CaseError(UserError, ValueError):
    """A case file says something the runner cannot do; the message names the place."""


@dataclass
class Expect:
    """What a case expects of the result(s)."""

    code: int = 0
    outputs: list[str] = field(default_factory=list)
    #: output key -> exact bytes (a session's data of that key over all results, concatenated)
    payload: dict[str, bytes] = field(default_factory=dict)
    #: output key -> text the decoded output must contain (case-insensitive)
    contains: dict[str, str] = field(default_factory=dict)
    message_contains: str | None = None


@dataclass
class TestCase:
    """One case, ready to run: public bodies with base64 data, frames already cut."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    file: Path
    mode: str = ONCE
    #: once: the whole public request body; session: the first frame
    request: dict[str, Any] = field(default_factory=dict)
    #: session: the later public frame bodies, in order
    frames: list[dict[str, Any]] = field(default_factory=list)
    expect: Expect = field(default_factory=Expect)
    #: set when the case could not be read; the runner reports it as a failure
    problem: str | None = None


def case_files(tests_dir: Path) -> list[Path]:
    """The case files of a ``tests`` folder, sorted by name (an absent folder has none)."""
    if not tests_dir.is_dir():
        return []
    return sorted(p for p in tests_dir.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def load_cases(tests_dir: Path) -> list[TestCase]:
    """Every case in ``tests_dir``; unreadable files and bad cases come back with ``problem`` set."""
    cases: list[TestCase] = []
    for path in case_files(tests_dir):
        cases.extend(load_file(path))
    return cases


def load_file(path: Path) -> list[TestCase]:
    """The cases of one file (one failed case naming the file when it cannot be parsed)."""
    try:
        raw = path.read_bytes()
        doc = orjson.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except OSError as exc:
        return [TestCase(name=path.stem, file=path, problem=f"{path.name}: cannot read: {exc.strerror}")]
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())
        return [TestCase(name=path.stem, file=path, problem=f"{path.name}: cannot parse: {detail}")]
    if isinstance(doc, dict):
        docs: list[Any] = [doc]
    elif isinstance(doc, list) and doc:
        docs = doc
    else:
        what = "empty" if not doc else f"a {type(doc).__name__}"
        problem = f"{path.name}: a case file holds a mapping (one case) or a list of cases, not {what}"
        return [TestCase(name=path.stem, file=path, problem=problem)]
    cases = []
    for i, entry in enumerate(docs):
        default = path.stem if len(docs) == 1 else f"{path.stem}#{i + 1}"
        where = path.name if len(docs) == 1 else f"{path.name} case {i + 1}"
        name = entry.get("name", default) if isinstance(entry, dict) else default
        name = str(name)
        try:
            cases.append(parse_case(entry, path, name, where))
        except CaseError as exc:
            cases.append(TestCase(name=name, file=path, problem=str(exc)))
    return cases


def parse_case(entry: Any, path: Path, name: str, where: str) -> TestCase:
    """One case mapping -> a :class:`TestCase`; raises :class:`CaseError` naming ``where``."""
    if not isinstance(entry, dict):
        raise CaseError(f"{where}: a case must be a mapping, not {type(entry).__name__}")
    unknown = sorted(set(entry) - _CASE_KEYS)
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {', '.join(unknown)} (use {', '.join(sorted(_CASE_KEYS))})")
    base = path.parent
    frames_raw = entry.get("frames")
    stream = entry.get("stream")
    if frames_raw is not None and stream is not None:
        raise CaseError(f"{where}: give either 'frames' or 'stream', not both")
    mode = entry.get("mode", SESSION if frames_raw is not None or stream is not None else ONCE)
    if mode not in (ONCE, SESSION):
        raise CaseError(f"{where}: mode must be once or session, not {mode!r}")
    if mode == ONCE and (frames_raw is not None or stream is not None):
        raise CaseError(f"{where}: 'frames' and 'stream' are for session cases (mode: session)")
    request = _mapping(entry.get("request", {}), f"{where}: request")
    request = resolve_body(request, base, f"{where}: request")
    frames: list[dict[str, Any]] = []
    if frames_raw is not None:
        if not isinstance(frames_raw, list):
            raise CaseError(f"{where}: frames must be a list of frame bodies")
        for i, frame in enumerate(frames_raw):
            label = f"{where}: frames[{i}]"
            frames.append(resolve_body(_mapping(frame, label), base, label))
    if mode == SESSION:
        header = request.setdefault("header", {})
        if isinstance(header, dict):
            header.setdefault("status", Status.BEGIN)
    if stream is not None:
        frames = cut_stream(request, stream, base, f"{where}: stream")
    expect = parse_expect(entry.get("expect", {}), base, f"{where}: expect")
    return TestCase(name=name, file=path, mode=mode, request=request, frames=frames, expect=expect)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CaseError(f"{where} must be a mapping, not {type(value).__name__}")
    return copy.deepcopy(value)


def data_bytes(value: Any, base: Path, where: str) -> bytes | None:
    """``{utf8: text}`` or ``{file: path}`` -> bytes; ``None`` for anything else (left as it is)."""
    if not isinstance(value, dict):
        return None
    if set(value) == {"utf8"}:
        return str(value["utf8"]).encode("utf-8")
    if set(value) == {"file"}:
        file = base / str(value["file"])
        try:
            return file.read_bytes()
        except OSError as exc:
            raise CaseError(f"{where}: cannot read {file}: {exc.strerror}") from None
    raise CaseError(f"{where}: data must be a base64 string, {{utf8: text}} or {{file: path}}, not {value!r}")


def resolve_body(body: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """Turn ``{utf8: ..}`` / ``{file: ..}`` data fields of ``body['payload']`` into base64, in place."""
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return body  # not ours to judge: the protocol conversion reports a bad payload as the server would
    for name, entry in payload.items():
        if not isinstance(entry, dict):
            continue
        for fld in _DATA_FIELDS:
            if fld in entry:
                data = data_bytes(entry[fld], base, f"{where}.payload.{name}.{fld}")
                if data is not None:
                    entry[fld] = base64.b64encode(data).decode("ascii")
    return body


def cut_stream(request: dict[str, Any], stream: Any, base: Path, where: str) -> list[dict[str, Any]]:
    """Cut ``stream.file`` into frames: the first chunk goes into ``request`` (status 0), the rest
    into the returned frames, the last of which has status 2."""
    if not isinstance(stream, dict):
        raise CaseError(f"{where} must be a mapping with payload, file and chunk")
    unknown = sorted(set(stream) - _STREAM_KEYS)
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {', '.join(unknown)} (use payload, file, chunk, type)")
    name, file, chunk = stream.get("payload"), stream.get("file"), stream.get("chunk", 3200)
    if not isinstance(name, str) or not name:
        raise CaseError(f"{where}: 'payload' must name the payload entry the data goes into")
    if not isinstance(file, str) or not file:
        raise CaseError(f"{where}: 'file' must name a file (relative to the case file)")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise CaseError(f"{where}: 'chunk' must be a positive number of bytes, not {chunk!r}")
    data = data_bytes({"file": file}, base, where) or b""
    payload = request.setdefault("payload", {})
    if not isinstance(payload, dict):
        raise CaseError(f"{where}: request.payload must be a mapping")
    attrs = payload.get(name, {})
    if not isinstance(attrs, dict):
        raise CaseError(f"{where}: request.payload.{name} must be a mapping")
    fld = stream.get("type") or next((f for f in _DATA_FIELDS if f in attrs), None)
    fld = fld or (name if name in _DATA_FIELDS else DataType.AUDIO.field)
    if fld not in _DATA_FIELDS:
        raise CaseError(f"{where}: 'type' must be one of {', '.join(_DATA_FIELDS)}, not {fld!r}")
    attrs = {k: v for k, v in attrs.items() if k not in _DATA_FIELDS}
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    if len(chunks) == 1:
        chunks.append(b"")  # a one-chunk stream still needs a last frame (status 2)

    def entry(part: bytes, status: int) -> dict[str, Any]:
        return {**attrs, "status": status, fld: base64.b64encode(part).decode("ascii")}

    payload[name] = entry(chunks[0], Status.BEGIN)
    header = request.setdefault("header", {})
    if isinstance(header, dict):
        header["status"] = Status.BEGIN
    frames = []
    for i, part in enumerate(chunks[1:], start=1):
        status = Status.END if i == len(chunks) - 1 else Status.CONTINUE
        frames.append({"header": {"status": status}, "payload": {name: entry(part, status)}})
    return frames


def parse_expect(value: Any, base: Path, where: str) -> Expect:
    """The ``expect`` mapping -> :class:`Expect`."""
    raw = _mapping(value, where)
    unknown = sorted(set(raw) - _EXPECT_KEYS)
    if unknown:
        raise CaseError(
            f"{where}: unknown key(s) {', '.join(unknown)} (use {', '.join(sorted(_EXPECT_KEYS))})"
        )
    code = raw.get("code", 0)
    if isinstance(code, bool) or not isinstance(code, int):
        raise CaseError(f"{where}: code must be an integer, not {code!r}")
    outputs = raw.get("outputs", [])
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise CaseError(f"{where}: outputs must be a list of output names")
    payload: dict[str, bytes] = {}
    for key, data in _mapping(raw.get("payload", {}), f"{where}: payload").items():
        label = f"{where}: payload.{key}"
        if isinstance(data, str):
            try:
                payload[key] = base64.b64decode(data, validate=True)
            except ValueError:
                raise CaseError(f"{label} is not valid base64 (use {{utf8: text}} for plain text)") from None
        else:
            got = data_bytes(data, base, label)
            if got is None:
                raise CaseError(f"{label} must be base64, {{utf8: text}} or {{file: path}}")
            payload[key] = got
    contains = {str(k): str(v) for k, v in _mapping(raw.get("contains", {}), f"{where}: contains").items()}
    message = raw.get("message_contains")
    return Expect(
        code=code,
        outputs=list(outputs),
        payload=payload,
        contains=contains,
        message_contains=None if message is None else str(message),
    )


def call_case(client: LoaderClient, case: TestCase, timeout: float) -> list[Result]:
    """A test case (``asectl loader test`` format) sent in the public protocol: its results (a
    session's frames, in order)."""
    req = request_from_public(case.request, sid=f"call{secrets.token_hex(6)}")
    if case.mode == ONCE:
        return [client.once(req, timeout=timeout)]
    frames = [frame_from_public(body) for body in case.frames]
    if req.status == 3:
        req.status = 0
    session = client.session(req, timeout=timeout)
    try:
        for status, items in frames:
            if session.ended:
                break
            session.send(status, items)
        return session.results(timeout=timeout)
    finally:
        session.close()
