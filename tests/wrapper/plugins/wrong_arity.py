"""wrapperOnceExec takes too few arguments; wrapperError too many."""


def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params):
    return 0


def wrapperError(ret, extra):
    return ""
