"""wrapperInit is not a function."""

wrapperInit = 5


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    return 0
