"""error: wrapperOnceExec returns code 10042; wrapperError explains it."""


def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    return 10042


def wrapperError(ret):
    return {10042: "the engine refuses this input (error 10042)"}.get(ret, f"unknown error {ret}")
