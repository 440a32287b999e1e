"""echo: the Quick start engine. Every input item comes back as a result, unchanged.

Written in the seed's style: module-level functions, result items appended to ``respData`` as
dicts with ``str`` data.
"""

ERR_NO_INPUT = 20001
ERR_NOT_TEXT = 20002

ERRORS = {
    ERR_NO_INPUT: "no input: send at least one payload item, e.g. payload.text",
    ERR_NOT_TEXT: "the input is not UTF-8 text",
}

prefix = ""


def wrapperInit(config):
    """``config`` is the [wrapper] table of ase.toml (values are strings)."""
    global prefix
    prefix = config.get("prefix", "")
    return 0


def wrapperFini():
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    if not reqData:
        return ERR_NO_INPUT
    for item in reqData:
        try:
            text = prefix + item["data"].decode("utf-8")
        except UnicodeDecodeError:
            return ERR_NOT_TEXT
        respData.append(
            {
                # One input -> the output `echo`; several -> each keeps its own name.
                "key": "echo" if len(reqData) == 1 else item["key"],
                "data": text,
                "len": len(text.encode("utf-8")),
                "status": 3,
                "type": 0,
                "desc": {"encoding": item["desc"].get("encoding", "utf8")},
            }
        )
    return 0


def wrapperError(ret):
    return ERRORS.get(ret, f"unknown error {ret}")
