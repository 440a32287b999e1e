"""session_async: results come from a thread through ase_serving.wrapper.callback.

Every frame's items are pushed back (upper-cased) from a worker thread; after the caller's last
frame the final push (status 2) waits until the file named by the `gate` param exists (when given).
"""

import os
import queue
import threading
import time

from ase_serving.wrapper import callback

_queues = {}


def wrapperInit(config):
    return 0


def _run(handle, q, params):
    while True:
        datas = q.get()
        if datas is None:
            return
        last = any(d["status"] == 2 for d in datas)
        items = [{"key": "up", "data": d["data"].upper(), "status": 1, "type": 0} for d in datas]
        if last:
            gate = params.get("gate")
            if gate:
                deadline = time.monotonic() + 30
                while not os.path.exists(gate) and time.monotonic() < deadline:
                    time.sleep(0.005)
            items.append({"key": "up", "data": "END", "status": 2, "type": 0})
        callback(handle, items)
        if last:
            return


def wrapperCreate(usrTag, params, psrIds, psrCnt):
    handle = "a-" + usrTag
    q = queue.Queue()
    _queues[handle] = q
    threading.Thread(target=_run, args=(handle, q, dict(params)), daemon=True).start()
    return handle


def wrapperWrite(handle, datas):
    _queues[handle].put(datas)
    return 0


def wrapperRead(handle):
    return []


def wrapperDestroy(handle):
    q = _queues.pop(handle, None)
    if q is not None:
        q.put(None)
    return 0
