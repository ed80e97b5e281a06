"""HTTP health checks against a real nginx (Debian's nginx-light) on a port of its own,
beside a line service: the check's path, status range and Host header decide whether the
service's server takes traffic. Everything on 127.0.0.1, bounded, stopped at the end."""
import os
import shutil
import socket
import time

import pytest

from conftest import free_port, wait_port
from resp_util import SLOW

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location = /ok { return 200 "ok\\n"; }
        location = /bad { return 503; }
        location = /only-probe {
            if ($host != "probe.test") { return 421; }
            return 204;
        }
    }
}
"""


@pytest.fixture
def nginx(procs, tmp_path):
    if not os.access(NGINX, os.X_OK):
        pytest.fail("nginx is not installed (scripts/deps.sh installs nginx-light)")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF % {"dir": tmp_path, "port": port})
    procs([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"])
    wait_port(port)
    return port


def config(listen, upstream_port, nginx_port, http, initial="unhealthy"):
    return """
workers: 1
listeners:
  - { name: front, bind: "127.0.0.1:%d", codec: line, cluster: back }
clusters:
  - name: back
    servers: [{ address: "127.0.0.1:%d" }]
    pool: { min_idle: 1 }
    health:
      active: { interval: 200ms, timeout: 150ms, rise: 1, fall: 1, initial: %s, port: %d,
                http: { %s } }
""" % (listen, upstream_port, initial, nginx_port, http)


def ask(port, line, timeout=2.0):
    """One line through sluice: the reply, or None if sluice closed the client."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(line)
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n") and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                return None
            buf += chunk
        return buf


def test_http_check_passing_lets_traffic_in(upstream, sluice, nginx):
    up = upstream()
    listen = free_port()
    p = sluice(config(listen, up.port, nginx, "path: /ok"))
    p.wait_line("server up: 1 checks passed in a row", timeout=5 * SLOW)
    assert ask(listen, b"hello\n") == b"hello\n"


def test_http_check_failing_status_keeps_the_server_out(upstream, sluice, nginx):
    up = upstream()
    listen = free_port()
    p = sluice(config(listen, up.port, nginx, "path: /bad, status: \"200-299\""))
    p.wait_line("no healthy server: failing requests at once (panic: fail_fast)", timeout=5 * SLOW)
    time.sleep(0.5)  # several checks, all failing
    t0 = time.monotonic()
    assert ask(listen, b"hello\n") is None  # line has no error reply: closed at once
    assert time.monotonic() - t0 < 0.3 * SLOW
    assert up.stats()["frames"] == 0
    assert not any("server up" in line for line in p.lines)
    assert p.stop() == 0
    checks_failed = [line for line in p.lines if "health: checks=" in line]
    assert checks_failed and "checks_failed=0" not in checks_failed[0], checks_failed


def test_http_check_sends_the_configured_host(upstream, sluice, nginx):
    up = upstream()
    listen = free_port()
    p = sluice(config(listen, up.port, nginx, 'path: /only-probe, status: "204", host: probe.test'))
    p.wait_line("server up", timeout=5 * SLOW)
    assert ask(listen, b"x\n") == b"x\n"


def test_http_check_wrong_host_takes_the_server_down(upstream, sluice, nginx):
    up = upstream()
    listen = free_port()
    p = sluice(config(listen, up.port, nginx, 'path: /only-probe, status: "204"', initial="healthy"))
    line = p.lines[p.wait_line("server down: 1 checks failed in a row", timeout=5 * SLOW)]
    assert "status 421" in line
