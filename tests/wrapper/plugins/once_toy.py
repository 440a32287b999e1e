"""Once: echoes input "text" as "echo"; "hang" blocks; "fail" returns 10042; prints to stdout."""

import threading


def wrapperInit(config):
    if config.get("init") == "fail":
        return 10042
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    print("noise from the wrapper on stdout")
    for item in reqData:
        if item["data"] == b"hang":
            threading.Event().wait(5)
        if item["data"] == b"fail":
            return 10042
        respData.append({"key": "echo", "data": item["data"], "status": 3, "type": 0})
    return 0


def wrapperError(ret):
    return "the engine refused the input"
