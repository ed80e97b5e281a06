"""Upstream faults the pool must absorb (docs/pooling.md): one slow request must not stall
other clients (head-of-line guard, pool.stall); a read deadline fails only the request it
waited for; a refusing server is backed off under load as when idle; a shard that comes back
is found within about a second; no event is left on a closed descriptor. The real binary
against tests/tools/fakeupstream.py or redis-server on 127.0.0.1; every wait is bounded and
every process is stopped (by PID) when its test ends."""
import socket
import threading
import time

from conftest import free_port, front_back_config, wait_port
from test_admin import get, metric, parse_metrics
from resp_util import Err, Resp, config as resp_config, direct, no_asan_report, start_redis


def ask(port, msg, results, i, timeout=10):
    """Send msg on a new connection; results[i] = (reply line, seconds it took)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(msg)
            results[i] = (s.makefile("rb").readline(), time.monotonic() - t0)
    except OSError as e:
        results[i] = (e, time.monotonic() - t0)


def wait_frames(up, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while up.stats()["frames"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert up.stats()["frames"] >= n, "the upstream saw %d frames, not %d" % (up.stats()["frames"], n)


def fast_clients(port, n=20):
    """n clients at once, one request each: [(reply, seconds)]."""
    results = [None] * n
    threads = [threading.Thread(target=ask, args=(port, b"fast-%d\n" % i, results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return results


def admin_of(p):
    import re

    return int(re.search(r"admin: \{ bind: 127\.0\.0\.1:(\d+)", open(p.config_path).read()).group(1))


def metrics(p):
    return parse_metrics(get(admin_of(p), "/metrics")[2])


def finish(p):
    """Stop sluice: it exits 0 with no sanitizer report."""
    assert p.p.poll() is None, "sluice exited early:\n" + "\n".join(p.lines[-40:])
    assert p.stop() == 0
    no_asan_report(p)


# ---- item 3: head-of-line blocking ----


def test_slow_request_does_not_stall_other_clients(upstream, sluice):
    up = upstream(mode="delay", delay_ms=2000, delay_match="SLOW")
    port = free_port()
    p = sluice(front_back_config(port, [up.port], pool="min_idle: 1, max_connections: 4",
                                 cluster_timeouts="read: 5s"))
    wait_port(port)
    slow = [None]
    st = threading.Thread(target=ask, args=(port, b"SLOW\n", slow, 0))
    st.start()
    wait_frames(up, 1)
    time.sleep(0.05)  # the slow one has waited past pool.stall (10ms)
    results = fast_clients(port)
    for i, (reply, took) in enumerate(results):
        assert reply == b"fast-%d\n" % i, results
    worst = max(took for _, took in results)
    # Behind the slow request they would wait for it (about 1.9 s more).
    assert worst < 1.0, "the other clients waited %.2fs behind the slow request" % worst
    assert up.stats()["max_open"] >= 2, "no second connection was opened"
    st.join(5)
    assert slow[0][0] == b"SLOW\n"
    assert metric(metrics(p), "sluice_upstream_stalls_total", cluster="back") >= 1
    finish(p)


def test_read_deadline_fails_only_the_request_it_waited_for(upstream, sluice):
    up = upstream(mode="delay", delay_ms=3000, delay_match="SLOW")
    port = free_port()
    p = sluice(front_back_config(port, [up.port], pool="min_idle: 1, max_connections: 4",
                                 cluster_timeouts="read: 1s"))
    wait_port(port)
    # One client pipelines two requests behind its slow one: they share its connection.
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"SLOW\nafter-1\nafter-2\n")
    wait_frames(up, 1)
    time.sleep(0.05)
    results = fast_clients(port)
    for i, (reply, took) in enumerate(results):
        assert reply == b"fast-%d\n" % i, results  # none failed with the slow one's timeout
    assert max(took for _, took in results) < 0.9
    # line has no error reply: the slow client is closed when its request fails
    slow.settimeout(5)
    t0 = time.monotonic()
    assert slow.recv(100) == b""
    assert time.monotonic() - t0 < 2.0
    slow.close()
    m = metrics(p)
    assert metric(m, "sluice_requests_total", cluster="back", result="timeout") == 1
    assert metric(m, "sluice_requests_total", cluster="back", result="upstream_error") == 2
    assert metric(m, "sluice_requests_total", cluster="back", result="ok") == 20
    finish(p)


def test_read_only_commands_behind_a_timeout_are_sent_again(procs, tmp_path, sluice):
    """RESP: a GET written behind a request whose read deadline expires is sent once more on
    another connection (it may be repeated); a SET behind it fails as lost."""
    r = start_redis(procs, tmp_path, extra=("--enable-debug-command", "yes"))
    port = free_port()
    p = sluice(resp_config(port, [r.port], pool="min_idle: 1, max_connections: 4",
                           cluster_timeouts="read: 500ms"))
    wait_port(port)
    c = Resp(port, timeout=10)
    assert c.call("SET", "k", "v") == "OK"
    # DEBUG SLEEP holds the connection past its read deadline; the GET and the SET ride
    # behind it on the same connection (one client's requests keep their order), written
    # once it has waited a while (the pool keeps a copy of a read-only request written
    # behind one that has waited half of pool.stall or more).
    c.send(("DEBUG", "SLEEP", "0.8"))
    time.sleep(0.1)
    c.send(("GET", "k"), ("SET", "k2", "v2"))
    first, second, third = c.reply(), c.reply(), c.reply()
    assert isinstance(first, Err) and "timeout" in first.msg, first
    assert second == b"v", second  # sent again, answered
    assert isinstance(third, Err) and "connection lost" in third.msg, third
    m = metrics(p)
    assert metric(m, "sluice_request_repeats_total", cluster="redis") == 1
    c.close()
    finish(p)


def test_large_read_only_command_kept_for_a_repeat_is_written_whole(procs, tmp_path, sluice):
    """A read-only command of many buffer chains (a 600 KB key) written behind a waiting
    request is kept for a repeat and a copy is written: the whole copy, or Redis would wait
    for the rest and take the next command as part of the key."""
    r = start_redis(procs, tmp_path, extra=("--enable-debug-command", "yes"))
    port = free_port()
    p = sluice(resp_config(port, [r.port], pool="min_idle: 1, max_connections: 4",
                           cluster_timeouts="read: 3s"))
    wait_port(port)
    c = Resp(port, timeout=10)
    c.send(("DEBUG", "SLEEP", "0.3"))
    time.sleep(0.1)  # the head has waited past pool.stall: what rides behind it is kept
    c.send(("GET", "k" * 600000), ("SET", "k2", "v2"))
    assert c.reply() == "OK"
    assert c.reply() is None  # no such key, answered
    assert c.reply() == "OK"
    assert direct(r.port).get("k2") == b"v2"
    c.close()
    finish(p)


# ---- item 4: connect backoff under load ----


def hammer(port, seconds, clients=8):
    """Clients sending requests in a loop for seconds; every one fails fast (closed)."""
    stop_at = time.monotonic() + seconds
    counts = [0] * clients

    def run(i):
        while time.monotonic() < stop_at:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"x\n")
                    s.recv(100)
            except OSError:
                pass
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    return sum(counts)


def test_connect_backoff_holds_under_load(sluice):
    dead = [free_port(), free_port()]  # nothing listens: every connect is refused
    for n in (1, 2):
        port = free_port()
        p = sluice(front_back_config(port, dead[:n], pool="min_idle: 1, max_connections: 4"))
        wait_port(port)
        before = len(p.lines)
        requests = hammer(port, 2.0)
        m = metrics(p)
        failures = metric(m, "sluice_upstream_connect_failures_total", cluster="back")
        warnings = [l for l in p.lines[before:] if "connect" in l and "refused" in l.lower()]
        finish(p)
        assert requests > 200, "the clients were not answered fast: %d requests in 2 s" % requests
        # Backoff from 100 ms, doubling, probes at most once a second per server: a handful each.
        assert failures <= 12 * n, "%d connects in 2 s to %d refusing server(s)" % (failures, n)
        assert len(warnings) <= 12 * n, "\n".join(warnings[:20])


# ---- item 14: a returning shard is found within about a second ----


def test_returning_shard_is_found_within_a_second(procs, tmp_path, sluice):
    a = start_redis(procs, tmp_path)
    b = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, [a.port, b.port], pool="min_idle: 1, max_connections: 2",
                           cluster_extra="balance: hash\n    hash: md5"))  # spreads k0..k49
    wait_port(port)
    c = Resp(port, timeout=10)
    keys = ["k%d" % i for i in range(50)]
    for k in keys:
        assert c.call("SET", k, "v") == "OK"
    on_b = [k for k in keys if direct(b.port).exists(k)]
    assert on_b, "no key landed on the second shard"
    key = on_b[0]
    b.p.kill()
    b.p.wait()
    # Down for 7 s with requests wanting it: the backoff grows to 6.4 s and more.
    down_until = time.monotonic() + 7.0
    while time.monotonic() < down_until:
        assert isinstance(c.call("GET", key), Err)
        time.sleep(0.05)
    b2 = start_redis(procs, tmp_path, port=b.port)
    back = time.monotonic()
    direct(b2.port).set(key, "again")
    took = None
    while time.monotonic() - back < 8:
        if c.call("GET", key) == b"again":
            took = time.monotonic() - back
            break
        time.sleep(0.02)
    assert took is not None and took < 1.5, "served again only after %s s" % took
    c.close()
    finish(p)


# ---- item 7: events removed before the descriptor is closed ----


def test_read_timeouts_with_writes_pending_leave_no_stale_event(upstream, sluice):
    up = upstream(mode="stall")  # accepts, never reads: sluice's writes stay pending
    port = free_port()
    p = sluice(front_back_config(port, [up.port], codec="{ type: line, max_frame: 8MiB }",
                                 pool="min_idle: 1, max_connections: 4",
                                 cluster_timeouts="read: 300ms, write: 10s"))
    wait_port(port)
    big = b"y" * (4 << 20) + b"\n"

    def send_big(results, i):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(big)
                s.settimeout(5)
                results[i] = s.recv(100)
        except OSError as e:
            results[i] = e

    for _ in range(2):
        results = [None] * 4
        threads = [threading.Thread(target=send_big, args=(results, i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert all(r == b"" or isinstance(r, OSError) for r in results), results
    m = metrics(p)
    assert metric(m, "sluice_requests_total", cluster="back", result="timeout") >= 2
    finish(p)
    bad = [l for l in p.lines if "Bad file descriptor" in l or "Epoll" in l]
    assert not bad, "\n".join(bad[:10])
