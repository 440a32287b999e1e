"""slow: sleeps `sleep` seconds, or waits until the file named by `gate` exists (bounded by 30 s).

wrapperFini writes `fini-<pid>` into the folder named by `marker_dir` in the [wrapper] table of ase.toml
(tests copy the project and add one) so tests can see that it ran.
"""

import os
import time

marker_dir = ""


def wrapperInit(config):
    global marker_dir
    marker_dir = config.get("marker_dir", "")
    return 0


def wrapperFini():
    if marker_dir:
        with open(os.path.join(marker_dir, f"fini-{os.getpid()}"), "w") as fh:
            fh.write("fini")
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    if params.get("started"):
        open(params["started"] + f".{usrTag}", "w").close()
    if "sleep" in params:
        time.sleep(float(params["sleep"]))
    gate = params.get("gate")
    if gate:
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
    respData.append({"key": "done", "data": usrTag, "len": len(usrTag), "status": 3, "type": 0})
    return 0
