"""No wrapperInit."""


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    return 0
