"""A small RESP2/RESP3 client over a raw socket, and the servers and sluice
configs the RESP integration tests share (test_resp*.py)."""
import os
import shutil
import socket

import pytest

from conftest import free_port, wait_port

import redis  # python3-redis

SANITIZED = os.environ.get("SLUICE_SANITIZED", "") not in ("", "0")
SLOW = 3 if SANITIZED else 1  # generous factor for time bounds under ASan


# ---- a small RESP2/RESP3 client over a raw socket ----


class Err:
    """An error reply (simple or blob error); msg without the leading '-'."""

    def __init__(self, msg):
        self.msg = msg

    def __eq__(self, other):
        return isinstance(other, Err) and other.msg == self.msg

    def __hash__(self):
        return hash(self.msg)

    def __repr__(self):
        return "Err(%r)" % self.msg


class Push(list):
    """A RESP3 push (>) frame."""


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = b"%d" % a
        elif isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Closed(Exception):
    pass


class Resp:
    """One client connection: simple strings come back as str, bulk strings as bytes,
    errors as Err, nulls as None, maps as dict, arrays and sets as list."""

    def __init__(self, port, timeout=10.0, nodelay=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, *cmds):
        self.sock.sendall(b"".join(encode(*c) for c in cmds))

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send(args)
        return self.reply()

    def calls(self, *cmds):
        """Pipelined: send every command at once, then read as many replies."""
        self.send(*cmds)
        return [self.reply() for _ in cmds]

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise Closed("connection closed by peer")
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Err(rest.decode())
        if t in (b":", b"("):
            return int(rest)
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"_":
            return None
        if t in (b"$", b"=", b"!"):
            n = int(rest)
            if n < 0:
                return None
            data = self._bytes(n)
            if t == b"!":
                return Err(data.decode())
            return data[4:] if t == b"=" else data
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.reply() for _ in range(n)]
            return Push(items) if t == b">" else items
        if t == b"%":
            return {self._key(self.reply()): self.reply() for _ in range(int(rest))}
        if t == b"|":
            for _ in range(2 * int(rest)):
                self.reply()
            return self.reply()
        raise AssertionError("not RESP: %r (then %r)" % (line, self.buf[:100]))

    @staticmethod
    def _key(k):
        return tuple(k) if isinstance(k, list) else k

    def wait_closed(self, timeout=5.0):
        """True if the peer closes within timeout with nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            extra = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        assert extra == b"", "unexpected bytes before close: %r" % extra[:200]
        return True


def expect_closed(c, timeout=5.0):
    assert c.buf == b"", "unexpected bytes: %r" % c.buf[:200]
    assert c.wait_closed(timeout), "the connection stayed open"


# ---- servers ----


def start_redis(procs, tmp_path, port=None, extra=()):
    """A redis-server on 127.0.0.1:port, no persistence; stopped with the test (by PID)."""
    assert shutil.which("redis-server"), "redis-server is not installed: run scripts/deps.sh"
    port = port or free_port()
    p = procs(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no",
               "--logfile", str(tmp_path / ("redis-%d.log" % port))] + list(extra))
    wait_port(port)
    p.port = port
    return p


def direct(port, db=0, **kw):
    return redis.Redis(host="127.0.0.1", port=port, db=db, socket_timeout=30, **kw)


def server_line(s):
    """A servers[] entry: a port, or (port, name)."""
    if isinstance(s, tuple):
        return "      - { address: 127.0.0.1:%d, name: %s, weight: 1 }" % s
    return "      - { address: 127.0.0.1:%d }" % s


def config(listen, servers, codec="resp", listener_resp="", cluster_extra="", cluster_resp="",
           pool="min_idle: 1, max_connections: 4", cluster_timeouts="", listener_timeouts="",
           workers=1):
    return f"""workers: {workers}
log: {{ level: info }}
admin: {{ bind: 127.0.0.1:{free_port()} }}
listeners:
  - name: redis
    bind: 127.0.0.1:{listen}
    codec: {codec}
    cluster: redis
    {("resp: { " + listener_resp + " }") if listener_resp else ""}
    {("timeouts: { " + listener_timeouts + " }") if listener_timeouts else ""}
clusters:
  - name: redis
    servers:
{chr(10).join(server_line(s) for s in servers)}
    pool: {{ {pool} }}
    {("timeouts: { " + cluster_timeouts + " }") if cluster_timeouts else ""}
    {("resp: { " + cluster_resp + " }") if cluster_resp else ""}
    {cluster_extra}
"""


@pytest.fixture
def one(procs, tmp_path, sluice):
    """A redis-server and a sluice in front of it: one(**config kwargs) -> (redis, sluice, port)."""

    def start(**kw):
        r = start_redis(procs, tmp_path)
        port = free_port()
        p = sluice(config(port, [r.port], **kw))
        wait_port(port)
        return r, p, port

    return start


def assert_alive(p):
    assert p.p.poll() is None, "sluice exited (%s):\n%s" % (p.p.returncode,
                                                            "\n".join(p.lines[-40:]))


def no_asan_report(p):
    bad = [l for l in p.lines if "AddressSanitizer" in l or "runtime error:" in l
           or "LeakSanitizer" in l]
    assert not bad, "\n".join(p.lines[-80:])


def stop_clean(p):
    assert_alive(p)
    code = p.stop()
    no_asan_report(p)
    assert code == 0, "\n".join(p.lines[-40:])
