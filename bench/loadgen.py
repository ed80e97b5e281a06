#!/usr/bin/python3
"""Line-protocol load: many clients, each pipelining unique lines and checking
that every reply is its own request echoed back, in order. Bounded by
--requests per client and --seconds overall. Prints one summary line of
key=value pairs (requests, errors, req_per_s, p50_ms, p99_ms, max_ms)."""
import argparse
import asyncio
import sys
import time


async def client(args, cid, latencies, errors):
    try:
        reader, writer = await asyncio.open_connection(args.host, args.port)
    except OSError as e:
        errors.append("connect: %s" % e)
        return
    sent = 0
    try:
        while sent < args.requests:
            batch = min(args.depth, args.requests - sent)
            lines = [b"client %d request %d\n" % (cid, sent + i) for i in range(batch)]
            start = time.perf_counter()
            writer.write(b"".join(lines))
            await writer.drain()
            for want in lines:
                got = await reader.readuntil(b"\n")
                if got != want:
                    errors.append("client %d: sent %r, got %r" % (cid, want, got))
                    return
                latencies.append(time.perf_counter() - start)
            sent += batch
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        errors.append("client %d: %s after %d replies" % (cid, type(e).__name__, sent))
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--requests", type=int, default=100, help="per client")
    p.add_argument("--depth", type=int, default=10, help="requests pipelined at once")
    p.add_argument("--seconds", type=float, default=60, help="give up after this long")
    args = p.parse_args()

    latencies, errors = [], []
    start = time.perf_counter()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client(args, i, latencies, errors) for i in range(args.clients))), args.seconds
        )
    except asyncio.TimeoutError:
        errors.append("timed out after %.0fs" % args.seconds)
    took = time.perf_counter() - start
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    print(
        "requests=%d errors=%d clients=%d seconds=%.2f req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f"
        % (len(latencies), len(errors), args.clients, took, len(latencies) / took if took else 0,
           pct(0.5), pct(0.99), pct(1.0))
    )
    for e in errors[:5]:
        print("error: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
