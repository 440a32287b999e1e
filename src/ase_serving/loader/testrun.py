"""Run a wrapper project's test cases in this process, without a server (``asectl loader test``).

The steps mirror what a loader worker does (contract check, ``wrapperInit`` with the ``[wrapper]``
table, once calls / sessions through :class:`~ase_serving.loader.host.EngineHost` and
:class:`~ase_serving.loader.host.EngineSession`, ``wrapperFini``), so a project that passes here
behaves the same when served. Every wrapper call has a deadline: a hung wrapper fails its case
with 10114 instead of hanging the run.

The gateway's side is checked too: the project's API definition (every problem, as ``asectl api
create`` reports it), and each case's request against the service schema with the gateway's own
validator (:mod:`ase_serving.schema.validate`), so a request the gateway would refuse with 10163
fails here with the same message. An exception in wrapper code fails its case with 10910, as
served, and the case carries the traceback.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ase_serving import errors
from ase_serving.errors import AseError
from ase_serving.loader.host import EngineHost, EngineSession, wrapper_traceback
from ase_serving.loader.project import load_project
from ase_serving.loader.project_schemas import no_schema_line, read_project_api
from ase_serving.loader.settings import LoaderSettings
from ase_serving.loader.testcases import ONCE, TestCase, load_cases
from ase_serving.protocol.items import DataItem, Result
from ase_serving.protocol.public import frame_from_public, request_from_public
from ase_serving.schema.validate import RequestValidator
from ase_serving.wrapper.plugin import PluginError, load_plugin
from ase_serving.wrapper.push import set_sink

T = TypeVar("T")
_sids = itertools.count(1)
_SHOWN = 60  # bytes of data shown in a reason


@dataclass
class CaseResult:
    """The outcome of one case; ``reason`` says why it failed (empty when ok)."""

    name: str
    ok: bool
    code: int = 0
    message: str = "success"
    ms: float = 0.0
    reason: str = ""
    file: str = ""
    #: The traceback of an exception the wrapper raised in this case ("" when none did).
    traceback: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "ms": round(self.ms, 3),
            "reason": self.reason,
            "file": self.file,
            "traceback": self.traceback,
        }


@dataclass
class Report:
    """Everything ``asectl loader test`` prints: contract/init problems and the cases."""

    project: Path
    problems: list[str] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    #: True when DIR/tests holds no case at all (not a failure, but worth a warning)
    no_cases: bool = False
    #: Worth a line, not a failure (no API schema, an alias in ai_api.yml, ...).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.cases)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "cases": [c.to_json() for c in self.cases],
        }


def with_deadline(func: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run ``func`` in a daemon thread; past ``timeout_s`` raise 10114 (the thread is abandoned:
    Python cannot stop it, and a daemon thread does not keep the process alive)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=f"ase-test {what}", daemon=True).start()
    if not done.wait(timeout_s):
        raise errors.Timeout(f"{what} did not return within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def run_project(folder: str | Path) -> Report:
    """Check ``folder``'s wrapper and API definition, init it, run every case in ``folder/tests``, fini.

    Raises :class:`~ase_serving.loader.project.ProjectError` when the folder or ase.toml is
    unusable; wrapper and definition problems (contract, init, fini, ai_api.yml) are returned in
    ``Report.problems``.
    """
    settings = load_project(folder)
    report = Report(project=settings.project_dir)
    api = read_project_api(settings)
    report.problems.extend(api.problems)
    report.warnings.extend(api.warnings)
    if api.service is None and not api.problems:
        report.warnings.append(no_schema_line(settings.service))
    try:
        plugin = load_plugin(settings.project_dir, sorted(settings.modes) or None)
    except PluginError as exc:
        report.problems.extend(exc.problems)
        return report
    cases = load_cases(settings.project_dir / "tests")
    report.no_cases = not cases
    raised: list[str] = []
    host = EngineHost(plugin, on_exception=lambda _name, exc: raised.append(wrapper_traceback(exc)))
    try:
        with_deadline(lambda: host.init(settings.wrapper_config), settings.once_timeout_s, "wrapperInit")
    except AseError as exc:
        trace = f"\n{raised[-1]}" if raised else ""
        report.problems.append(f"wrapperInit failed ({exc.code}): {exc.message}{trace}")
        return report
    schema = api.service
    validator = RequestValidator(schema.schemainput) if schema is not None else None
    runner = CaseRunner(host, settings, schema.accepts if schema is not None else None, validator, raised)
    try:
        report.cases = [runner.run(case) for case in cases]
    finally:
        set_sink(None)
        try:
            with_deadline(host.fini, settings.drain_timeout_s or 1.0, "wrapperFini")
        except AseError as exc:
            report.problems.append(f"wrapperFini failed ({exc.code}): {exc.message}")
    return report


def _check_body(validator: RequestValidator, body: dict[str, Any], first: bool) -> None:
    """The gateway's schema check of a case's request body or frame: raises what it answers (10163 ...)."""
    try:
        sent = orjson.loads(orjson.dumps(body))  # what travels: JSON (a YAML date becomes text)
    except orjson.JSONEncodeError:
        sent = body
    validator.check(sent, first)


def gateway_refusal(validator: RequestValidator | None, case: TestCase) -> Result | None:
    """What the gateway answers ``case`` before any engine sees it (10163 ...), or None when it
    would pass the case on; for runs that call a loader directly (``loader test --image``)."""
    if validator is None:
        return None
    try:
        _check_body(validator, case.request, True)
        if case.mode != ONCE:
            for body in case.frames:
                _check_body(validator, body, False)
    except AseError as exc:
        return Result(exc.code, exc.message)
    return None


def run_case(case: TestCase, produce: Callable[[], Result]) -> CaseResult:
    """One case's :class:`CaseResult`: ``produce()`` gives its result, which is checked against the
    case's expectations (an invalid case is reported without calling ``produce``)."""
    start = time.perf_counter()
    out = CaseResult(name=case.name, ok=False, file=str(case.file))
    if case.problem is not None:
        out.code, out.message, out.reason = -1, "invalid test case", case.problem
        return out
    result = produce()
    out.ms = (time.perf_counter() - start) * 1000
    out.code, out.message = result.code, result.message
    out.reason = check(case, result)
    out.ok = not out.reason
    return out


