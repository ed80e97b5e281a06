"""The admin endpoint under abuse: out of descriptors it pauses accepting instead of spinning
(and serves again once descriptors are free), trickling clients are cut by
admin.request_timeout, and connections past admin.max_connections are closed at once.
Everything on 127.0.0.1 with ports of the test's own; every loop is bounded."""
import http.client
import os
import re
import resource
import socket
import time

from conftest import free_port, front_back_config


def config(admin, listen, upstream_port, admin_extra=""):
    return front_back_config(listen, [upstream_port], admin=admin, admin_extra=admin_extra)


def healthz(port, timeout=3.0):
    """The status of GET /healthz on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/healthz")
        return c.getresponse().status
    finally:
        c.close()


def closed_by_peer(s, timeout):
    """True once the peer closed s (EOF or reset) within timeout; the socket stays ours."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def main_thread_cpu_ticks(pid):
    """utime + stime of the main thread (its tid is the pid), in clock ticks."""
    with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_out_of_descriptors_pauses_admin_accepts(upstream, sluice):
    up = upstream()
    admin, listen = free_port(), free_port()
    limit = 48

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    p = sluice(config(admin, listen, up.port), preexec_fn=low_fd_limit)
    clients = []
    try:
        for _ in range(limit + 16):  # more than sluice has descriptors for
            clients.append(socket.create_connection(("127.0.0.1", listen), timeout=2))
        p.wait_line("pausing accepts", timeout=5)  # the data listener: the table is full
        pending = socket.create_connection(("127.0.0.1", admin), timeout=2)
        pending.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        time.sleep(0.3)  # let the admin accept fail a few times
        lines0, cpu0, t0 = len(p.lines), main_thread_cpu_ticks(p.p.pid), time.monotonic()
        time.sleep(2.0)
        cpu = (main_thread_cpu_ticks(p.p.pid) - cpu0) / os.sysconf("SC_CLK_TCK")
        new = p.lines[lines0:]
        elapsed = time.monotonic() - t0
        # Spinning, the main thread was busy most of the time and wrote a line per accept().
        assert cpu < 0.2 * elapsed, "main thread used %.2fs of CPU in %.2fs" % (cpu, elapsed)
        assert len(new) < 20, "%d lines in %.1fs:\n%s" % (len(new), elapsed, "\n".join(new[:20]))
        assert any("admin: accept failed: Too many open files; pausing accepts" in l
                   for l in p.lines), "\n".join(p.lines[-20:])
        for c in clients:
            c.close()
        clients = []
        # Descriptors are free again: the pending admin connection is served.
        pending.settimeout(5)
        reply = b""
        while True:
            chunk = pending.recv(4096)
            if not chunk:
                break
            reply += chunk
        pending.close()
        assert reply.startswith(b"HTTP/1.0 200") or reply.startswith(b"HTTP/1.1 200"), reply
        assert healthz(admin) == 200
    finally:
        for c in clients:
            c.close()
    assert p.stop() == 0


def test_trickling_admin_clients_are_cut_by_the_request_deadline(upstream, sluice):
    up = upstream()
    admin, listen = free_port(), free_port()
    p = sluice(config(admin, listen, up.port, "request_timeout: 1s"))
    socks = [socket.create_connection(("127.0.0.1", admin), timeout=2) for _ in range(20)]
    start = time.monotonic()
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        open_after = None
        for i in range(len(request)):  # one byte per 0.1 s each: every read re-arms evhttp's timer
            for s in socks:
                try:
                    s.sendall(request[i:i + 1])
                except OSError:
                    pass
            time.sleep(0.1)
            if time.monotonic() - start > 3.0:
                break
        open_after = [s for s in socks if not closed_by_peer(s, 0.05)]
        assert not open_after, "%d of %d trickling connections still open after %.1fs" % (
            len(open_after), len(socks), time.monotonic() - start)
    finally:
        for s in socks:
            s.close()
    assert healthz(admin) == 200
    assert any("request not complete within admin.request_timeout" in l for l in p.lines)
    assert p.stop() == 0


def test_kept_alive_admin_connection_gets_a_deadline_per_request(upstream, sluice):
    up = upstream()
    admin, listen = free_port(), free_port()
    p = sluice(config(admin, listen, up.port, "request_timeout: 1s"))
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=3)
    try:
        for _ in range(5):  # 2 s on one connection, each request well within its own second
            c.request("GET", "/healthz")
            r = c.getresponse()
            assert r.status == 200
            r.read()
            time.sleep(0.4)
    finally:
        c.close()
    assert p.stop() == 0


def test_admin_connections_past_the_cap_are_closed_at_once(upstream, sluice):
    up = upstream()
    admin, listen = free_port(), free_port()
    p = sluice(config(admin, listen, up.port, "max_connections: 4"))
    held = [socket.create_connection(("127.0.0.1", admin), timeout=2) for _ in range(4)]
    try:
        for s in held:  # held, not refused
            assert not closed_by_peer(s, 0.05)
        extra = socket.create_connection(("127.0.0.1", admin), timeout=2)
        t0 = time.monotonic()
        assert closed_by_peer(extra, 2.0), "a fifth connection was kept"
        assert time.monotonic() - t0 < 1.0
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 3
        while True:  # the close reaches sluice shortly
            try:
                status = healthz(admin, timeout=1)
                break
            except (ConnectionError, http.client.HTTPException):
                assert time.monotonic() < deadline, "no room freed after closing a connection"
                time.sleep(0.05)
        assert status == 200
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=3)
        held.pop().close()
        time.sleep(0.1)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        c.close()
        refused = re.search(r"^sluice_admin_connections_refused_total (\d+)$", body, re.M)
        assert refused and int(refused.group(1)) >= 1, body[-800:]
    finally:
        for s in held:
            s.close()
    assert any("admin.max_connections reached" in l for l in p.lines)
    assert p.stop() == 0


def test_idle_kept_alive_admin_connection_is_not_a_request_timeout(upstream, sluice):
    """A scraper keeping its connection between scrapes: past request_timeout with no request
    begun, the connection is closed quietly, not counted nor logged as a request timeout."""
    up = upstream()
    admin, listen = free_port(), free_port()
    p = sluice(config(admin, listen, up.port, "request_timeout: 1s"))
    s = socket.create_connection(("127.0.0.1", admin), timeout=3)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"sluice_admin_request_timeouts_total" not in reply:
            chunk = s.recv(65536)
            assert chunk, reply[-200:]
            reply += chunk
        time.sleep(1.6)  # idle past request_timeout, before evhttp's own 10 s
        assert closed_by_peer(s, 3.0)
    finally:
        s.close()
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=3)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    assert re.search(r"^sluice_admin_request_timeouts_total 0$", body, re.M), body[-500:]
    assert not any("admin.request_timeout" in l for l in p.lines), p.lines[-5:]
    assert p.stop() == 0
