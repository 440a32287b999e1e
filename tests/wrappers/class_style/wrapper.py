"""class_style: the Wrapper class form of the contract."""


class Wrapper:
    def __init__(self):
        self.greeting = "?"

    def wrapperInit(self, config):
        self.greeting = config.get("greeting", "hello")
        return 0

    def wrapperOnceExec(self, usrTag, params, reqData, respData, psrIds, psrCnt):
        name = params.get("name", "world")
        text = f"{self.greeting} {name}"
        respData.append({"key": "greeting", "data": text, "len": len(text), "status": 3, "type": 0})
        return 0
