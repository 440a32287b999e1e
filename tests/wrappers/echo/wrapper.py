"""echo: every input item comes back unchanged (once), plus an upper-cased copy when params ask."""


def wrapperInit(config):
    return 0


def wrapperFini():
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    for item in reqData:
        data = item["data"].upper() if params.get("upper") == "1" else item["data"]
        respData.append(
            {"key": item["key"], "data": data, "len": len(data), "status": 3, "type": item["type"]}
        )
    if params.get("echo_params") == "1":
        keys = ",".join(sorted(params))
        respData.append({"key": "params", "data": keys, "len": len(keys), "status": 3, "type": 0})
    return 0
