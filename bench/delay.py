#!/usr/bin/python3
"""A TCP relay that emulates a WAN round trip (tc netem is not available
here): every chunk read on one side is written to the other DELAY_MS later,
in order, in both directions (so a round trip costs 2 x DELAY_MS). Bandwidth
is not limited. TCP_NODELAY on both legs. Loopback only; at most
--max-conns connections (more are closed at once); a leg silent for 300 s
ends its connection.
usage: delay.py LISTEN_PORT TARGET_PORT [--delay-ms 20] [--max-conns 4000]"""
import argparse
import asyncio
import socket
import time

ap = argparse.ArgumentParser()
ap.add_argument("listen", type=int)
ap.add_argument("target", type=int)
ap.add_argument("--delay-ms", type=float, default=20)
ap.add_argument("--max-conns", type=int, default=4000)
a = ap.parse_args()
DELAY = a.delay_ms / 1000
IDLE = 300
live = 0


async def pump(reader, writer):
    """reader -> writer, each chunk DELAY later; the write side runs as its own task."""
    q = asyncio.Queue()

    async def send():
        while True:
            due, data = await q.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), IDLE)
            q.put_nowait((time.monotonic() + DELAY, data or None))
            if not data:
                break
        await sender
    except (OSError, asyncio.TimeoutError, ConnectionError):
        sender.cancel()
        raise


async def handle(cr, cw):
    global live
    if live >= a.max_conns:
        cw.close()
        return
    live += 1
    uw = None
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", a.target)
        for w in (cw, uw):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(cr, uw), pump(ur, cw))
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        live -= 1
        for w in (cw, uw):
            if w is not None:
                w.close()


async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", a.listen, backlog=1024)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
