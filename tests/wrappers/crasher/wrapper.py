"""crasher: params.how = exit (os._exit) | segv (a real segfault) | ok."""

import ctypes
import os


def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    how = params.get("how", "ok")
    if how == "exit":
        os._exit(7)
    if how == "segv":
        ctypes.string_at(0)
    respData.append({"key": "pid", "data": str(os.getpid()), "len": 1, "status": 3, "type": 0})
    return 0


def wrapperCreate(usrTag, params, psrIds, psrCnt):
    return "h-" + usrTag


def wrapperWrite(handle, datas):
    for d in datas:
        if d["data"] == b"segv":
            ctypes.string_at(0)
    return 0


def wrapperRead(handle):
    return []


def wrapperDestroy(handle):
    return 0
