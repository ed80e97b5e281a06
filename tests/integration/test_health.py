"""Health checking through the real binary: active checks take a dead server out of the
rotation and bring it back (warm) when it returns; passive ejection on failures seen by
traffic, doubling, returning only after a passing check; panic modes when no server is
healthy; slow start ramping a returning server's share. Upstreams are tagged
tests/tools/fakeupstream.py processes (each reply says which server gave it) and a real
redis-server; everything is on 127.0.0.1, every loop has a count and a deadline, and every
process is stopped when its test ends."""
import datetime
import socket
import threading
import time

import pytest

from conftest import free_port, front_back_config, wait_port
from resp_util import SLOW, Err, Resp, start_redis

HEALTH_CHECK = 'send: "HEALTH\\n", expect: "OK"'


def config(listen, servers, codec="line", balance="round_robin", retries=1, pool="min_idle: 1",
           health_active="", health_passive="", panic="", slow_start="", workers=1,
           timeouts="", cluster_timeouts=""):
    """One listener, one cluster named back; servers are "host:port" strings; the health
    settings are the insides of YAML flow mappings."""
    health = []
    if health_active:
        health.append("active: { %s }" % health_active)
    if health_passive:
        health.append("passive: { %s }" % health_passive)
    extra = ["balance: %s" % balance, "retries: %d" % retries]
    if health:
        extra.append("health: { %s }" % ", ".join(health))
    if panic:
        extra.append("panic: %s" % panic)
    if slow_start:
        extra.append("slow_start: %s" % slow_start)
    return front_back_config(listen, servers, codec=codec, workers=workers, pool=pool,
                             timeouts=timeouts, cluster_timeouts=cluster_timeouts,
                             cluster_extra=extra)


# ---- sluice's log lines ----


def log_time(line):
    """The wall-clock time (time.time() scale) at the head of a text log line."""
    stamp = line.split(" ", 1)[0]
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def health_lines(proc, needle, server=None):
    """(time, line) of every health line holding needle (and server=ADDR, if given)."""
    out = []
    for line in list(proc.lines):
        if " health: " not in line or needle not in line:
            continue
        if server is not None and ("server=%s" % server) not in line.split():
            continue
        out.append((log_time(line), line))
    return out


