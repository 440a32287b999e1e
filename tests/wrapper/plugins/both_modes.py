"""Every function of the contract, with defaults and *args accepted where the contract allows."""


def wrapperInit(config):
    return 0


def wrapperFini():
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt=0):
    return 0


def wrapperCreate(*args):
    return "h"


def wrapperWrite(handle, datas):
    return 0


def wrapperRead(handle):
    return []


def wrapperDestroy(handle):
    return 0


def wrapperError(ret):
    return "error text"
