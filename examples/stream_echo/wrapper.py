"""stream_echo: a session engine that echoes every text frame, in the ``Wrapper`` class style.

Results are synchronous: the loader calls ``wrapperRead`` after each ``wrapperWrite`` and sends
what it returns. The echo of the client's last frame (data status 2) has status 2, which ends the
session.
"""

from __future__ import annotations

import itertools
import threading

ERR_NOT_TEXT = 20101
ERR_NO_SESSION = 20102


class Wrapper:
    """The loader creates one instance per worker process and calls its methods."""

    def __init__(self) -> None:
        self.prefix = ""
        self.sessions: dict[str, list[dict]] = {}  # handle -> results not read yet
        self.lock = threading.Lock()  # sessions of different clients may run in parallel threads
        self.ids = itertools.count(1)

    def wrapperInit(self, config: dict) -> int:
        self.prefix = config.get("prefix", "")
        return 0

    def wrapperFini(self) -> int:
        self.sessions.clear()
        return 0

    def wrapperCreate(self, usrTag: str, params: dict, psrIds: list, psrCnt: int) -> str:
        handle = f"echo-{next(self.ids)}-{usrTag}"
        with self.lock:
            self.sessions[handle] = []
        return handle

    def wrapperWrite(self, handle: str, datas: list) -> int:
        with self.lock:
            pending = self.sessions.get(handle)
        if pending is None:
            return ERR_NO_SESSION
        for item in datas:
            if item["type"] != 0:
                return ERR_NOT_TEXT
            try:
                text = item["data"].decode("utf-8")
            except UnicodeDecodeError:
                return ERR_NOT_TEXT
            pending.append(
                {
                    "key": "echo",
                    "data": self.prefix + text,
                    # The last input frame (status 2) gives the last result: it ends the session.
                    "status": 2 if item["status"] == 2 else 1,
                    "type": 0,
                    "desc": {"encoding": item["desc"].get("encoding", "utf8")},
                }
            )
        return 0

    def wrapperRead(self, handle: str) -> list:
        with self.lock:
            pending = self.sessions.get(handle, [])
            out = list(pending)
            pending.clear()
        return out

    def wrapperDestroy(self, handle: str) -> int:
        with self.lock:
            self.sessions.pop(handle, None)
        return 0

    def wrapperError(self, ret: int) -> str:
        if ret == ERR_NOT_TEXT:
            return "stream_echo echoes UTF-8 text frames only (payload data field `text`)"
        if ret == ERR_NO_SESSION:
            return "no such session (it has ended)"
        return f"unknown error {ret}"
