"""buffers.max: a process-wide budget for client bytes held in partly received frames.
Past it sluice stops reading the clients that hold the most (one at a time finishes its
frame), fails a frame that can never fit, and keeps serving small clients; its memory
stays bounded. Real redis-server (resp) and tests/tools/fakeupstream.py (length)."""
import os
import signal
import socket
import struct
import threading
import time

from conftest import free_port, front_back_config, stats_sum, wait_port

from resp_util import config as resp_config, start_redis, stop_clean

SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"  # ASan's quarantine keeps freed memory


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's VmRSS every 10 ms until stopped; peak is the largest seen."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = rss_kib(pid)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self):
        self.done.set()
        self.thread.join(5)
        return self.peak


def metric(p, name):
    """A sample's value from /metrics (the admin port is in the config)."""
    import re
    import urllib.request

    port = int(re.search(r"admin: \{ bind: 127.0.0.1:(\d+)", open(p.config_path).read()).group(1))
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    m = re.search(r"^%s(?:\{[^}]*\})? (\d+)$" % re.escape(name), body, re.M)
    assert m, name
    return int(m.group(1))


def big_set(port, key, size, out):
    """Send SET key <size bytes> as fast as sluice reads it; record how it ended."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, size)
    chunk = b"x" * (256 << 10)
    reply = b""
    try:
        s.sendall(head)
        sent = 0
        while sent < size:
            s.sendall(chunk[:min(len(chunk), size - sent)])
            sent += min(len(chunk), size - sent)
        s.sendall(b"\r\n")
        reply = s.recv(200)
    except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
        try:
            reply = s.recv(200)
        except OSError:
            reply = repr(e).encode()
    finally:
        s.close()
    out[key] = reply


def test_frames_that_can_never_fit_fail_and_memory_stays_bounded(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice("buffers: { max: 4MiB }\n" + resp_config(port, [r.port], workers=2))
    wait_port(port)
    small = socket.create_connection(("127.0.0.1", port), timeout=10)
    small.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert small.recv(100) == b"+PONG\r\n"
    before = rss_kib(p.p.pid)
    peak = PeakRss(p.p.pid)
    out = {}
    big = [threading.Thread(target=big_set, args=(port, b"big%d" % i, 48 << 20, out))
           for i in range(3)]
    for t in big:
        t.start()
    served = 0
    while any(t.is_alive() for t in big):
        small.sendall(b"*2\r\n$4\r\nINCR\r\n$5\r\nsmall\r\n")
        assert small.recv(100).startswith(b":")  # a small client keeps being served
        served += 1
        time.sleep(0.005)
    for t in big:
        t.join(30)
    grew = peak.stop() - before
    small.close()
    assert served > 0
    if not SANITIZED:
        assert grew < 32 << 10, "sluice grew by %d KiB with a 4 MiB budget" % grew
    err = b"-ERR sluice: request larger than the buffer budget\r\n"
    for key, reply in out.items():
        assert not reply.startswith(b"+OK"), (key, reply)  # none was taken whole
    # the error comes before the close (a reset racing it may hide it from a client)
    assert err in out.values(), out
    p.wait_line("request larger than the buffer budget", timeout=5)
    assert metric(p, "sluice_client_budget_rejections_total") == 3
    assert metric(p, "sluice_client_buffered_bytes") == 0
    stop_clean(p)
    assert stats_sum(p, "listener", "budget_rejections") == 3


def length_client(port, size, out, i, start):
    payload = os.urandom(size)
    frame = struct.pack(">I", size) + payload
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    got = bytearray()

    def reader():
        try:
            while len(got) < len(frame):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got.extend(chunk)
        except OSError:
            pass

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    start.wait(10)
    try:
        s.sendall(frame)
    except OSError:
        pass
    rt.join(30)
    s.close()
    out[i] = bytes(got) == frame


def test_over_budget_the_largest_wait_and_every_frame_that_fits_passes(upstream, sluice):
    up = upstream(framing="length4")
    port = free_port()
    codec = "{ type: length, field_size: 4, max_frame: 8MiB }"
    p = sluice("buffers: { max: 4MiB }\n" + front_back_config(
        port, [up.port], codec=codec, workers=2, timeouts="frame: 10s",
        pool="min_idle: 1, max_connections: 4"))
    wait_port(port)
    out = {}
    start = threading.Barrier(5)
    clients = [threading.Thread(target=length_client, args=(port, 3 << 20, out, i, start))
               for i in range(4)]
    for t in clients:
        t.start()
    start.wait(10)
    for t in clients:
        t.join(40)
    assert out == {i: True for i in range(4)}, out
    assert metric(p, "sluice_client_buffered_bytes") == 0
    assert p.stop() == 0
    assert stats_sum(p, "listener", "budget_stops") >= 1
    assert stats_sum(p, "listener", "budget_rejections") == 0


def test_auto_budget_is_a_quarter_of_memory_at_most(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(front_back_config(port, [up.port]))
    wait_port(port)
    limit = metric(p, "sluice_client_buffer_limit_bytes")
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < limit <= mem // 4
    assert p.stop() == 0


def test_whole_frames_waiting_for_a_stalled_upstream_count_too(upstream, sluice):
    """Whole frames sent upstream count until answered: a client pipelining 1 MiB frames
    to an upstream that reads nothing is stopped near the budget, not buffered for."""
    up = upstream(mode="stall", framing="length4")
    port = free_port()
    codec = "{ type: length, field_size: 4, max_frame: 2MiB }"
    p = sluice("buffers: { max: 4MiB }\n" + front_back_config(
        port, [up.port], codec=codec, timeouts="request: 3s, frame: 3s",
        pool="min_idle: 1, max_connections: 1"))
    wait_port(port)
    before = rss_kib(p.p.pid)
    peak = PeakRss(p.p.pid)
    frame = struct.pack(">I", 1 << 20) + b"f" * (1 << 20)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setblocking(False)
    sent, data = 0, frame * 48
    deadline = time.monotonic() + 4
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += s.send(data[sent:sent + (1 << 20)])
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    grew = peak.stop() - before
    s.close()
    if not SANITIZED:
        assert grew < 20 << 10, "sluice grew by %d KiB with a 4 MiB budget" % grew
    assert sent < len(data)  # sluice stopped reading it
    deadline = time.monotonic() + 10  # the stalled connection's deadline fails what it held
    while metric(p, "sluice_client_buffered_bytes") != 0:
        assert time.monotonic() < deadline, metric(p, "sluice_client_buffered_bytes")
        time.sleep(0.1)
    assert p.stop() == 0
    assert stats_sum(p, "listener", "budget_stops") >= 1


def test_a_timed_out_large_request_stops_counting_for_its_client(procs, tmp_path, sluice):
    """A large SET that times out is orphaned while charged: once its reply comes the
    client must not keep counting it, or it would be stopped (and failed) for bytes it
    no longer has while the budget is over."""
    from resp_util import Err, Resp, direct

    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice("buffers: { max: 1MiB }\n" + resp_config(
        port, [r.port], codec="{ type: resp, max_frame: 8MiB }",
        pool="min_idle: 1, max_connections: 1", listener_timeouts="request: 500ms, frame: 10s"))
    wait_port(port)
    a = Resp(port, timeout=5)
    assert a.call("PING") == "PONG"
    direct(r.port).execute_command("CLIENT", "PAUSE", "1500", "ALL")
    t0 = time.monotonic()
    assert a.call("SET", "a", b"x" * (300 << 10)) == Err("ERR sluice: request timeout")
    time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))  # its reply came and was dropped
    assert a.call("PING") == "PONG"
    # another client holds most of the budget with a partial frame
    e = socket.create_connection(("127.0.0.1", port), timeout=10)
    e.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\ne\r\n$%d\r\n" % (1000 << 10) + b"e" * (900 << 10))
    deadline = time.monotonic() + 5
    while metric(p, "sluice_client_buffered_bytes") < 800 << 10:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # with it, the budget is over; 300 KiB is under an even share (512 KiB): it passes
    a.sock.settimeout(4)
    assert a.call("SET", "b", b"y" * (300 << 10)) == "OK"
    e.close()
    a.close()
    stop_clean(p)


def partial_set(port, key, declared, body):
    """A client that sends SET key with a value of declared bytes, only body of them."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, declared) +
              b"p" * body)
    return s


