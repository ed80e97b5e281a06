"""Shared fixtures: the real sluice binary, free loopback ports, and processes
that are always stopped (by PID) when a test ends."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

SLUICE_BIN = os.environ.get("SLUICE_BIN", "")
SOURCE_DIR = os.environ.get(
    "SLUICE_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


_handed_out = set()


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (bound and released), never one this
    run handed out before: the kernel may offer a released port again, and a test that asks
    for several must get distinct ones."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("no fresh port after 1000 tries")


def free_ports(n):
    """n distinct ports: all bound at once before any is released (free_port() twice can repeat)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        ports = [s.getsockname()[1] for s in socks]
        _handed_out.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


class Proc:
    """A child process whose stderr is collected line by line."""

    def __init__(self, argv, **kw):
        self.argv = argv
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, **kw
        )
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.p.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, needle, timeout=10.0, start=0):
        """Index of the first stderr line from start on that contains needle."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if needle in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(
                        "no line with %r within %.1fs; stderr so far:\n%s"
                        % (needle, timeout, "\n".join(self.lines))
                    )
                self.cond.wait(min(left, 0.1))

    def send(self, sig):
        self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the process and return its exit code; kill it if it hangs."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("%s did not exit within %.1fs of %s" % (self.argv[0], timeout, sig))
        self.reader.join(timeout)
        return self.p.returncode


@pytest.fixture
def sluice_bin():
    assert SLUICE_BIN and os.access(SLUICE_BIN, os.X_OK), "set SLUICE_BIN to the built sluice"
    return SLUICE_BIN


@pytest.fixture
def procs():
    """Start processes with procs(argv); every one is stopped when the test ends."""
    started = []

    def start(argv, **kw):
        p = Proc(argv, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()


@pytest.fixture
def write_config(tmp_path):
    def write(text, name="sluice.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def run(argv, timeout=30, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)


TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
PYTHON = "/usr/bin/python3"


class Upstream:
    """tests/tools/fakeupstream.py on an ephemeral port (or the port asked for)."""

    def __init__(self, proc, port, stats_path, host="127.0.0.1", tag=None, starter=None, args=None):
        self.proc = proc
        self.port = port
        self.stats_path = stats_path
        self.host = host
        self.tag = tag
        self._starter = starter
        self._args = args or {}

    @property
    def address(self):
        """"host:port", as sluice's config and its log lines write it."""
        return "%s:%d" % (self.host, self.port)

    def stats(self):
        import json

        with open(self.stats_path) as f:
            return json.load(f)

    def kill(self):
        """SIGKILL the process and wait for it (nothing is closed gracefully)."""
        if self.proc.p.poll() is None:
            self.proc.p.kill()
        self.proc.p.wait()

    def restart(self, **overrides):
        """Kill it (if it still runs) and start it again on the same host and port with the
        same options (overrides replace some): a new Upstream, with stats of its own."""
        self.kill()
        args = dict(self._args)
        args.update(overrides)
        args["port"] = self.port
        return self._starter(**args)


@pytest.fixture
def upstream(procs, tmp_path):
    """Start fake upstreams: upstream(mode="echo", framing="line", port=0, ...); any other
    keyword becomes a --flag (host="127.0.0.2", tag="a", health_file=PATH, rst_every=3,
    delay_ms=..., after=...). upstream(port=old.port) or old.restart() starts one on the
    port of an old one."""
    count = [0]

    def start(mode="echo", framing="line", port=0, **opts):
        count[0] += 1
        stats = str(tmp_path / ("upstream%d.json" % count[0]))
        argv = [PYTHON, os.path.join(TOOLS, "fakeupstream.py"), "--mode", mode, "--framing", framing,
                "--port", str(port), "--stats", stats, "--lifetime", "300"]
        for k, v in opts.items():
            if v is None:
                continue
            argv += ["--" + k.replace("_", "-"), str(v)]
        p = procs(argv)
        line = p.p.stdout.readline().decode()
        assert line.startswith("ready "), "fake upstream did not start: %r %s" % (line, "\n".join(p.lines))
        args = dict(opts, mode=mode, framing=framing)
        return Upstream(p, int(line.split()[1]), stats, host=opts.get("host") or "127.0.0.1",
                        tag=opts.get("tag"), starter=start, args=args)

    return start


def wait_port(port, timeout=10.0):
    """Wait until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("nothing listens on port %d after %.1fs" % (port, timeout))


@pytest.fixture
def sluice(sluice_bin, write_config, procs):
    """Start sluice on a config text and wait until it serves: sluice(text) -> Proc."""

    def start(text, wait=True, **kw):
        path = write_config(text)
        p = procs([sluice_bin, "-c", path], **kw)
        if wait:
            p.wait_line("serving with")
        p.config_path = path
        return p

    return start


def stats_lines(proc, kind):
    """The 'stats' lines sluice logs at stop, as {key: int} dicts (kind: listener or cluster)."""
    out = []
    for line in proc.lines:
        if " stats: " not in line or (kind + "=") not in line:
            continue
        fields = {}
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                fields[k] = int(v) if v.isdigit() else v
        out.append(fields)
    return out


def stats_sum(proc, kind, key):
    return sum(f.get(key, 0) for f in stats_lines(proc, kind))


def front_back_config(listen, servers, codec="line", workers=1, pool="", timeouts="",
                      cluster_timeouts="", listener_extra="", cluster_extra=(), admin=None,
                      admin_extra="", log_extra=""):
    """A config with one listener, front on 127.0.0.1:listen, and one cluster, back, over
    servers (ports on 127.0.0.1, or "host:port" strings); cluster_extra holds whole lines
    of the cluster's mapping ("panic: route_all"); admin_extra and log_extra more keys of
    those mappings ("max_connections: 4"), the admin endpoint on port admin (else a free one)."""
    server_lines = "\n".join(
        "      - { address: %s }" % (s if isinstance(s, str) else "127.0.0.1:%d" % s) for s in servers)
    extra = list(cluster_extra)
    if cluster_timeouts:
        extra.append("timeouts: { %s }" % cluster_timeouts)
    return f"""workers: {workers}
log: {{ level: info{", " + log_extra if log_extra else ""} }}
admin: {{ bind: 127.0.0.1:{admin or free_port()}{", " + admin_extra if admin_extra else ""} }}
listeners:
  - name: front
    bind: 127.0.0.1:{listen}
    codec: {codec}
    cluster: back
    {("timeouts: { " + timeouts + " }") if timeouts else ""}
    {listener_extra}
clusters:
  - name: back
    servers:
{server_lines}
    pool: {{ {pool} }}
    {(chr(10) + "    ").join(extra)}
"""