def wait_health(proc, needle, server=None, timeout=10.0, after=0.0):
    """The first (time, line) of a health line with needle for server logged at or after
    `after` (wall clock), waiting up to timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = [(t, l) for t, l in health_lines(proc, needle, server) if t >= after]
        if found:
            return found[0]
        if time.monotonic() > deadline or proc.p.poll() is not None:
            raise AssertionError("no health line with %r for %s within %.1fs; log:\n%s"
                                 % (needle, server, timeout, "\n".join(proc.lines[-60:])))
        time.sleep(0.02)


# ---- a bounded load generator ----


class Load:
    """A few client threads, each on a persistent connection to sluice, sending numbered
    lines one at a time and recording per reply (time, tag). A reply must be the line sent,
    with a "TAG:" in front; anything else is a mismatch. A connection closed (or reset, or
    silent past the read timeout) with a request in flight is a failed request (the line
    codec has no error reply); the thread then reconnects and goes on. Bounded: it stops
    at stop(), after max_seconds, or after max_requests per thread."""

    def __init__(self, port, threads=4, pause=0.004, max_seconds=60.0, max_requests=100000,
                 read_timeout=5.0):
        self.port = port
        self.nthreads = threads
        self.pause = pause
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.read_timeout = read_timeout
        self.lock = threading.Lock()
        self.replies = []  # (time, tag or None)
        self.errors = []  # (time, kind, thread)
        self.mismatches = []
        self.connects_failed = 0
        self.done = threading.Event()
        self.threads = []
        self.finished = []  # thread ids that left their loop

    def start(self):
        self.t0 = time.monotonic()
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            self.threads.append(t)
            t.start()
        return self

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(self.read_timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"

    def alive(self):
        return all(t.is_alive() for t in self.threads)

    def _run(self, tid):
        sock = None
        deadline = self.t0 + self.max_seconds
        n = 0
        try:
            while not self.done.is_set() and time.monotonic() < deadline and n < self.max_requests:
                if sock is None:
                    try:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                        sock.settimeout(self.read_timeout)
                    except OSError:
                        with self.lock:
                            self.connects_failed += 1
                        sock = None
                        time.sleep(0.05)
                        continue
                n += 1
                line = b"t%d-%d\n" % (tid, n)
                kind = None
                buf = b""
                try:
                    sock.sendall(line)
                    while not buf.endswith(b"\n"):
                        chunk = sock.recv(4096)
                        if not chunk:
                            kind = "closed"
                            break
                        buf += chunk
                except socket.timeout:
                    kind = "timeout"
                except OSError as e:
                    kind = "reset" if isinstance(e, ConnectionResetError) else "oserror"
                now = time.time()
                if kind is not None:
                    with self.lock:
                        self.errors.append((now, kind, tid))
                    sock.close()
                    sock = None
                    continue
                tag = None
                if buf != line:
                    head, sep, rest = buf.partition(b":")
                    if sep and rest == line:
                        tag = head.decode()
                    else:
                        with self.lock:
                            self.mismatches.append((line, buf))
                        sock.close()
                        sock = None
                        continue
                with self.lock:
                    self.replies.append((now, tag))
                if self.pause:
                    time.sleep(self.pause)
        finally:
            if sock is not None:
                sock.close()
            with self.lock:
                self.finished.append(tid)

    def snapshot(self):
        with self.lock:
            return list(self.replies), list(self.errors)

    def wait_replies(self, count, timeout, since=0.0, tag=None):
        """Wait until count replies (with tag, if given) arrived after wall time since."""
        deadline = time.monotonic() + timeout
        while True:
            replies, _ = self.snapshot()
            got = sum(1 for t, g in replies if t >= since and (tag is None or g == tag))
            if got >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("only %d replies (tag %s) since %.3f within %.1fs; %d errors"
                                     % (got, tag, since, timeout, len(self.errors)))
            time.sleep(0.02)


@pytest.fixture
def load():
    """Start load generators with load(port, ...); every one is stopped when the test ends."""
    started = []

    def start(port, **kw):
        lg = Load(port, **kw).start()
        started.append(lg)
        return lg

    yield start
    for lg in started:
        lg.done.set()
        for t in lg.threads:
            t.join(10)


def share(replies, tag, lo, hi):
    """(replies from tag, all replies) between wall times lo and hi."""
    window = [g for t, g in replies if lo <= t < hi]
    return sum(1 for g in window if g == tag), len(window)


# ---- a: active checks ----


def test_active_checks_take_a_killed_server_out_and_bring_it_back(upstream, sluice, load):
    interval, timeout, rise, fall = 0.2, 0.1, 2, 2
    ups = [upstream(tag=t) for t in ("a", "b", "c")]
    victim = ups[1]
    port = free_port()
    threads = 4
    p = sluice(config(port, [u.address for u in ups], retries=1,
                      pool="min_idle: 1, max_pipeline: 8",
                      health_active="interval: 200ms, timeout: 100ms, rise: %d, fall: %d, %s"
                                    % (rise, fall, HEALTH_CHECK)))
    wait_port(port)
    lg = load(port, threads=threads, max_seconds=60)
    for u in ups:  # round robin: every server answers
        lg.wait_replies(5, 5 * SLOW, tag=u.tag)

    killed_at = time.time()
    victim.kill()
    bound = fall * interval * 1.1 + timeout + 0.5 * SLOW
    t_down, line = wait_health(p, "server down", server=victim.address, timeout=5 * SLOW,
                               after=killed_at - 0.05)
    assert "%d checks failed in a row" % fall in line, line
    assert t_down - killed_at <= bound, "down %.3fs after the kill (bound %.3fs): %s" % (
        t_down - killed_at, bound, line)

    # the others keep serving, and the killed one is out of the rotation
    lg.wait_replies(50, 5 * SLOW, since=t_down + 0.05)
    time.sleep(0.5)
    replies, errors = lg.snapshot()
    assert not any(g == victim.tag for t, g in replies if t > killed_at + 0.05), \
        "a reply from the killed server"
    assert not [e for e in errors if e[0] < killed_at], "requests failed before the kill: %r" % errors
    after_down = [g for t, g in replies if t > t_down]
    assert set(after_down) <= {"a", "c"} and len(after_down) >= 50
    # failed requests: only those in flight on the killed server's connections when it died
    # (each client thread has one request in flight at a time), none past the down
    failed = [e for e in errors if e[0] >= killed_at - 0.01]
    print("down %.3fs after the kill; %d requests failed" % (t_down - killed_at, len(failed)))
    assert len(failed) <= threads, "%d requests failed: %r" % (len(failed), failed)
    assert not [e for e in errors if e[0] > t_down + 0.05], errors
    assert lg.alive(), "the load generator stopped"

    # it comes back on the same port: up after rise passing checks, traffic returns to it
    restarted_at = time.time()
    back = victim.restart()
    t_up, line = wait_health(p, "server up", server=victim.address, timeout=5 * SLOW,
                             after=restarted_at - 0.05)
    assert "%d checks passed in a row" % rise in line, line
    assert t_up - restarted_at <= rise * interval * 1.1 + timeout + 0.5 * SLOW, t_up - restarted_at
    lg.wait_replies(20, 5 * SLOW, since=t_up, tag=victim.tag)
    st = back.stats()
    print("up %.3fs after the restart; restarted upstream: %r" % (t_up - restarted_at, st))
    assert st["health"] >= rise, st
    # no traffic reached it before sluice took it back (clocks: same machine; log in ms)
    assert st["first_frame"] is not None and st["first_frame"]["at"] >= t_up - 0.01, (st, t_up)
    # and the pool keeps warm connections to it (min_idle), not only the check's
    deadline = time.monotonic() + 3 * SLOW
    while back.stats()["data_open"] < 1:
        assert time.monotonic() < deadline, "no pool connection open to the restarted server: %r" % (
            back.stats(),)
        time.sleep(0.05)
    lg.stop()
    assert not lg.mismatches, lg.mismatches[:5]
    _, errors = lg.snapshot()
    assert len([e for e in errors if e[0] >= restarted_at]) == 0, errors
    assert p.stop() == 0


def stable(fn, reads=3, spacing=0.03, timeout=3.0):
    """Wait until fn() holds on `reads` reads in a row, `spacing` apart (a check's own
    connection is open for a moment only; a pool connection stays)."""
    deadline = time.monotonic() + timeout
    ok = 0
    while ok < reads:
        if time.monotonic() > deadline:
            return False
        ok = ok + 1 if fn() else 0
        time.sleep(spacing)
    return True


def test_restarted_server_gets_a_warm_connection_before_traffic(upstream, sluice):
    """Without load: a server that comes back gets its min_idle pool connection before any
    request, and the first request to it goes over that connection."""
    ups = [upstream(tag=t) for t in ("a", "b")]
    victim = ups[1]
    port = free_port()
    p = sluice(config(port, [u.address for u in ups],
                      pool="min_idle: 1, max_connections: 1, max_pipeline: 8",
                      health_active="interval: 200ms, timeout: 100ms, rise: 2, fall: 2, "
                                    + HEALTH_CHECK))
    wait_port(port)
    assert stable(lambda: victim.stats()["data_open"] == 1), victim.stats()
    killed_at = time.time()
    victim.kill()
    t_down, _ = wait_health(p, "server down", server=victim.address, timeout=5 * SLOW,
                            after=killed_at - 0.05)
    back = victim.restart()
    t_up, _ = wait_health(p, "server up", server=victim.address, timeout=5 * SLOW, after=t_down)
    assert stable(lambda: back.stats()["data_open"] >= 1), \
        "no pool connection to the server that came back: %r" % back.stats()
    assert back.stats()["frames"] == 0
    time.sleep(0.1)
    tags = set()
    for i in range(10):  # round robin over a and b: b's first request goes over the warm one
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            s.sendall(b"q%d\n" % i)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(100)
                assert chunk, "closed without a reply"
                buf += chunk
            tag, _, rest = buf.partition(b":")
            assert rest == b"q%d\n" % i, buf
            tags.add(tag.decode())
    assert tags == {"a", "b"}, tags
    st = back.stats()
    assert st["first_frame"]["conn_age_ms"] >= 100, st  # opened before we sent anything
    assert st["first_frame"]["at"] >= t_up, (st, t_up)
    assert p.stop() == 0


# ---- b: passive ejection ----


def test_passive_ejection_doubles_and_returns_after_a_passing_check(upstream, sluice, load):
    flaky = upstream(tag="flaky", rst_every=3)
    good = upstream(tag="good")
    port = free_port()
    p = sluice(config(port, [flaky.address, good.address], retries=1,
                      pool="min_idle: 1, max_requests: 1",
                      health_active="interval: 200ms, timeout: 100ms, rise: 1, fall: 3, %s"
                                    % HEALTH_CHECK,
                      health_passive="consecutive_failures: 1, eject: 500ms, max_eject: 4s, "
                                     "max_ejected_percent: 50"))
    wait_port(port)
    lg = load(port, threads=3, pause=0.01, max_seconds=60)
    t1, line1 = wait_health(p, "server ejected for 500ms", server=flaky.address, timeout=10 * SLOW)
    assert "failures in a row (ejection 1)" in line1, line1
    t2, line2 = wait_health(p, "server ejected for 1000ms", server=flaky.address,
                            timeout=15 * SLOW, after=t1)
    assert "(ejection 2)" in line2, line2
    # it came back in between, after a passing check, no sooner than its ejection time
    t_back, back_line = wait_health(p, "server back from ejection", server=flaky.address,
                                    timeout=1, after=t1)
    assert t1 + 0.5 - 0.02 <= t_back <= t2, (t1, t_back, t2)
    # let the second ejection run out and the server return once more
    wait_health(p, "server back from ejection", server=flaky.address, timeout=5 * SLOW,
                after=t2 + 0.9)
    lg.wait_replies(5, 5 * SLOW, since=time.time(), tag="good")
    assert lg.alive(), "the load generator stopped"
    lg.stop()
    assert not lg.mismatches, lg.mismatches[:5]

    backs = health_lines(p, "server back from ejection", server=flaky.address)
    print("\n".join(l for l in p.lines if " health: " in l))
    assert len(backs) >= 2
    for t, line in backs:
        assert "server back from ejection after a passing check" in line, line
    ejections = health_lines(p, "server ejected for", server=flaky.address)
    # ejected and back alternate, each return at least the ejection time after its ejection
    for (te, le), (tb, lb) in zip(ejections, backs):
        ms = int(le.split("server ejected for ", 1)[1].split("ms", 1)[0])
        assert tb >= te + ms / 1000.0 - 0.02, (le, lb)
    # while it was out, it got no new traffic (a reply in flight may land just after)
    replies, _ = lg.snapshot()
    for (te, le), (tb, lb) in zip(ejections, backs):
        during = [t for t, g in replies if g == "flaky" and te + 0.1 <= t < tb - 0.01]
        assert not during, "%d replies from the ejected server between %s and %s" % (
            len(during), le, lb)
    assert not health_lines(p, "server ejected", server=good.address), "the healthy server was ejected"
    assert not health_lines(p, "server not ejected", server=good.address)
    assert flaky.stats()["resets"] >= 2
    assert p.stop() == 0


# ---- c: panic modes ----


def resp_config(listen, redis_port, panic):
    return config(listen, ["127.0.0.1:%d" % redis_port], codec="resp", panic=panic,
                  pool="min_idle: 1, max_connections: 4",
                  health_active='interval: 200ms, timeout: 100ms, rise: 1, fall: 1, '
                                'initial: unhealthy, send: "PING\\r\\n", expect: "+NOPE"')


def test_panic_fail_fast_resp_answers_no_healthy_server_at_once(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, r.port, "fail_fast"))
    wait_port(port)
    c = Resp(port, timeout=5)
    for _ in range(2):  # the client stays after the error reply
        start = time.monotonic()
        got = c.call("PING")
        took = time.monotonic() - start
        assert got == Err("ERR sluice: no healthy server"), got
        assert took < 0.3 * SLOW, took
    c.close()
    wait_health(p, "no healthy server: failing requests at once (panic: fail_fast)", timeout=2)
    assert not health_lines(p, "server up")
    assert p.stop() == 0


def test_panic_route_all_resp_tries_every_server(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, r.port, "route_all"))
    wait_port(port)
    c = Resp(port, timeout=5)
    for _ in range(2):
        start = time.monotonic()
        assert c.call("PING") == "PONG"
        assert time.monotonic() - start < 1.0 * SLOW
    c.close()
    wait_health(p, "no healthy server: routing to every server (panic: route_all)", timeout=2)
    assert not health_lines(p, "server up")
    assert p.stop() == 0


def test_panic_fail_fast_line_closes_the_client_at_once(upstream, sluice, tmp_path):
    flag = tmp_path / "down"
    flag.write_text("")  # its checks answer FAIL; its data path works
    up = upstream(tag="x", health_file=str(flag))
    port = free_port()
    p = sluice(config(port, [up.address], panic="fail_fast",
                      pool="min_idle: 1",
                      health_active="interval: 200ms, timeout: 100ms, rise: 1, fall: 1, "
                                    "initial: unhealthy, " + HEALTH_CHECK))
    wait_port(port)
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        start = time.monotonic()
        s.sendall(b"req%d\n" % i)
        s.settimeout(3)
        got = b""
        try:
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("the client was not closed within 3s (got %r)" % got)
        took = time.monotonic() - start
        s.close()
        assert got == b"", got
        assert took < 0.3 * SLOW, took
    assert up.stats()["frames"] == 0, up.stats()
    wait_health(p, "no healthy server: failing requests at once (panic: fail_fast)", timeout=2)
    assert p.stop() == 0


# ---- d: slow start ----


def test_slow_start_ramps_a_returning_servers_share(upstream, sluice, load, tmp_path):
    flag = tmp_path / "b-down"
    a = upstream(tag="A")
    b = upstream(tag="B", health_file=str(flag))
    port = free_port()
    p = sluice(config(port, [a.address, b.address], slow_start="3s",
                      pool="min_idle: 1, max_pipeline: 16",
                      health_active="interval: 100ms, timeout: 100ms, rise: 1, fall: 1, "
                                    + HEALTH_CHECK))
    wait_port(port)
    flag.write_text("")
    t_down, _ = wait_health(p, "server down", server=b.address, timeout=3 * SLOW)
    flag.unlink()
    t_up, _ = wait_health(p, "server up", server=b.address, timeout=3 * SLOW, after=t_down)
    lg = load(port, threads=4, pause=0.002, max_seconds=20)
    began = time.time()
    deadline = time.monotonic() + 10
    while time.time() < began + 4.0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lg.stop()
    assert not lg.mismatches, lg.mismatches[:5]
    replies, errors = lg.snapshot()
    assert not errors, errors[:5]
    shares = []
    for k in range(8):
        lo = began + 0.5 * k
        nb, n = share(replies, "B", lo, lo + 0.5)
        assert n >= 40, "only %d replies in bucket %d" % (n, k)
        shares.append(nb / n)
    text = " ".join("%.2f" % s for s in shares)
    print("B's share per 0.5s since it came back (%.3fs after server up): %s" % (began - t_up, text))
    assert shares[0] < 0.30, text
    assert shares[-1] > 0.35, text
    assert shares[-1] - shares[0] >= 0.2, text
    # increasing: each half of the ramp above the one before
    first, second = sum(shares[:3]) / 3, sum(shares[3:6]) / 3
    assert first < second < max(shares[6:]) + 0.05, text
    assert p.stop() == 0
