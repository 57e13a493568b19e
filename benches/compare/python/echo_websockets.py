#!/usr/bin/env python3
"""Echo server on Python's `websockets` (asyncio API), for benches/compare/run.sh.

Usage: echo_websockets.py [--no-deflate] 127.0.0.1:PORT

One thread, the default asyncio event loop. Every text or binary message is sent back as
it came; websockets answers Pings and Closes itself. permessage-deflate is on unless
--no-deflate (compression="deflate" is websockets' default: its server offer uses
12-bit windows and memLevel 5). No keepalive pings (ping_interval=None), so idle
connections stay idle. The first connections' negotiated extensions are logged to
stderr, so run.sh can check what was agreed.
"""

import asyncio
import signal
import sys

import websockets
from websockets.asyncio.server import serve

logged = 0


async def echo(ws):
    global logged
    if logged < 3:
        logged += 1
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        print(
            f"echo_websockets: connection from {ws.remote_address[1]}: "
            f"offered [{offered}], negotiated [{agreed}]",
            file=sys.stderr,
            flush=True,
        )
    async for message in ws:
        await ws.send(message)


async def main():
    args = [a for a in sys.argv[1:] if a != "--listen"]
    deflate = "--no-deflate" not in args
    addr = ([a for a in args if not a.startswith("--")] or ["127.0.0.1:9301"])[-1]
    host, _, port = addr.rpartition(":")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        host,
        int(port),
        compression="deflate" if deflate else None,
        max_size=64 << 20,
        ping_interval=None,
        backlog=1024,
    ):
        print(
            f"echo_websockets (websockets {websockets.__version__}) listening on "
            f"{host}:{port}, permessage-deflate {'on' if deflate else 'off'}",
            file=sys.stderr,
            flush=True,
        )
        await stop


if __name__ == "__main__":
    asyncio.run(main())
