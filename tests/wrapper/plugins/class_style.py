"""Wrapper class style, session mode."""


class Wrapper:
    def wrapperInit(self, config):
        return 0

    def wrapperCreate(self, usrTag, params, psrIds, psrCnt):
        return "h1"

    def wrapperWrite(self, handle, datas):
        return 0

    def wrapperRead(self, handle):
        return []

    def wrapperDestroy(self, handle):
        return 0
