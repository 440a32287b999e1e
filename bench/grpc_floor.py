"""The floor under the loader: a bare ``grpc.aio`` server for the same ``Loader/Once`` method that
echoes in its own process (parse the OnceRequest, answer a OnceResponse with the same items) with
no worker process, no licences, no metrics. The bench runs it like a loader and calls it with the
same client, so "loader - floor" is what the process hop and the loader's own logic cost.

    python bench/grpc_floor.py --port 0     # prints "floor serving on HOST:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import grpc

from ase_serving.addr import announce, host_port
from ase_serving.loader.proto import loader_pb2 as pb


async def once(body: bytes, context: Any) -> bytes:
    req = pb.OnceRequest.FromString(body)
    resp = pb.OnceResponse(code=0, message="success", sid=req.meta.sid)
    for item in req.data:
        resp.data.add(key=item.key, data=item.data, status=3, type=item.type)
    return resp.SerializeToString()


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "ase.loader.v1.Loader", {"Once": grpc.unary_unary_rpc_method_handler(once)}
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(host_port(host, port))
    await server.start()
    announce("floor", host_port(host, bound))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> int:
    ap = argparse.ArgumentParser(description="bare grpc.aio echo of Loader/Once (the bench's floor)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
