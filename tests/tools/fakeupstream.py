#!/usr/bin/python3
"""A fault-injecting upstream for sluice's integration tests.

It listens on --host (127.0.0.1 unless told; any loopback address such as
127.0.0.2 works) and --port, frames requests like sluice's codecs (line or a
length prefix), and answers each frame according to --mode:

  echo       the frame back unchanged (the default)
  delay      the frame back after --delay-ms
  silent     accept, read, never answer (health frames included)
  close      answer --after frames, then send half a frame and close
  rst        answer --after frames, then reset the connection (SO_LINGER 0)
  garbage    answer with bytes the codec cannot frame (a length header over any limit)
  hangup     accept, then close at once
  stall      accept, never read (the sender's buffers fill up)

Echo with line framing answers line by line: complete lines as they arrive
(several at once if they came together), and whatever is left without a
delimiter when the client closes its side. With length framing, echo sends
the bytes back as they come.

Options that work with every mode that reads frames (not hangup or stall):

  --tag NAME          echo and delay (line framing) answer a line X with
                      "NAME:X", so a client can tell which server answered.
  --health-file PATH  a line exactly "HEALTH" is a health frame: answered
                      "OK" at once, or "FAIL" while PATH exists. Health
                      frames are answered in every answering mode (not
                      silent), never delayed, tagged or faulted (rst/close
                      --after do not count them), and are counted apart from
                      the other frames (stats "health", "health_failed").
                      Without --health-file, "HEALTH" is still answered "OK".
  --delay-match TEXT  with --mode delay, only frames that contain TEXT wait
                      --delay-ms; the others are answered at once (in order:
                      those behind a delayed frame on its connection wait for
                      it, as a server that answers in order does).
  --rst-every N       every Nth connection accepted (all connections count,
                      health-check ones included, from 1: the Nth, 2Nth, ...)
                      is reset (SO_LINGER 0, abort) when its first frame
                      arrives (a health frame too), without an answer; stats
                      "resets" counts them; that frame is not in "frames".

It prints "ready PORT" on stdout once listening, and keeps --stats FILE up to
date, written atomically after every change, so a test can read it at any
time. The JSON holds:

  opened, open, max_open   connections accepted, open now, most open at once
  frames                   frames seen, health frames and reset frames not included
  health, health_failed    health frames answered, and those answered FAIL
  resets                   connections reset by --rst-every
  data_open                connections open now that never carried a health frame
  tag                      the --tag, or null
  first_frame              null until the first frame other than a health frame
                           arrives, then {"at": wall clock (time.time()),
                           "conn_age_ms": age of the connection it came on,
                           "idle_open": other connections open then that had
                           carried no frame at all}

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
import time


class Stats:
    def __init__(self, path, tag):
        self.path = path
        self.tag = tag
        self.opened = 0
        self.open = 0
        self.max_open = 0
        self.frames = 0
        self.health = 0
        self.health_failed = 0
        self.resets = 0
        self.first_frame = None
        self.conns = set()  # Conn objects open now
        self.pending = None  # a deferred save scheduled

    def save_soon(self):
        """Save within 10 ms: for the echo path, which may see thousands of chunks a second."""
        if self.pending is None:
            self.pending = asyncio.get_running_loop().call_later(0.01, self.save)

    def save(self):
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        if not self.path:
            return
        tmp = self.path + ".tmp"
        data = {
            "opened": self.opened,
            "open": self.open,
            "max_open": self.max_open,
            "frames": self.frames,
            "health": self.health,
            "health_failed": self.health_failed,
            "resets": self.resets,
            "data_open": sum(1 for c in self.conns if not c.health),
            "tag": self.tag,
            "first_frame": self.first_frame,
        }
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def data_frames(self, conn, n):
        """n frames other than health frames arrived on conn."""
        if n <= 0:
            return
        if self.first_frame is None:
            self.first_frame = {
                "at": time.time(),
                "conn_age_ms": round((time.monotonic() - conn.since) * 1000.0, 3),
                "idle_open": sum(1 for c in self.conns if c is not conn and not c.used),
            }
        self.frames += n
        conn.used = True


class Conn:
    def __init__(self, number):
        self.number = number  # 1 for the first connection accepted
        self.since = time.monotonic()
        self.used = False  # carried a frame
        self.health = False  # carried a health frame


def health_answer(args, stats, conn):
    conn.health = True
    conn.used = True
    stats.health += 1
    if args.health_file and os.path.exists(args.health_file):
        stats.health_failed += 1
        return b"FAIL\n"
    return b"OK\n"


def tagged(args, line):
    return args.tag.encode() + b":" + line if args.tag else line


def reset(writer, stats):
    sock = writer.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    stats.resets += 1
    writer.transport.abort()


async def read_frame(reader, framing):
    """One frame as bytes, or None at end of stream."""
    try:
        if framing == "line":
            return await reader.readuntil(b"\n")
        size = 2 if framing == "length2" else 4
        head = await reader.readexactly(size)
        n = struct.unpack(">H" if size == 2 else ">I", head)[0]
        return head + await reader.readexactly(n)
    except asyncio.LimitOverrunError:
        return None
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def echo_lines(reader, writer, args, stats, conn, doomed):
    """Echo mode with line framing: complete lines as they come, health frames answered."""
    carry = b""
    while True:
        data = await reader.read(1 << 16)
        if not data:
            if carry:  # a last piece without a delimiter goes back as it is
                writer.write(carry)
                await writer.drain()
            return False
        carry += data
        end = carry.rfind(b"\n")
        if end < 0:
            continue
        complete, carry = carry[: end + 1], carry[end + 1:]
        if doomed:
            return True
        first = stats.first_frame is None
        if args.tag is None and b"HEALTH\n" not in complete:
            stats.data_frames(conn, complete.count(b"\n"))
            out = complete
        else:
            parts = []
            n = 0
            for line in complete[:-1].split(b"\n"):
                line += b"\n"
                if line == b"HEALTH\n":
                    parts.append(health_answer(args, stats, conn))
                else:
                    parts.append(tagged(args, line))
                    n += 1
            stats.data_frames(conn, n)
            out = b"".join(parts)
        if first or conn.health:
            stats.save()  # what a test may look at right after its reply: at once
        else:
            stats.save_soon()
        writer.write(out)
        await writer.drain()


async def serve(reader, writer, args, stats):
    stats.opened += 1
    stats.open += 1
    stats.max_open = max(stats.max_open, stats.open)
    conn = Conn(stats.opened)
    stats.conns.add(conn)
    stats.save()
    doomed = args.rst_every > 0 and conn.number % args.rst_every == 0
    answered = 0
    try:
        if args.mode == "hangup":
            return
        if args.mode == "stall":
            await asyncio.sleep(args.lifetime)
            return
        if args.mode == "echo" and args.framing == "line":
            if await echo_lines(reader, writer, args, stats, conn, doomed):
                reset(writer, stats)
            return
        if args.mode == "echo":  # no fault to inject: echo bytes as they come, fast
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                if doomed:
                    reset(writer, stats)
                    return
                writer.write(data)
                await writer.drain()
            return
        while True:
            frame = await read_frame(reader, args.framing)
            if frame is None:
                break
            if doomed:
                reset(writer, stats)
                return
            if args.framing == "line" and frame == b"HEALTH\n":
                answer = health_answer(args, stats, conn)
                stats.save()
                if args.mode != "silent":
                    writer.write(answer)
                    await writer.drain()
                continue
            stats.data_frames(conn, 1)
            stats.save()
            if args.mode == "silent":
                continue
            if args.mode in ("close", "rst") and answered >= args.after:
                if args.mode == "close":
                    writer.write(frame[: max(1, len(frame) // 2)])
                    await writer.drain()
                    writer.close()
                else:
                    reset(writer, stats)
                return
            if args.mode == "garbage":
                writer.write(b"\xff\xff\xff\xff" * 4 if args.framing != "line" else b"x" * (1 << 20))
                await writer.drain()
                continue
            if args.mode == "delay" and (not args.delay_match or args.delay_match.encode() in frame):
                await asyncio.sleep(args.delay_ms / 1000.0)
            writer.write(tagged(args, frame) if args.framing == "line" else frame)
            await writer.drain()
            answered += 1
    except ConnectionError:
        pass
    finally:
        stats.open -= 1
        stats.conns.discard(conn)
        stats.save()
        if not writer.is_closing():
            writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--framing", choices=["line", "length2", "length4"], default="line")
    p.add_argument("--mode", choices=["echo", "delay", "silent", "close", "rst", "garbage", "hangup", "stall"], default="echo")
    p.add_argument("--delay-ms", type=int, default=100)
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--tag", default=None)
    p.add_argument("--health-file", default="")
    p.add_argument("--rst-every", type=int, default=0)
    p.add_argument("--delay-match", default="")
    p.add_argument("--stats", default="")
    p.add_argument("--lifetime", type=float, default=300.0)
    args = p.parse_args()

    stats = Stats(args.stats, args.tag)
    stats.save()
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args, stats), args.host, args.port, backlog=4096, reuse_address=True
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
