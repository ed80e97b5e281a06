"""Randomized, bounded: many clients send unique lines in random splits with random pauses
through sluice to servers that echo, lag, or reset their connections. Whatever happens, a
client only ever receives its own replies, in order: all of them, or a prefix if it was closed
because a connection carrying its request broke. Seeds are fixed, so a failure replays."""
import asyncio
import random

import pytest

from conftest import free_port, stats_sum
from test_datapath import config, lines_roundtrip


async def chaotic_client(port, cid, rng, count):
    sent = [b"c%d-r%d-%s\n" % (cid, i, b"x" * rng.randrange(0, 200)) for i in range(count)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"".join(sent)

    async def write():
        pos = 0
        while pos < len(data):  # random splits, some mid-line, with random pauses
            n = rng.randrange(1, 300)
            writer.write(data[pos:pos + n])
            pos += n
            await writer.drain()
            if rng.random() < 0.3:
                await asyncio.sleep(rng.random() * 0.01)

    got = []
    writing = asyncio.ensure_future(write())
    try:
        while len(got) < count:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), 10)
            got.append(line)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # closed by sluice: an upstream connection carrying one of our requests broke
    finally:
        writing.cancel()
        try:
            await writing
        except (asyncio.CancelledError, ConnectionError):
            pass
        writer.close()
    return sent, got


@pytest.mark.parametrize("seed", [1, 2])
def test_replies_never_cross_clients_under_faults(upstream, sluice, seed):
    good = upstream()
    slow = upstream(mode="delay", delay_ms=3)
    flaky = upstream(mode="rst", after=10)  # resets each connection after 10 answers
    port = free_port()
    p = sluice(config(port, good.port, servers=[good.port, slow.port, flaky.port], workers=2,
                      timeouts="request: 10s, read: 5s",
                      pool="min_idle: 1, max_connections: 2, max_pipeline: 8, "
                           "queue: { max: 100000, timeout: 10s }"))
    rng = random.Random(seed)

    async def run():
        return await asyncio.gather(
            *(chaotic_client(port, i, random.Random(rng.random()), 40) for i in range(50)))

    results = asyncio.run(asyncio.wait_for(run(), 120))
    complete = cut = 0
    for sent, got in results:
        assert got == sent[:len(got)], "a client received a reply that was not its own, in order"
        complete += len(got) == len(sent)
        cut += len(got) < len(sent)
    print("seed %d: %d clients got every reply, %d were cut off" % (seed, complete, cut))
    assert complete > 0 and cut > 0  # both paths were taken
    # after all that, sluice still answers fresh clients correctly (some land on the flaky server)
    answers = [lines_roundtrip(port, b"after-%d\n" % i) for i in range(6)]
    assert all(a in (b"after-%d\n" % i, b"") for i, a in enumerate(answers))
    assert answers.count(b"") < len(answers)
    assert p.stop() == 0
    assert stats_sum(p, "listener", "bad_frames") == 0
    # every client cut off is one upstream failure: the chaos clients, and fresh ones that hit
    # the resetting server
    assert stats_sum(p, "listener", "upstream_failures") == cut + answers.count(b"")
