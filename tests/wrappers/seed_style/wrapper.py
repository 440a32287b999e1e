# -*- coding: utf-8 -*-  # noqa: UP009  (kept: the seed's plugins start this way)
# A plugin written exactly as the seed's wrappers are: module-level functions, respData.append with
# str data, len, status and type.
import json


def wrapperInit(config: {}) -> int:
    print("wrapperInit", config)
    return 0


def wrapperFini() -> int:
    return 0


def wrapperError(ret: int) -> str:
    if ret == 10013:
        return "input text is empty"
    return ""


def wrapperOnceExec(usrTag: str, params: {}, reqData: [], respData: [], psrIds: [], psrCnt: int) -> int:
    print("wrapperOnceExec usrTag:", usrTag)
    text = reqData[0]["data"].decode("utf-8") if reqData else ""
    if not text:
        return 10013
    res = {"words": len(text.split()), "chars": len(text)}
    data = json.dumps(res)
    respData.append({"key": "result", "data": data, "len": len(data), "status": 3, "type": 0})
    return 0
