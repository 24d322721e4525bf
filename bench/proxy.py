"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction.

Puts the review database "a hosted PostgreSQL away": with 10 ms each way a round trip
costs at least 20 ms. Counts round trips: client data that follows an answer of the
server (pipelined statements sent before any answer count once).
Run as a subprocess so the benchmark's own CPU use cannot distort the delays:

    python -m bench.proxy --listen-port 0 --target 127.0.0.1:5432 --delay 0.01
It prints `PORT <n>` once listening; send SIGTERM to stop; `STATS` on stdin prints counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    stats: Stats,
    turn: list[str],
    side: str,
) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(1 << 16)
            if data:
                if side == "client" and turn[0] != "client":
                    stats.requests += 1
                turn[0] = side
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
    except OSError:
        queue.put_nowait((0.0, b""))
    await sender


async def serve(port: int, target: tuple[str, int], delay: float) -> None:
    stats = Stats()

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        stats.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*target)
        except OSError:
            c_writer.close()
            return
        for w in (c_writer, s_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        turn = ["server"]  # who sent last: a client send after the server's is a new trip
        await asyncio.gather(
            _pipe(c_reader, s_writer, delay, stats, turn, "client"),
            _pipe(s_reader, c_writer, delay, stats, turn, "server"),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin)
            return
        print(f"STATS {stats.requests} {stats.connections}", flush=True)

    loop.add_reader(sys.stdin, on_stdin)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--target", default="127.0.0.1:5432")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds, each way")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    asyncio.run(serve(args.listen_port, (host, int(port)), args.delay))


if __name__ == "__main__":
    main()
