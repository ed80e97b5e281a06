"""`sluice healthcheck`: GET /healthz on admin.bind, exit 0 on 200 and 1 otherwise.

These run it against a tiny HTTP server of the test's own on a test-owned port;
the test against sluice's own admin endpoint lives with that endpoint."""
import http.server
import socket
import threading
import time

import pytest

from conftest import free_port, run
from test_cli import minimal_config


class Healthz(http.server.BaseHTTPRequestHandler):
    status = 200  # set per server, see serve()

    def do_GET(self):
        self.server.paths.append(self.path)
        self.server.hosts.append(self.headers.get("Host"))
        body = b"ok\n" if self.status == 200 else b"unhealthy\n"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(status) -> a server on 127.0.0.1:<free port> answering GET with status; stopped
    when the test ends."""
    servers = []

    def start(status=200, host="127.0.0.1"):
        handler = type("H", (Healthz,), {"status": status})
        cls = http.server.ThreadingHTTPServer
        if ":" in host:
            cls = type("V6", (cls,), {"address_family": socket.AF_INET6})
        srv = cls((host, free_port()), handler)
        srv.daemon_threads = True
        srv.paths, srv.hosts = [], []
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def admin_config(write_config, bind):
    return write_config(minimal_config(extra="admin: { bind: '%s' }" % bind))


def test_nothing_listening_exits_1_saying_refused(sluice_bin, write_config):
    port = free_port()
    r = run([sluice_bin, "healthcheck", "-c", admin_config(write_config, "127.0.0.1:%d" % port)], timeout=10)
    assert r.returncode == 1
    assert r.stderr == "sluice healthcheck: 127.0.0.1:%d: cannot connect: Connection refused\n" % port


def test_200_exits_0_quietly(sluice_bin, write_config, serve):
    srv = serve(200)
    port = srv.server_address[1]
    r = run([sluice_bin, "healthcheck", "-c", admin_config(write_config, "127.0.0.1:%d" % port)], timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    assert srv.paths == ["/healthz"]
    assert srv.hosts == ["127.0.0.1:%d" % port]


def test_503_exits_1_naming_the_status(sluice_bin, write_config, serve):
    srv = serve(503)
    port = srv.server_address[1]
    r = run([sluice_bin, "healthcheck", "-c", admin_config(write_config, "127.0.0.1:%d" % port)], timeout=10)
    assert r.returncode == 1
    assert r.stderr == "sluice healthcheck: 127.0.0.1:%d: unhealthy: GET /healthz answered 503\n" % port


@pytest.mark.parametrize("bind", ["0.0.0.0:%d", "*:%d"])
def test_wildcard_bind_is_asked_on_loopback(sluice_bin, write_config, serve, bind):
    srv = serve(200)
    port = srv.server_address[1]
    r = run([sluice_bin, "healthcheck", "-c", admin_config(write_config, bind % port)], timeout=10)
    assert r.returncode == 0, r.stderr
    assert srv.hosts == ["127.0.0.1:%d" % port]


@pytest.mark.parametrize("bind", ["[::1]:%d", "[::]:%d"])
def test_ipv6_bind(sluice_bin, write_config, serve, bind):
    srv = serve(200, host="::1")
    port = srv.server_address[1]
    r = run([sluice_bin, "healthcheck", "-c", admin_config(write_config, bind % port)], timeout=10)
    assert r.returncode == 0, r.stderr
    assert srv.hosts == ["[::1]:%d" % port]


def test_silent_server_times_out(sluice_bin, write_config):
    """A listener that accepts (the kernel's backlog) and never answers: --timeout bounds it."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(8)
    port = held.getsockname()[1]
    try:
        path = admin_config(write_config, "127.0.0.1:%d" % port)
        t0 = time.monotonic()
        r = run([sluice_bin, "healthcheck", "-c", path, "--timeout", "300ms"], timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        held.close()
    assert r.returncode == 1
    assert r.stderr == "sluice healthcheck: 127.0.0.1:%d: timed out after 300ms while reading\n" % port
    assert 0.25 < elapsed < 5


def test_usage_and_config_errors_exit_2(sluice_bin, write_config):
    r = run([sluice_bin, "healthcheck", "--timeout", "soon"])
    assert r.returncode == 2 and "--timeout soon:" in r.stderr
    r = run([sluice_bin, "healthcheck", "--timeout", "0"])
    assert r.returncode == 2 and "must be more than 0" in r.stderr
    r = run([sluice_bin, "healthcheck", "stray"])
    assert r.returncode == 2 and "unexpected argument 'stray'" in r.stderr
    path = write_config("listeners: 5\n")
    r = run([sluice_bin, "healthcheck", "-c", path])
    assert r.returncode == 2
    assert path + ":1:12: listeners: expected a sequence, got a scalar" in r.stderr
    r = run([sluice_bin, "-h"])
    assert "sluice healthcheck [-c FILE] [--timeout DURATION]" in r.stdout
