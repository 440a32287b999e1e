"""Module style, once mode: echoes every input item as key "echo"."""


def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    for item in reqData:
        respData.append({"key": "echo", "data": item["data"], "status": 3, "type": 0})
    return 0
