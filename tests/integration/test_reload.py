"""Reload (SIGHUP) of the real binary under load: ten reloads alternating two configurations
lose no request and refuse no connection; unchanged clusters keep their warm upstream
connections while changed ones get new pools; a removed listener stops accepting while its
clients finish; a broken file changes nothing. Upstreams are tagged
tests/tools/fakeupstream.py processes on 127.0.0.1; every loop has a count and a deadline,
and every process is stopped when its test ends."""
import re
import signal
import socket
import threading
import time

from conftest import free_ports
from test_admin import get, metric, parse_metrics, wait_for


def config(admin, listeners, clusters, extra=""):
    """listeners: [(name, port, cluster)]; clusters: [(name, [ports], pool)]."""
    out = ["workers: 2", "log: { level: info }", "admin: { bind: 127.0.0.1:%d }" % admin, extra,
           "listeners:"]
    for name, port, cluster in listeners:
        out += ["  - name: %s" % name, "    bind: 127.0.0.1:%d" % port, "    codec: line",
                "    cluster: %s" % cluster]
    out.append("clusters:")
    for name, ports, pool in clusters:
        out += ["  - name: %s" % name, "    servers:"]
        out += ["      - { address: 127.0.0.1:%d }" % p for p in ports]
        out.append("    pool: { %s }" % pool)
    return "\n".join(out) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def reload_to(p, text, generation):
    """Write text over sluice p's file, SIGHUP it, wait until every worker serves generation."""
    write(p.config_path, text)
    p.send(signal.SIGHUP)
    return p.wait_line("generation %d: every worker serves it" % generation)


class Load:
    """Client threads until stopped: 'fresh' ones open a connection per batch of requests,
    'kept' ones hold one connection throughout. Every reply must be its request, tagged by
    one of the upstreams."""

    def __init__(self, port, tags, fresh=4, kept=4, deadline=60.0, max_batches=100000):
        self.port, self.tags = port, tags
        self.ok = 0
        self.errors = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.end = time.monotonic() + deadline
        self.max_batches = max_batches
        self.threads = [threading.Thread(target=self.run, args=(i, i < fresh), daemon=True)
                        for i in range(fresh + kept)]
        for t in self.threads:
            t.start()

    def batch(self, f, t, n):
        for i in range(5):
            f.write(b"t%d-%d-%d\n" % (t, n, i))
        f.flush()
        for i in range(5):
            line = f.readline()
            tag, _, rest = line.partition(b":")
            if tag.decode() not in self.tags or rest != b"t%d-%d-%d\n" % (t, n, i):
                raise AssertionError("reply %r to request t%d-%d-%d" % (line, t, n, i))

    def run(self, t, fresh):
        n = 0
        s = f = None
        try:
            while not self.stop.is_set() and time.monotonic() < self.end and n < self.max_batches:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                    f = s.makefile("rwb")
                self.batch(f, t, n)
                n += 1
                with self.lock:
                    self.ok += 5
                if fresh:
                    s.close()
                    s = None
        except Exception as e:  # noqa: BLE001 - every failure is the test's finding
            with self.lock:
                self.errors.append("thread %d batch %d: %r" % (t, n, e))
        finally:
            if s is not None:
                s.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)
        return self.ok, self.errors


def test_ten_reloads_under_load_lose_nothing(upstream, sluice, tmp_path):
    a, b = upstream(tag="a"), upstream(tag="b")
    port, extra_port, adm = free_ports(3)
    one = config(adm, [("front", port, "back")], [("back", [a.port], "min_idle: 1")])
    two = config(adm, [("front", port, "back"), ("extra", extra_port, "back")],
                 [("back", [a.port, b.port], "min_idle: 2, max_connections: 8")])
    p = sluice(one)
    load = Load(port, {"a", "b"})
    try:
        time.sleep(0.3)
        for i in range(10):
            reload_to(p, two if i % 2 == 0 else one, i + 2)
            time.sleep(0.3)
    finally:
        ok, errors = load.finish()
    print("requests answered across the reloads:", ok)
    assert errors == []
    assert ok >= 200, "too little traffic to tell: %d requests" % ok
    m = parse_metrics(get(adm, "/metrics")[2])
    assert metric(m, "sluice_config_generation") == 11
    assert metric(m, "sluice_config_reloads_total") == 10
    assert metric(m, "sluice_config_reload_failures_total") == 0
    assert metric(m, "sluice_requests_total", cluster="back", result="ok") == ok
    text = "\n".join(p.lines)
    assert "~cluster back" in text and "+listener extra" in text and "-listener extra" in text
    assert p.stop() == 0


