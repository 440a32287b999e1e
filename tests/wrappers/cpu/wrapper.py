"""cpu: a busy loop of `ms` milliseconds (holds the GIL, as a pure-Python engine does)."""

import time


def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    end = time.perf_counter() + float(params.get("ms", "10")) / 1000
    n = 0
    while time.perf_counter() < end:
        n += 1
    respData.append({"key": "n", "data": str(n), "len": len(str(n)), "status": 3, "type": 0})
    return 0
