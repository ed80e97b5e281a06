#!/usr/bin/python3
"""A fault-injecting upstream for sluice's integration tests.

It listens on 127.0.0.1, frames requests like sluice's codecs (line or a
length prefix), and answers each frame according to --mode:

  echo       the frame back unchanged (the default)
  delay      the frame back after --delay-ms
  silent     accept, read, never answer
  close      answer --after frames, then send half a frame and close
  rst        answer --after frames, then reset the connection (SO_LINGER 0)
  garbage    answer with bytes the codec cannot frame (a length header over any limit)
  hangup     accept, then close at once
  stall      accept, never read (the sender's buffers fill up)

It prints "ready PORT" on stdout once listening, and keeps --stats FILE up to
date (JSON: connections opened, open now, most open at once, frames seen),
written atomically after every change, so a test can read it at any time.
It stops on SIGTERM or SIGINT, or after --lifetime seconds (a safety bound).
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import sys


class Stats:
    def __init__(self, path):
        self.path = path
        self.opened = 0
        self.open = 0
        self.max_open = 0
        self.frames = 0

    def save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                {"opened": self.opened, "open": self.open, "max_open": self.max_open, "frames": self.frames}, f
            )
        os.replace(tmp, self.path)


async def read_frame(reader, framing):
    """One frame as bytes, or None at end of stream."""
    try:
        if framing == "line":
            return await reader.readuntil(b"\n")
        size = 2 if framing == "length2" else 4
        head = await reader.readexactly(size)
        n = struct.unpack(">H" if size == 2 else ">I", head)[0]
        return head + await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def serve(reader, writer, args, stats):
    stats.opened += 1
    stats.open += 1
    stats.max_open = max(stats.max_open, stats.open)
    stats.save()
    answered = 0
    try:
        if args.mode == "hangup":
            return
        if args.mode == "stall":
            await asyncio.sleep(args.lifetime)
            return
        if args.mode == "echo":  # no fault to inject: echo bytes as they come, fast
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                stats.frames += data.count(b"\n") if args.framing == "line" else 0
                writer.write(data)
                await writer.drain()
            stats.save()
            return
        while True:
            frame = await read_frame(reader, args.framing)
            if frame is None:
                break
            stats.frames += 1
            stats.save()
            if args.mode == "silent":
                continue
            if args.mode in ("close", "rst") and answered >= args.after:
                if args.mode == "close":
                    writer.write(frame[: max(1, len(frame) // 2)])
                    await writer.drain()
                else:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort() if args.mode == "rst" else writer.close()
                return
            if args.mode == "garbage":
                writer.write(b"\xff\xff\xff\xff" * 4 if args.framing != "line" else b"x" * (1 << 20))
                await writer.drain()
                continue
            if args.mode == "delay":
                await asyncio.sleep(args.delay_ms / 1000.0)
            writer.write(frame)
            await writer.drain()
            answered += 1
    except ConnectionError:
        pass
    finally:
        stats.open -= 1
        stats.save()
        if not writer.is_closing():
            writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--framing", choices=["line", "length2", "length4"], default="line")
    p.add_argument("--mode", choices=["echo", "delay", "silent", "close", "rst", "garbage", "hangup", "stall"], default="echo")
    p.add_argument("--delay-ms", type=int, default=100)
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--stats", default="")
    p.add_argument("--lifetime", type=float, default=300.0)
    args = p.parse_args()

    stats = Stats(args.stats)
    stats.save()
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args, stats), "127.0.0.1", args.port, backlog=4096, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print("ready %d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.lifetime)
    except asyncio.TimeoutError:
        pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