def test_unchanged_cluster_keeps_its_warm_pool(upstream, sluice):
    a, b = upstream(tag="a"), upstream(tag="b")
    pa, pb, adm = free_ports(3)
    listeners = [("la", pa, "ca"), ("lb", pb, "cb")]
    before = config(adm, listeners, [("ca", [a.port], "min_idle: 1"), ("cb", [b.port], "min_idle: 1")])
    after = config(adm, listeners, [("ca", [a.port], "min_idle: 1"), ("cb", [b.port], "min_idle: 2")])
    p = sluice(before)
    wait_for(lambda: a.stats()["open"] == 2 and b.stats()["open"] == 2, what="warm pools")
    opened_a, opened_b = a.stats()["opened"], b.stats()["opened"]

    reload_to(p, after, 2)
    assert "generation 2 changes: ~cluster cb" in "\n".join(p.lines)
    # cb's new pool warms two per worker; the old pool's connections close (no client used it).
    wait_for(lambda: b.stats()["open"] == 4, what="cb's new pool warm")
    assert b.stats()["opened"] == opened_b + 4
    for port, tag in ((pa, b"a"), (pb, b"b")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"x\n")
            assert s.makefile("rb").readline() == tag + b":x\n"
    # ca did not change: the same warm connections, none opened or closed.
    assert a.stats()["opened"] == opened_a and a.stats()["open"] == 2
    assert p.stop() == 0


def test_removed_listener_stops_accepting_and_its_client_finishes(upstream, sluice):
    a = upstream(tag="a")
    keep, gone, adm = free_ports(3)
    both = config(adm, [("keep", keep, "back"), ("gone", gone, "back")], [("back", [a.port], "")])
    p = sluice(both)
    client = socket.create_connection(("127.0.0.1", gone), timeout=5)
    f = client.makefile("rwb")
    f.write(b"before\n")
    f.flush()
    assert f.readline() == b"a:before\n"

    reload_to(p, config(adm, [("keep", keep, "back")], [("back", [a.port], "")]), 2)
    try:
        socket.create_connection(("127.0.0.1", gone), timeout=2).close()
        raise AssertionError("the removed listener still accepts")
    except ConnectionRefusedError:
        pass
    f.write(b"after\n")  # the client of the removed listener goes on
    f.flush()
    assert f.readline() == b"a:after\n"
    client.close()

    reload_to(p, both, 3)  # and it comes back
    with socket.create_connection(("127.0.0.1", gone), timeout=5) as s:
        s.sendall(b"again\n")
        assert s.makefile("rb").readline() == b"a:again\n"
    assert p.stop() == 0


def test_broken_reload_changes_nothing(upstream, sluice):
    a = upstream(tag="a")
    port, adm = free_ports(2)
    good = config(adm, [("front", port, "back")], [("back", [a.port], "min_idle: 1")])
    p = sluice(good)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = client.makefile("rwb")
    # two workers, each warms one connection: wait for both, or a late one looks like a change
    opened = 2
    wait_for(lambda: a.stats()["opened"] == opened, what="both workers' warm connections")

    write(p.config_path, good.replace("    pool: { min_idle: 1 }", "    pool: { min_idle: lots }")
          + "bogus: 1\n")
    p.send(signal.SIGHUP)
    i = p.wait_line("reload of %s failed with 2 errors; still running generation 1" % p.config_path)
    text = "\n".join(p.lines[:i])
    assert re.search(re.escape(p.config_path) + r":\d+:\d+: clusters\[0\]\.pool\.min_idle: ", text)
    assert re.search(re.escape(p.config_path) + r":\d+:1: bogus: unknown key", text)
    f.write(b"still\n")
    f.flush()
    assert f.readline() == b"a:still\n"
    m = parse_metrics(get(adm, "/metrics")[2])
    assert metric(m, "sluice_config_generation") == 1
    assert metric(m, "sluice_config_reload_failures_total") == 1
    assert metric(m, "sluice_config_reloads_total") == 0
    assert a.stats()["opened"] == opened  # the pool was not touched
    client.close()
    assert p.stop() == 0


