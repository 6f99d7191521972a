#!/usr/bin/env python3
"""The WAN: a delaying TCP relay (this kernel has no netem). Runs in the `wan` namespace.

Each `--map LISTEN=TARGET` (host:port=host:port) accepts connections on LISTEN and relays them
to TARGET, holding every chunk for the current one-way delay in each direction (a reader stamps
each chunk with its due time, a writer sends it then, so delays overlap as on a real link).
The delay in milliseconds is read from `--delay-file` every 200 ms, so a scenario can raise it
without restarting the relay (a chunk keeps the delay it was stamped with).

A target that refuses connections (its process is dead: `kill`) makes the relay stop listening
on its port until the target accepts again (probed every 100 ms), so that a connection to it
through the WAN is refused as it would be on a real network, instead of accepted by the relay
and then closed (which a router must treat as "the request may have arrived"). Only the one
connection that found the target dead sees the accept-then-close.
"""
import argparse
import asyncio
import os
import signal
import time

DELAY = {"ms": 25.0}


async def watch_delay(path):
    while True:
        try:
            with open(path) as f:
                DELAY["ms"] = float(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        await asyncio.sleep(0.2)


async def pipe(reader, writer):
    q = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await q.put((time.monotonic() + DELAY["ms"] / 1000.0, data))
        except (OSError, asyncio.CancelledError):
            pass
        await q.put((None, None))

    async def write():
        try:
            while True:
                due, data = await q.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, asyncio.CancelledError):
            writer.close()

    await asyncio.gather(read(), write())


class Map:
    """One LISTEN=TARGET map: its listening server, closed while the target refuses."""

    def __init__(self, listen, target):
        self.listen, self.target = listen, target
        self.server = None
        self.probing = False

    async def open(self):
        self.server = await asyncio.start_server(
            lambda r, w: handle(self, r, w), self.listen[0], self.listen[1], reuse_address=True)

    def close(self):
        if self.server:
            self.server.close()
            self.server = None

    async def refused(self):
        """The target refused: refuse on its behalf until it accepts again."""
        if self.probing:
            return
        self.probing = True
        self.close()
        try:
            while True:
                await asyncio.sleep(0.1)
                try:
                    _, w = await asyncio.wait_for(asyncio.open_connection(*self.target), 1)
                    w.close()
                    break
                except (OSError, asyncio.TimeoutError):
                    continue
            while self.server is None:
                try:
                    await self.open()
                except OSError:
                    await asyncio.sleep(0.1)
        finally:
            self.probing = False


async def handle(m, a_reader, a_writer):
    host, port = m.target
    try:
        b_reader, b_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except ConnectionRefusedError:
        a_writer.close()
        asyncio.ensure_future(m.refused())
        return
    except (OSError, asyncio.TimeoutError):
        a_writer.close()
        return
    try:
        await asyncio.gather(pipe(a_reader, b_writer), pipe(b_reader, a_writer))
    finally:
        for w in (a_writer, b_writer):
            w.close()


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--map", action="append", default=[])
    p.add_argument("--delay-file", required=True)
    args = p.parse_args()
    servers = []
    for spec in args.map:
        listen, target = spec.split("=")
        m = Map(hostport(listen), hostport(target))
        await m.open()
        servers.append(m)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(watch_delay(args.delay_file))
    print(f"relay: {len(servers)} maps, pid {os.getpid()}", flush=True)
    await stop.wait()
    task.cancel()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
