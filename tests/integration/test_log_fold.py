"""log.rate_limit: a flood of failing clients (their cluster's only server refuses) writes the
first warning of each kind, then one summary line per interval whose count accounts for
every line not written; with rate_limit: 0 every line is written. On 127.0.0.1, bounded."""
import re
import socket
import time

from conftest import free_port, front_back_config

FAILED = "request failed (connect failed); closing the client"


def config(listen, port, rate_limit, pool=""):
    return front_back_config(listen, [port], pool=pool, log_extra="rate_limit: " + rate_limit)


def failing_clients(port, count, seconds=5.0):
    """Clients that each send a line and are closed (line has no error reply); how many ran."""
    deadline = time.monotonic() + seconds
    n = 0
    while n < count and time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"x\n")
            try:
                assert s.recv(16) == b""
            except ConnectionResetError:
                pass
        n += 1
    return n


def folded(lines, needle):
    """(lines written with needle, the counts their summaries carry)."""
    written = [l for l in lines if needle in l]
    counts = [int(m.group(1)) for m in (re.search(r" \.\.\. (\d+) more in the last ", l)
                                        for l in written) if m]
    return written, counts


def test_a_flood_of_failing_clients_writes_a_bounded_number_of_lines(sluice):
    listen = free_port()
    p = sluice(config(listen, free_port(), "1s"))
    n = failing_clients(listen, 600)
    assert n >= 100, "only %d clients ran" % n
    # One summary per interval, written by the once-a-second flush (or the next failure).
    deadline = time.monotonic() + 5
    while True:
        written, counts = folded(p.lines, FAILED)
        if len(written) - len(counts) + sum(counts) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(written) <= 6, "%d lines for %d failed clients:\n%s" % (
        len(written), n, "\n".join(written[:10]))
    assert counts, "no summary line:\n%s" % "\n".join(p.lines[-20:])
    # Every failure is accounted for: lines written plus the counts of the summaries.
    assert len(written) - len(counts) + sum(counts) == n, (n, written)
    assert re.search(r" \.\.\. \d+ more in the last \d+ m?s listener=front cluster=back "
                     r"peer=127\.0\.0\.1$", [l for l in written if " more in the last " in l][0])
    connects, _ = folded(p.lines, "connect failed: Connection refused")
    assert len(connects) <= 6, "\n".join(connects[:10])
    assert p.stop() == 0


def test_rate_limit_zero_writes_every_line(sluice):
    listen = free_port()
    p = sluice(config(listen, free_port(), "0s"))
    n = failing_clients(listen, 40)
    deadline = time.monotonic() + 5
    while len(folded(p.lines, FAILED)[0]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    written, counts = folded(p.lines, FAILED)
    assert len(written) == n and not counts, (n, written[-3:])
    assert p.stop() == 0


def test_lines_folded_while_stopping_get_their_summary(sluice):
    """Warnings folded after the drain (here one per pooled connection lost at shutdown) are
    summarized before sluice exits, not dropped with their counts."""
    n = 8
    listen = free_port()
    with socket.socket() as up:  # a server that takes requests and never answers
        up.bind(("127.0.0.1", 0))
        up.listen(64)
        text = config(listen, up.getsockname()[1], "60s",
                      pool=f"max_connections: {n}, max_pipeline: 1")
        text += "shutdown: { drain_timeout: 300ms }\n"
        p = sluice(text)
        clients, held = [], []
        try:
            up.settimeout(5)
            for _ in range(n):  # one pooled connection per client, each with its request on it
                c = socket.create_connection(("127.0.0.1", listen), timeout=3)
                clients.append(c)
                c.sendall(b"x\n")
                s, _ = up.accept()
                held.append(s)
                s.settimeout(5)
                assert s.recv(16) == b"x\n"
            assert p.stop() == 0
        finally:
            for s in clients + held:
                s.close()
    written, counts = folded(p.lines, "connection lost with requests on it: shutting down")
    assert counts, "no summary line:\n%s" % "\n".join(p.lines[-10:])
    assert len(written) - len(counts) + sum(counts) == n, written