def test_a_stopped_client_whose_partial_frame_is_dropped_is_not_failed(procs, tmp_path,
                                                                       sluice):
    """At shutdown a client stopped for the budget loses its partial frame: holding
    nothing, it is no longer stopped, and gets its reply in flight, not a budget error,
    even while the budget stays over (a whole SET waiting upstream)."""
    from resp_util import direct, no_asan_report

    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice("buffers: { max: 1MiB }\n" + resp_config(
        port, [r.port], codec="{ type: resp, max_frame: 8MiB }",
        pool="min_idle: 3, max_connections: 4", cluster_timeouts="read: 20s",
        listener_timeouts="request: 20s, frame: 2s"))
    wait_port(port)
    time.sleep(0.3)  # the idle connections are up
    direct(r.port).execute_command("CLIENT", "PAUSE", "4000", "ALL")
    f = partial_set(port, b"f", 200 << 10, 100 << 10)
    time.sleep(0.2)
    d = socket.create_connection(("127.0.0.1", port), timeout=10)
    d.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nd\r\n$%d\r\n" % (950 << 10) + b"d" * (950 << 10) +
              b"\r\n")  # whole: it counts until answered (redis is paused)
    time.sleep(0.3)
    e = partial_set(port, b"e", 900 << 10, 800 << 10)  # takes the turn over the budget
    time.sleep(0.3)
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.setblocking(False)
    data = b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n" + b"*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$%d\r\n" % (
        700 << 10) + b"c" * (600 << 10)
    sent, deadline = 0, time.monotonic() + 1
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += c.send(data[sent:])
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.3)
    assert metric(p, "sluice_client_budget_stops_total") >= 1
    p.send(signal.SIGTERM)  # every partial frame is dropped; d's SET stays over the budget
    c.settimeout(15)
    got = b""
    while True:
        try:
            chunk = c.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    assert got == b"$-1\r\n", got
    for s in (c, d, e, f):
        s.close()
    p.p.wait(20)
    no_asan_report(p)
    assert stats_sum(p, "listener", "budget_rejections") == 0


