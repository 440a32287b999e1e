"""raiser: wrapperOnceExec raises."""


def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    raise ValueError("boom: the model exploded")
