"""Behaves as params["do"] says, to exercise EngineHost's error mapping."""

calls = []


def wrapperInit(config):
    calls.append(("init", dict(config)))
    if config.get("fail") == "code":
        return 10042
    if config.get("fail") == "raise":
        raise OSError("model file missing")
    return 0


def wrapperFini():
    calls.append(("fini",))
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    calls.append(("once", usrTag, dict(params), [dict(i) for i in reqData], list(psrIds), psrCnt))
    do = params.get("do", "echo")
    if do == "code":
        return 10042
    if do == "code-unknown":
        return 10043
    if do == "raise":
        raise ValueError("bad input shape")
    if do == "str":
        respData.append({"key": "out", "data": "héllo", "len": 2, "status": 3, "type": 0})
    elif do == "not-a-dict":
        respData.append(42)
    elif do == "bad-data":
        respData.append({"key": "out", "data": 3.5})
    elif do == "bad-status":
        respData.append({"key": "out", "data": b"x", "status": 7})
    elif do == "bad-ret":
        return "ok"
    else:
        for item in reqData:
            respData.append(
                {"key": "out", "data": item["data"], "status": 3, "type": item["type"], "desc": item["desc"]}
            )
    return 0


def wrapperCreate(usrTag, params, psrIds, psrCnt):
    calls.append(("create", usrTag, dict(params)))
    if params.get("do") == "no-handle":
        return ""
    return b"h-" + usrTag.encode()


def wrapperWrite(handle, datas):
    calls.append(("write", handle, [dict(d) for d in datas]))
    if any(d["data"] == b"fail" for d in datas):
        return 10042
    return 0


def wrapperRead(handle):
    last = calls[-1]
    if last[0] != "write":
        return []
    datas = last[2]
    if any(d["data"] == b"dict" for d in datas):
        return {"key": "r", "data": b"single", "status": 1}
    if any(d["data"] == b"bad" for d in datas):
        return "not a list"
    return [{"key": "r", "data": d["data"], "status": 2 if d["data"] == b"end" else 1} for d in datas]


def wrapperDestroy(handle):
    calls.append(("destroy", handle))
    if handle == "h-destroy-fails":
        raise RuntimeError("cannot free")
    return 0


def wrapperError(ret):
    if ret == 10043:
        raise KeyError(ret)
    return {10042: "the engine refused the input"}.get(ret, "")
