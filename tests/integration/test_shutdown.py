"""Graceful shutdown of the real binary: on SIGTERM slow in-flight requests all get their
replies, idle clients are closed at once, new connections are refused, and sluice exits 0;
a second signal exits at once; shutdown.drain_timeout bounds the wait. Upstreams are
tests/tools/fakeupstream.py processes on 127.0.0.1; every wait is bounded and every process
is stopped when its test ends."""
import signal
import socket
import threading
import time

from conftest import free_ports
from test_admin import get
from test_reload import config


def ask(port, msg, results, i):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(msg)
            results[i] = s.makefile("rb").readline()
    except OSError as e:
        results[i] = e


def slow_request(port, slow):
    """One request in a thread, returned once the slow upstream has it: (thread, [reply])."""
    results = [None]
    t = threading.Thread(target=ask, args=(port, b"slow\n", results, 0))
    t.start()
    deadline = time.monotonic() + 5
    while slow.stats()["frames"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.stats()["frames"] == 1, "the request did not reach the upstream"
    return t, results


def test_slow_requests_complete_across_sigterm(upstream, sluice):
    slow = upstream(mode="delay", delay_ms=1000)
    port, adm = free_ports(2)
    # One request per upstream connection: the upstream delays each connection's frames in turn.
    p = sluice(config(adm, [("front", port, "back")],
                      [("back", [slow.port], "max_connections: 20, max_pipeline: 1")]))
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    results = [None] * 20
    threads = [threading.Thread(target=ask, args=(port, b"slow-%d\n" % i, results, i))
               for i in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while slow.stats()["frames"] < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.stats()["frames"] == 20, "the requests did not all reach the upstream"
    sent_at = time.monotonic()
    p.send(signal.SIGTERM)
    p.wait_line("draining the others")

    idle.settimeout(2)
    assert idle.recv(1) == b""  # the idle client is closed at once, not after the drain
    assert time.monotonic() - sent_at < 0.9
    status, _, body = get(adm, "/readyz")
    assert (status, body) == (503, "draining\n")
    assert get(adm, "/healthz")[0] == 200
    refused = False
    for _ in range(50):  # the listening sockets close once every worker stopped accepting
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            refused = True
            break
    assert refused, "new connections are still accepted while draining"

    for t in threads:
        t.join(10)
    assert results == [b"slow-%d\n" % i for i in range(20)]
    assert p.p.wait(10) == 0
    assert time.monotonic() - sent_at < 3
    p.wait_line("drained: every client finished")
    idle.close()


def test_second_signal_exits_at_once(upstream, sluice):
    slow = upstream(mode="delay", delay_ms=5000)
    port, adm = free_ports(2)
    p = sluice(config(adm, [("front", port, "back")], [("back", [slow.port], "")]))
    t, results = slow_request(port, slow)
    p.send(signal.SIGTERM)
    p.wait_line("draining the others")
    time.sleep(0.2)
    assert p.p.poll() is None  # still draining: the request has 5 s to go
    start = time.monotonic()
    p.send(signal.SIGINT)
    assert p.p.wait(5) == 0
    assert time.monotonic() - start < 1
    p.wait_line("SIGINT received again, exiting now")
    t.join(10)
    assert results[0] in (b"", None) or isinstance(results[0], OSError)


def test_drain_timeout_bounds_the_wait(upstream, sluice):
    slow = upstream(mode="delay", delay_ms=5000)
    port, adm = free_ports(2)
    p = sluice(config(adm, [("front", port, "back")], [("back", [slow.port], "")],
                      extra="shutdown: { drain_timeout: 500ms }"))
    t, results = slow_request(port, slow)
    start = time.monotonic()
    p.send(signal.SIGTERM)
    assert p.p.wait(5) == 0
    assert 0.4 < time.monotonic() - start < 2
    p.wait_line("drain_timeout of 500 ms passed with 1 client left; closing them")
    t.join(10)
