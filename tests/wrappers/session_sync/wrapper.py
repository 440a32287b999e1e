"""session_sync: echoes every frame's items from wrapperRead; writes a marker file on destroy.

Params: `marker` = a folder where wrapperDestroy writes `destroyed-<handle>`; `created` = a
folder where wrapperCreate writes `created-<handle>`; `create_sleep` = seconds wrapperCreate takes;
`fail_write` = "1" makes wrapperWrite return 10077.
"""

import itertools
import os
import threading
import time

_ids = itertools.count(1)
_lock = threading.Lock()
_sessions = {}


def wrapperInit(config):
    return 0


def wrapperCreate(usrTag, params, psrIds, psrCnt):
    handle = f"s{next(_ids)}-{usrTag}"
    if params.get("create_sleep"):
        time.sleep(float(params["create_sleep"]))
    with _lock:
        _sessions[handle] = {"params": dict(params), "pending": []}
    created = params.get("created")
    if created:
        with open(os.path.join(created, f"created-{handle}"), "w") as fh:
            fh.write("1")
    return handle


def wrapperWrite(handle, datas):
    s = _sessions[handle]
    if s["params"].get("fail_write") == "1":
        return 10077
    s["pending"].extend(datas)
    return 0


def wrapperRead(handle):
    s = _sessions[handle]
    out = [
        {"key": "echo", "data": d["data"], "len": d["len"], "status": d["status"], "type": 0}
        for d in s["pending"]
    ]
    s["pending"] = []
    return out


def wrapperDestroy(handle):
    with _lock:
        s = _sessions.pop(handle)
    marker = s["params"].get("marker")
    if marker:
        with open(os.path.join(marker, f"destroyed-{handle}"), "w") as fh:
            fh.write("1")
    return 0


def wrapperError(ret):
    return "write refused (10077)" if ret == 10077 else ""
