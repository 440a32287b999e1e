"""init_fails: wrapperInit returns 10901 with a reason from wrapperError."""


def wrapperInit(config):
    return 10077


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    return 0


def wrapperError(ret):
    return "model file /models/missing.bin not found"