class CaseRunner:
    """Runs cases against an initialised :class:`EngineHost`, one at a time."""

    def __init__(
        self,
        host: EngineHost,
        settings: LoaderSettings,
        accepts: dict[str, dict[str, Any]] | None = None,
        validator: RequestValidator | None = None,
        raised: list[str] | None = None,
    ) -> None:
        self.host = host
        self.settings = settings
        #: The outputs of the project's service schema (as the gateway builds requests), if known.
        self.accepts = accepts
        #: The gateway's check of a request against the project's service schema, if it has one.
        self.validator = validator
        #: Tracebacks of the wrapper's exceptions, appended by the host (see run_project).
        self.raised = raised if raised is not None else []
        #: (handle, items, code, message) pushed by ``ase_serving.wrapper.callback``
        self.pushed: queue.Queue[tuple[str, list[DataItem], int, str]] = queue.Queue()
        host.install_callback(lambda h, items, code, msg: self.pushed.put((h, items, code, msg)))

    def run(self, case: TestCase) -> CaseResult:
        """Run one case and check its expectations; never raises for anything a wrapper does."""
        self.raised.clear()
        out = run_case(case, lambda: self._once(case) if case.mode == ONCE else self._session(case))
        out.traceback = "\n".join(self.raised)
        return out

    def _request(self, body: dict[str, Any]) -> Any:
        parameter = body.get("parameter")
        # A case may name the service in `parameter`; when it names several, ours is the one.
        service = self.settings.service if isinstance(parameter, dict) and len(parameter) > 1 else ""
        return request_from_public(
            body, service_id=service, sid=f"test{next(_sids):04d}", accepts=self.accepts
        )

    def _once(self, case: TestCase) -> Result:
        refused = gateway_refusal(self.validator, case)
        if refused is not None:
            return refused
        try:
            req = self._request(case.request)
        except AseError as exc:
            return Result(exc.code, exc.message)
        try:
            return with_deadline(lambda: self.host.once(req), self.settings.once_timeout_s, "wrapperOnceExec")
        except AseError as exc:
            return Result(exc.code, exc.message, sid=req.sid)

    def _session(self, case: TestCase) -> Result:
        result = Result()
        timeout = self.settings.read_timeout_s
        refused = gateway_refusal(self.validator, case)
        if refused is not None:
            return refused
        try:
            first = self._request(case.request)
            frames = [frame_from_public(body) for body in case.frames]
        except AseError as exc:
            return Result(exc.code, exc.message)
        result.sid = first.sid
        self._drain(None, None)  # pushes left over from an earlier case are not this session's
        try:
            handle = with_deadline(lambda: self.host.create(first), timeout, "wrapperCreate")
        except AseError as exc:
            return Result(exc.code, exc.message, sid=first.sid)
        state = EngineSession(self.host, handle, self.settings.session_results)
        try:
            todo: list[tuple[int, list[DataItem]]] = []
            if first.items or first.status == 2:
                todo.append((first.status, first.items))
            todo.extend(frames)
            for status, items in todo:

                def step(s: int = status, i: list[DataItem] = items) -> list[DataItem]:
                    return state.frame(s, i)[0]

                result.items.extend(with_deadline(step, timeout, "a frame"))
                self._drain(state, result)
            deadline = time.monotonic() + timeout
            while not state.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.Timeout(
                        f"the session did not end within read_timeout ({timeout:g} s) after the last "
                        "frame: no result with status 2 (end the last frame with header.status 2; "
                        "an async wrapper must push a status-2 result with callback)"
                    )
                self._drain(state, result, wait_s=left)
        except AseError as exc:
            result.code, result.message = exc.code, exc.message
        finally:
            try:
                with_deadline(state.destroy, timeout, "wrapperDestroy")
            except AseError as exc:  # destroy failing is logged by the host; a hang is worth reporting
                if result.code == 0:
                    result.code, result.message = exc.code, exc.message
        return result

    def _drain(self, state: EngineSession | None, result: Result | None, wait_s: float = 0.0) -> None:
        """Take pushed results for this session (waiting up to ``wait_s`` for the first one)."""
        while True:
            try:
                if wait_s > 0:
                    handle, items, code, message = self.pushed.get(timeout=wait_s)
                    wait_s = 0.0
                else:
                    handle, items, code, message = self.pushed.get_nowait()
            except queue.Empty:
                return
            if state is None or result is None or handle != state.handle or state.ended:
                continue
            if code != 0:
                state.ended = True
                raise errors.error_for(code, message)
            result.items.extend(items)
            state.push(items)