def test_a_paused_client_does_not_keep_the_turn_over_the_budget(procs, tmp_path, sluice):
    """A client paused with a whole frame it cannot send yet (WATCH waits for its GET)
    reads nothing: it must not hold the turn over the budget, or a client that needs it
    to finish its frame waits out timeouts.frame and is failed."""
    from resp_util import Resp, direct

    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice("buffers: { max: 1MiB }\n" + resp_config(
        port, [r.port], codec="{ type: resp, max_frame: 8MiB }",
        pool="min_idle: 3, max_connections: 4", cluster_timeouts="read: 20s",
        listener_timeouts="request: 20s, frame: 1500ms"))
    wait_port(port)
    time.sleep(0.3)  # the idle connections are up
    direct(r.port).execute_command("CLIENT", "PAUSE", "3500", "ALL")
    f = partial_set(port, b"f", 600 << 10, 300 << 10)
    time.sleep(0.2)
    d = socket.create_connection(("127.0.0.1", port), timeout=10)
    d.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nd\r\n$%d\r\n" % (400 << 10) + b"d" * (400 << 10) +
              b"\r\n")  # whole: it counts until answered (redis is paused)
    time.sleep(0.3)
    c = Resp(port, timeout=10)
    c.send(("GET", "x"), ("WATCH", b"w" * (700 << 10)))  # WATCH pins: it waits for the GET
    time.sleep(0.4)
    f.sendall(b"f" * (300 << 10) + b"\r\n")
    f.settimeout(8)
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = f.recv(200)
        if not chunk:
            break
        got += chunk
    assert got == b"+OK\r\n", got
    assert c.reply() is None and c.reply() == "OK"
    for s in (d, f):
        s.close()
    c.close()
    stop_clean(p)
    assert stats_sum(p, "listener", "budget_rejections") == 0
