"""Sessions: collects frame data; each frame is echoed as "part" (status 1); the caller's last frame
gives "all" (status 2), from wrapperRead, or pushed with callback from a thread when params["push"]
is "true". A frame "never" is swallowed, so the session does not end; "hang" blocks wrapperWrite."""

import threading

from ase_serving.wrapper import callback

sessions = {}
destroyed = []
_lock = threading.Lock()


settings = {}


def wrapperInit(config):
    settings.update(config)
    return 0


def wrapperFini():
    return 10042 if settings.get("fini") == "fail" else 0


def wrapperCreate(usrTag, params, psrIds, psrCnt):
    with _lock:
        handle = f"h-{usrTag}"
        sessions[handle] = {"buf": b"", "out": [], "push": params.get("push") == "true"}
    return handle


def wrapperWrite(handle, datas):
    s = sessions[handle]
    for d in datas:
        if d["data"] == b"hang":
            threading.Event().wait(5)
        if d["data"] == b"fail":
            return 10042
        if d["data"] == b"never":
            continue
        s["buf"] += d["data"]
        if d["status"] == 2:
            end = {"key": "all", "data": s["buf"], "status": 2}
            if s["push"]:
                threading.Timer(0.02, callback, (handle, [end])).start()
            else:
                s["out"].append(end)
        elif d["data"]:
            s["out"].append({"key": "part", "data": d["data"], "status": 1})
    return 0


def wrapperRead(handle):
    s = sessions[handle]
    out, s["out"] = s["out"], []
    return out


def wrapperDestroy(handle):
    destroyed.append(handle)
    if settings.get("destroy_log"):
        with open(settings["destroy_log"], "a") as fh:
            fh.write(handle + "\n")
    sessions.pop(handle, None)
    return 0


def wrapperError(ret):
    return "the engine refused the frame"