def _data_of(items: list[DataItem], key: str) -> bytes:
    return b"".join(i.data for i in items if i.key == key)


def _show(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def check(case: TestCase, result: Result) -> str:
    """Why ``result`` does not meet ``case.expect`` (empty string when it does)."""
    exp = case.expect
    reasons: list[str] = []
    if result.code != exp.code:
        got = f"got {result.code}" + (f" ({result.message})" if result.code else "")
        return f"expected code {exp.code}, {got}"
    if exp.message_contains is not None and exp.message_contains.lower() not in result.message.lower():
        reasons.append(f"message {result.message!r} does not contain {exp.message_contains!r}")
    keys = {i.key for i in result.items}
    missing = [k for k in exp.outputs if k not in keys]
    if missing:
        reasons.append(f"output(s) {', '.join(missing)} missing (got {', '.join(sorted(keys)) or 'none'})")
    for key, want in exp.payload.items():
        got_data = _data_of(result.items, key)
        if got_data != want:
            reasons.append(f"output {key} is {_show(got_data)}, expected {_show(want)}")
    for key, text in exp.contains.items():
        decoded = _data_of(result.items, key).decode("utf-8", errors="replace")
        if text.lower() not in decoded.lower():
            reasons.append(f"output {key} {_show(decoded.encode())} does not contain {text!r}")
    return "; ".join(reasons)