def test_changed_cluster_moves_existing_clients_and_the_old_pool_drains(upstream, sluice):
    a, b = upstream(tag="a"), upstream(tag="b")
    port, adm = free_ports(2)
    on_a = config(adm, [("front", port, "back")], [("back", [a.port], "min_idle: 1")])
    on_b = config(adm, [("front", port, "back")], [("back", [b.port], "min_idle: 1")])
    p = sluice(on_a)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = client.makefile("rwb")
    f.write(b"one\n")
    f.flush()
    assert f.readline() == b"a:one\n"

    reload_to(p, on_b, 2)
    # The client stays connected; its next request goes to the cluster's new pool.
    f.write(b"two\n")
    f.flush()
    assert f.readline() == b"b:two\n"
    # Nothing is left on the old pool: it closes, and with it every connection to a.
    wait_for(lambda: a.stats()["open"] == 0, what="the old pool's connections closed")

    # A change that sessions cannot follow (the cluster's framing): the client stays on b.
    reframed = on_a.replace("    pool: { min_idle: 1 }",
                            "    codec: { type: line, max_frame: 32KiB }\n    pool: { min_idle: 1 }")
    reload_to(p, reframed, 3)
    f.write(b"three\n")
    f.flush()
    assert f.readline() == b"b:three\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # a new client: a
        s.sendall(b"four\n")
        assert s.makefile("rb").readline() == b"a:four\n"
    f.close()  # the socket closes with its last file object
    client.close()
    wait_for(lambda: b.stats()["open"] == 0, what="b's pool closed with its last client")
    assert p.stop() == 0


def test_one_address_spelled_two_ways_is_refused(upstream, sluice_bin, write_config, procs):
    """localhost:P and its address (as this machine's resolver gives it first) pass the config
    check, which does not resolve names, but are one socket: the start refuses them rather
    than leave one listener deaf."""
    a = upstream(tag="a")
    port, adm = free_ports(2)
    first = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)[0]
    literal = ("[%s]" if first[0] == socket.AF_INET6 else "%s") % first[4][0]
    text = config(adm, [("one", port, "back"), ("two", port, "back")], [("back", [a.port], "")])
    text = text.replace("bind: 127.0.0.1:%d" % port, "bind: localhost:%d" % port, 1)
    text = text.replace("bind: 127.0.0.1:%d" % port, "bind: %s:%d" % (literal, port), 1)
    p = procs([sluice_bin, "-c", write_config(text)])
    p.wait_line("listener=two")
    assert p.p.wait(10) == 1
    assert any("%s:%d is an address another listener binds too" % (literal, port) in line
               for line in p.lines), "\n".join(p.lines)


def test_reload_that_needs_a_restart_says_the_old_value_stays(upstream, sluice):
    """workers cannot change without a restart: the reload applies the rest, warns, and its
    summary line gives the workers that run, not the file's number as if applied."""
    a = upstream(tag="a")
    port, adm = free_ports(2)
    text = config(adm, [("front", port, "back")], [("back", [a.port], "")])
    p = sluice(text)
    start = len(p.lines)
    i = reload_to(p, text.replace("workers: 2", "workers: 3"), 2)
    lines = p.lines[start:i]
    assert any("reload: workers 3 needs a restart; keeping 2" in l for l in lines), "\n".join(lines)
    summary = [l for l in lines if "reloaded %s (generation 2)" % p.config_path in l]
    assert len(summary) == 1, "\n".join(lines)
    assert "workers 2 (the file's 3 needs a restart)," in summary[0], summary[0]
    m = parse_metrics(get(adm, "/metrics")[2])
    assert metric(m, "sluice_workers") == 2
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"x\n")
        assert s.makefile("rb").readline() == b"a:x\n"
    assert p.stop() == 0


def test_reload_asking_for_an_unbuilt_feature_names_its_position(upstream, sluice):
    a = upstream(tag="a")
    port, adm = free_ports(2)
    text = config(adm, [("front", port, "back")], [("back", [a.port], "")])
    p = sluice(text)
    broken = text.replace("    codec: line", "    codec: http")
    line = broken.splitlines().index("    codec: http") + 1
    write(p.config_path, broken)
    p.send(signal.SIGHUP)
    i = p.wait_line("reload of %s failed with 1 error; still running generation 1" % p.config_path)
    assert ("%s:%d:12: listeners[0].codec: codec http is not available in this version yet "
            "(listener 'front')" % (p.config_path, line)) in "\n".join(p.lines[:i])
    assert p.stop() == 0
