"""The engine host: runs a loaded wrapper's functions and turns every outcome into a result or a code.

Transport-neutral: a loader worker process drives it over its pipe, ``asectl loader test`` drives it
in-process. Nothing a wrapper does (exception, bad return value, bad result item) escapes as anything
but an :class:`~ase_serving.errors.AseError` or a :class:`~ase_serving.protocol.Result` with a code.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from ase_serving import errors
from ase_serving.errors import WrapperFailure
from ase_serving.protocol.items import DataItem, Request, Result, Status
from ase_serving.wrapper.items import ItemError, from_wrapper, plain_item, to_wrapper
from ase_serving.wrapper.plugin import Plugin
from ase_serving.wrapper.push import set_sink

log = logging.getLogger(__name__)

#: (handle, result items, code, message) for async results pushed by ``callback``.
PushSink = Callable[[str, list[DataItem], int, str], None]
#: (function name, the exception a wrapper function raised) -> None.
ExceptionSink = Callable[[str, BaseException], None]
#: Places (file, line) whose traceback was logged in full; later ones there get one line.
_LOGGED_MAX = 256


def wrapper_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised in wrapper code, from the wrapper's function on (the
    host's own frame, which called it, left out)."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def raised_at(exc: BaseException) -> str:
    """``FILE:LINE`` of the innermost frame of ``exc`` (where it was raised), or ""."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class TracebackLog:
    """Logs a wrapper's exceptions: the traceback the first time one is raised at a place, one line
    (naming the place) after that, so that a wrapper failing on every request cannot flood the log."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, name: str, exc: BaseException) -> None:
        where = raised_at(exc)
        key = (name, where)
        if key in self._seen:
            log.error("%s raised %s (at %s; traceback logged before)", name, errors.describe(exc), where)
            return
        if len(self._seen) < _LOGGED_MAX:
            self._seen.add(key)
        log.error("%s raised %s (at %s)\n%s", name, errors.describe(exc), where, wrapper_traceback(exc))


class EngineHost:
    """One loaded wrapper in this process."""

    def __init__(self, plugin: Plugin, on_exception: ExceptionSink | None = None) -> None:
        self.plugin = plugin
        self._f = plugin.funcs
        #: Told of every exception a wrapper function raises (default: logged with its traceback).
        self.on_exception: ExceptionSink = on_exception or TracebackLog()

    # -- life cycle -------------------------------------------------------------------------
    def init(self, config: dict[str, str]) -> None:
        ret = self._call("wrapperInit", errors.WRAPPER_INIT, dict(config))
        self._check_ret("wrapperInit", ret, errors.WRAPPER_INIT)

    def fini(self) -> None:
        if "wrapperFini" in self._f:
            ret = self._call("wrapperFini", errors.WRAPPER_FINI)
            self._check_ret("wrapperFini", ret, errors.WRAPPER_FINI)

    def error_text(self, code: int) -> str:
        """``wrapperError(code)``, guarded; empty when the wrapper has none or it fails."""
        func = self._f.get("wrapperError")
        if func is None:
            return ""
        try:
            text = func(code)
        except Exception as exc:
            log.warning("wrapperError(%s) raised %s", code, errors.describe(exc))
            return ""
        return text if isinstance(text, str) else str(text or "")

    # -- once -------------------------------------------------------------------------------
    def once(self, req: Request) -> Result:
        """Run ``wrapperOnceExec``; never raises."""
        if "wrapperOnceExec" not in self._f:
            return Result(errors.UNSUPPORTED_MODE, "this service takes sessions only (no wrapperOnceExec)")
        resp: list[Any] = []
        try:
            ret = self._call(
                "wrapperOnceExec",
                errors.WRAPPER_EXEC,
                req.sid,
                params_for(req),
                [to_wrapper(i) for i in req.items],
                resp,
                list(req.psr_ids),
                len(req.psr_ids),
            )
            if ret is None:
                raise WrapperFailure(
                    f"wrapperOnceExec of {self.plugin.path} returned None: return 0 once the results "
                    "are appended to respData, or an error code (its text comes from wrapperError)",
                    errors.WRAPPER_EXEC,
                )
            self._check_ret("wrapperOnceExec", ret, errors.WRAPPER_EXEC)
            items = self.convert(resp, "wrapperOnceExec result item", Status.ONCE)
        except errors.AseError as exc:
            return Result(exc.code, exc.message, sid=req.sid)
        return Result(items=items, sid=req.sid)

    # -- sessions ---------------------------------------------------------------------------
    def create(self, req: Request) -> str:
        if "wrapperCreate" not in self._f:
            raise WrapperFailure(
                "this service takes once requests only (no wrapperCreate)", errors.UNSUPPORTED_MODE
            )
        handle = self._call(
            "wrapperCreate",
            errors.WRAPPER_CREATE,
            req.sid,
            params_for(req),
            list(req.psr_ids),
            len(req.psr_ids),
        )
        if isinstance(handle, bytes):
            handle = handle.decode()
        if handle is None or handle == "":
            raise WrapperFailure("wrapperCreate returned no handle", errors.WRAPPER_CREATE)
        if not isinstance(handle, str):
            handle = str(handle)
        return handle

    def write(self, handle: str, items: list[DataItem]) -> None:
        ret = self._call("wrapperWrite", errors.WRAPPER_WRITE, handle, [to_wrapper(i) for i in items])
        self._check_ret("wrapperWrite", ret, errors.WRAPPER_WRITE)

    def read(self, handle: str, default_status: int = Status.CONTINUE) -> list[DataItem]:
        raw = self._call("wrapperRead", errors.WRAPPER_READ, handle)
        if raw is None:
            return []
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, (list, tuple)):
            raise WrapperFailure(
                f"wrapperRead returned {type(raw).__name__}, expected a list of data items",
                errors.WRAPPER_READ,
            )
        return self.convert(list(raw), "wrapperRead result item", default_status)

    def destroy(self, handle: str) -> Result:
        """``wrapperDestroy``; never raises (it runs however the session ended)."""
        try:
            ret = self._call("wrapperDestroy", errors.WRAPPER_DESTROY, handle)
            self._check_ret("wrapperDestroy", ret, errors.WRAPPER_DESTROY)
        except errors.AseError as exc:
            log.warning("wrapperDestroy(%r) failed: %s", handle, exc)
            return Result(exc.code, exc.message)
        return Result()

    def install_callback(self, sink: PushSink) -> None:
        """Route ``ase_serving.wrapper.callback`` of this process to ``sink`` (converted items)."""

        def receive(handle: str, raw: list[Any], ret: int) -> None:
            if ret != 0:
                sink(handle, [], ret, self.error_text(ret) or f"callback reported error {ret}")
                return
            try:
                items = self.convert(raw, "callback result item", Status.CONTINUE)
            except errors.AseError as exc:
                sink(handle, [], exc.code, exc.message)
                return
            sink(handle, items, 0, "success")

        set_sink(receive)

    # -- helpers ----------------------------------------------------------------------------
    def convert(self, raw: list[Any], where: str, default_status: int) -> list[DataItem]:
        out = []
        for i, obj in enumerate(raw):
            item = plain_item(obj, default_status)
            if item is None:
                try:
                    item = from_wrapper(obj, f"{where} {i}", default_status)
                except ItemError as exc:
                    raise WrapperFailure(str(exc), errors.WRAPPER_EXEC) from None
            out.append(item)
        return out

    def _call(self, name: str, code: int, *args: Any) -> Any:
        func = self._f.get(name)
        if func is None:
            raise WrapperFailure(f"{name} is not defined in wrapper.py", code)
        try:
            return func(*args)
        except Exception as exc:
            self.on_exception(name, exc)
            raise WrapperFailure(f"{name} raised {errors.describe(exc)}", errors.WRAPPER_EXCEPTION) from None

    def _check_ret(self, name: str, ret: Any, code: int) -> None:
        if ret is None or ret == 0:
            return
        if isinstance(ret, bool) or not isinstance(ret, int):
            raise WrapperFailure(f"{name} returned {ret!r}, expected an int (0 = ok)", code)
        text = self.error_text(ret)
        raise WrapperFailure(text or f"{name} returned error code {ret}", ret)


def params_for(req: Request) -> dict[str, str]:
    """What a wrapper gets as ``params``: header fields, the sid, the service parameters, then
    the attributes asked of each output as ``accept.<output>.<attribute>`` (the schema's
    defaults, or what ``parameter.<service>.<output>`` asked: ``accept.audio.encoding``)."""
    params = dict(req.headers)
    if req.sid:
        params["sid"] = req.sid
    params.update(req.params)
    for spec in req.expect:
        for name, value in spec.desc.items():
            params[f"accept.{spec.key}.{name}"] = value
    return params


def ends_session(items: list[DataItem]) -> bool:
    """A result item with status 2 ends the session."""
    return any(i.status == Status.END for i in items)


#: How a session's last result is found (``[loader] session_results`` in ase.toml).
SYNC, ASYNC, AUTO = "sync", "async", "auto"


class EngineSession:
    """The end-of-session rule, shared by the loader's workers and ``asectl loader test``.

    A session ends when a result item has status 2 (from ``wrapperRead`` or a callback), or on an
    error. After the caller's last frame (status 2) without such an item: in ``sync`` mode the
    session ends with that frame's results; in ``async`` mode the loader waits for a callback
    carrying status 2 (bounded by the read timeout); ``auto`` is async once the wrapper has pushed
    a callback for this session, sync otherwise.
    """

    def __init__(self, host: EngineHost, handle: str, results: str = AUTO) -> None:
        self.host = host
        self.handle = handle
        self.results = results
        self.pushed = False
        self.ended = False
        self.destroyed = False

    def frame(self, status: int, items: list[DataItem]) -> tuple[list[DataItem], bool, bool]:
        """Write one frame and read -> (results, session ended, wait for an async end).

        Raises :class:`~ase_serving.errors.AseError` when the wrapper fails.
        """
        if self.ended:
            raise errors.frame_after_end()
        self.host.write(self.handle, items)
        out = self.host.read(self.handle)
        if ends_session(out):
            self.ended = True
            return out, True, False
        if status != Status.END:
            return out, False, False
        if self.results == ASYNC or (self.results == AUTO and self.pushed):
            return out, False, True
        self.ended = True
        return out, True, False

    def push(self, items: list[DataItem]) -> bool:
        """Note an async result; True when it ends the session."""
        self.pushed = True
        if ends_session(items):
            self.ended = True
        return self.ended

    def destroy(self) -> Result:
        """``wrapperDestroy``, once, however the session ended."""
        self.ended = True
        if self.destroyed:
            return Result()
        self.destroyed = True
        return self.host.destroy(self.handle)
