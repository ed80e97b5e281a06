"""The admin endpoint of the real binary: /metrics checked by Prometheus's own promtool and
cross-checked against the traffic each test sent, /status, /healthz, /readyz following the
servers' health, the bearer token, and error replies that say nothing more than their
status. Upstreams are tests/tools/fakeupstream.py processes on 127.0.0.1; every loop is
bounded and every process is stopped when its test ends."""
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

from conftest import free_port, front_back_config

PROMTOOL = shutil.which("promtool")


def admin_port(text):
    return int(re.search(r"admin: \{.*bind: 127\.0\.0\.1:(\d+)", text).group(1))


def get(port, path, token=None, method="GET", timeout=5):
    """(status, headers, body) of an admin request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, "not a sample line: %r" % line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def line_requests(port, clients, per_client):
    """Send per_client lines on each of clients connections; return the bytes sent."""
    sent = 0
    for c in range(clients):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            f = s.makefile("rwb")
            for i in range(per_client):
                msg = b"c%d-r%d\n" % (c, i)
                f.write(msg)
                sent += len(msg)
            f.flush()
            for i in range(per_client):
                assert f.readline() == b"c%d-r%d\n" % (c, i)
    return sent


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("%s not met within %.1fs" % (what, timeout))


def test_metrics_pass_promtool_and_count_the_traffic(upstream, sluice):
    assert PROMTOOL, "promtool missing: scripts/deps.sh installs Debian's prometheus package"
    up = upstream()
    port = free_port()
    text = front_back_config(port, [up.port], workers=2, pool="min_idle: 1")
    adm = admin_port(text)
    p = sluice(text)
    sent = line_requests(port, clients=10, per_client=20)

    status, headers, body = get(adm, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body.encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()

    m = parse_metrics(body)
    assert metric(m, "sluice_workers") == 2
    assert metric(m, "sluice_config_generation") == 1
    assert metric(m, "sluice_client_connections_accepted_total", listener="front") == 10
    assert metric(m, "sluice_frames_in_total", listener="front") == 200
    assert metric(m, "sluice_frames_out_total", listener="front") == 200
    assert metric(m, "sluice_bytes_in_total", listener="front") == sent
    assert metric(m, "sluice_bytes_out_total", listener="front") == sent
    assert metric(m, "sluice_requests_total", cluster="back", result="ok") == 200
    assert metric(m, "sluice_requests_submitted_total", cluster="back") == 200
    for result in ("timeout", "upstream_error", "rejected", "unhealthy", "canceled", "shutdown"):
        assert metric(m, "sluice_requests_total", cluster="back", result=result) == 0
    # The histogram: cumulative buckets ending in +Inf, which equals the count of answers.
    assert metric(m, "sluice_request_duration_seconds_count", cluster="back") == 200
    assert metric(m, "sluice_request_duration_seconds_bucket", cluster="back", le="+Inf") == 200
    assert metric(m, "sluice_request_duration_seconds_bucket", cluster="back", le="10") == 200
    assert 0 < metric(m, "sluice_request_duration_seconds_sum", cluster="back") < 200 * 1.0
    assert metric(m, "sluice_server_up", cluster="back", server="127.0.0.1:%d" % up.port) == 1
    # One warm connection per worker at least; each either idle or carrying requests.
    active = metric(m, "sluice_upstream_connections_active", cluster="back")
    assert active >= 2
    assert 0 <= metric(m, "sluice_upstream_connections_idle", cluster="back") <= active
    assert metric(m, "sluice_upstream_connections_opened_total", cluster="back") == up.stats()["opened"]
    # The clients left: the gauge comes back to zero.
    wait_for(lambda: metric(parse_metrics(get(adm, "/metrics")[2]),
                            "sluice_client_connections_active", listener="front") == 0,
             what="client_connections_active back to 0")
    assert p.stop() == 0


def test_status_and_readiness_follow_health(upstream, sluice):
    up = upstream()
    port = free_port()
    text = front_back_config(port, [up.port], pool="min_idle: 1", cluster_extra=[
        'health: { active: { interval: 200ms, timeout: 200ms, rise: 1, fall: 1, '
        'send: "HEALTH\\n", expect: "OK" } }'])
    adm = admin_port(text)
    p = sluice(text)
    server = "127.0.0.1:%d" % up.port

    assert get(adm, "/healthz")[:1] == (200,)
    wait_for(lambda: get(adm, "/readyz")[0] == 200, what="ready")
    status, headers, body = get(adm, "/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    st = json.loads(body)
    assert st["generation"] == 1 and st["draining"] is False
    assert [(l["name"], l["bind"], l["codec"], l["cluster"]) for l in st["listeners"]] == [
        ("front", "127.0.0.1:%d" % port, "line", "back")]
    (cl,) = st["clusters"]
    assert cl["name"] == "back" and cl["used"] is True
    assert cl["pool"]["connections"] >= 1
    (srv,) = cl["servers"]
    assert srv["address"] == server and srv["fit"] is True and srv["up"] is True
    assert srv["name"] is None

    up.kill()
    st = wait_for(lambda: (lambda s: s if not s["clusters"][0]["servers"][0]["up"] else None)(
        json.loads(get(adm, "/status")[2])), what="server down in /status")
    assert st["clusters"][0]["servers"][0]["fit"] is False
    status, _, body = get(adm, "/readyz")
    assert status == 503 and body == "cluster back has no server fit for traffic\n"
    m = parse_metrics(get(adm, "/metrics")[2])
    assert metric(m, "sluice_server_up", cluster="back", server=server) == 0
    assert metric(m, "sluice_health_checks_failed_total", cluster="back") >= 1
    assert get(adm, "/healthz")[0] == 200  # alive, though not ready

    up.restart()
    wait_for(lambda: get(adm, "/readyz")[0] == 200, what="ready again")
    assert p.stop() == 0



def test_status_compares_totals_and_names_servers(upstream, sluice):
    ups = [upstream(), upstream()]
    port = free_port()
    text = front_back_config(port, [u.port for u in ups], workers=2,
                             pool="min_idle: 1, max_connections: 3, max_pinned: 5",
                             cluster_extra=['health: { active: { interval: 200ms, timeout: 200ms, '
                                            'rise: 1, fall: 1 } }'])
    text = text.replace("      - { address: 127.0.0.1:%d }" % ups[0].port,
                        "      - { address: 127.0.0.1:%d, name: shard-a }" % ups[0].port)
    adm = admin_port(text)
    p = sluice(text)
    # min_idle 1 per server per worker: 2 servers x 2 workers.
    cl = wait_for(lambda: (lambda c: c if c["pool"]["connections"] == 4 else None)(
        json.loads(get(adm, "/status")[2])["clusters"][0]), what="4 idle connections")
    pool = cl["pool"]
    assert (pool["servers"], pool["workers"]) == (2, 2)
    assert pool["max_connections_total"] == 3 * 2 * 2  # comparable with connections
    assert pool["max_pinned_total"] == 5 * 2 * 2       # comparable with pinned
    assert pool["per_server_per_worker"] == {"max_connections": 3, "min_idle": 1,
                                             "max_pipeline": 128, "max_pinned": 5}
    assert [(s["address"], s["name"]) for s in cl["servers"]] == [
        ("127.0.0.1:%d" % ups[0].port, "shard-a"), ("127.0.0.1:%d" % ups[1].port, None)]
    m = parse_metrics(get(adm, "/metrics")[2])
    assert metric(m, "sluice_server_up", cluster="back", server="127.0.0.1:%d" % ups[0].port,
                  server_name="shard-a") == 1
    assert metric(m, "sluice_server_up", cluster="back", server="127.0.0.1:%d" % ups[1].port) == 1
    ups[0].kill()
    i = p.wait_line("server down", timeout=5)
    assert "server=127.0.0.1:%d server_name=shard-a" % ups[0].port in p.lines[i], p.lines[i]
    assert p.stop() == 0

def test_pool_log_lines_name_the_server(sluice):
    port, closed = free_port(), free_port()  # nothing listens on closed
    text = front_back_config(port, [closed], workers=1).replace(
        "      - { address: 127.0.0.1:%d }" % closed,
        "      - { address: 127.0.0.1:%d, name: shard-z }" % closed)
    p = sluice(text)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"hello\n")
        s.recv(100)  # the request fails and the line client is closed
    i = p.wait_line("connect failed", timeout=5)
    assert "server=127.0.0.1:%d server_name=shard-z" % closed in p.lines[i], p.lines[i]
    assert p.stop() == 0


def test_token_and_errors_say_nothing_more(upstream, sluice, tmp_path):
    up = upstream()
    port = free_port()
    token = "s3cret-token"
    (tmp_path / "token").write_text(token + "\n")
    text = front_back_config(port, [up.port]).replace(
        "admin: { bind: ", "admin: { token_file: %s, bind: " % (tmp_path / "token"))
    adm = admin_port(text)
    p = sluice(text)
    p.wait_line("(bearer token required)")

    for path in ("/metrics", "/healthz", "/status", "/readyz", "/nothing-here"):
        status, headers, body = get(adm, path)
        assert (status, body) == (401, "unauthorized\n"), path
        assert headers["WWW-Authenticate"] == 'Bearer realm="sluice"'
        assert get(adm, path, token="wrong-" + token)[0] == 401
        assert get(adm, path, token=token[:-1])[0] == 401
    assert get(adm, "/metrics", token=token)[0] == 200
    assert get(adm, "/healthz", token=token)[:3:2] == (200, "ok\n")
    status, _, body = get(adm, "/nothing-here", token=token)
    assert (status, body) == (404, "not found\n")
    status, headers, body = get(adm, "/metrics", token=token, method="POST")
    assert (status, body) == (405, "method not allowed\n")
    assert headers["Allow"] == "GET, HEAD"
    status, _, body = get(adm, "/metrics", token=token, method="HEAD")
    assert status == 200 and body == ""
    # HEAD then GET on one connection: the HEAD reply carries no body to be misread as the
    # start of the next reply.
    with socket.create_connection(("127.0.0.1", adm), timeout=5) as s:
        auth = ("Authorization: Bearer %s\r\n" % token).encode()
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n" +
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 3" in head
    assert rest.startswith(b"HTTP/1.1 200"), data
    assert rest.endswith(b"\r\n\r\nok\n")
    assert get(adm, "/healthz", token="bearer-wrong")[0] == 401
    assert urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/healthz" % adm, headers={"Authorization": "bearer " + token}),
        timeout=5).status == 200  # the scheme is case-insensitive
    assert p.stop() == 0


def test_admin_bind_in_use_fails_the_start(upstream, sluice_bin, write_config, procs):
    up = upstream()
    port = free_port()
    text = front_back_config(port, [up.port])
    adm = admin_port(text)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", adm))
        taken.listen(1)
        p = procs([sluice_bin, "-c", write_config(text)])
        p.wait_line("admin: cannot listen on 127.0.0.1:%d" % adm)
        assert p.p.wait(10) == 1



def test_a_failed_start_prints_no_stats_lines(upstream, sluice_bin, write_config, procs):
    up = upstream()
    port = free_port()
    text = front_back_config(port, [up.port], workers=2)
    with socket.socket() as taken:  # the listener's port, held by another socket
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        p = procs([sluice_bin, "-c", write_config(text)])
        p.wait_line("start failed")
        assert p.p.wait(10) == 1
    p.reader.join(5)
    assert not [l for l in p.lines if " stats: " in l], "\n".join(p.lines)

def test_healthcheck_command_against_the_admin_endpoint(upstream, sluice, sluice_bin, write_config,
                                                       tmp_path):
    up = upstream()
    port = free_port()
    (tmp_path / "token").write_text("hc-token\n")
    text = front_back_config(port, [up.port]).replace(
        "admin: { bind: ", "admin: { token_file: %s, bind: " % (tmp_path / "token"))
    p = sluice(text)
    r = subprocess.run([sluice_bin, "healthcheck", "-c", p.config_path], capture_output=True,
                       timeout=10)
    assert (r.returncode, r.stderr) == (0, b"")
    # A config without the token: the endpoint refuses, and the command says so.
    other = write_config(re.sub(r"admin: \{ bind: 127\.0\.0\.1:\d+ \}",
                                "admin: { bind: 127.0.0.1:%d }" % admin_port(text),
                                front_back_config(free_port(), [up.port])))
    r = subprocess.run([sluice_bin, "healthcheck", "-c", other], capture_output=True, timeout=10)
    assert r.returncode == 1
    assert b"answered 401" in r.stderr, r.stderr
    assert p.stop() == 0
    r = subprocess.run([sluice_bin, "healthcheck", "-c", p.config_path], capture_output=True,
                       timeout=10)
    assert r.returncode == 1 and b"Connection refused" in r.stderr
