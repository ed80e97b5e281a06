"""A client's half-close (shutdown(SHUT_WR)) ends its requests, not its replies: every
request received before the FIN is answered, then the connection closes. On raw, the FIN
is passed on to the other side and the other direction keeps flowing. Real redis-server
(resp) and tests/tools/fakeupstream.py (line, length) on 127.0.0.1."""
import socket
import struct
import threading
import time

from conftest import free_port, front_back_config, stats_sum, wait_port

from resp_util import config as resp_config, start_redis, stop_clean  # noqa: F401

ROUNDS = 20


def read_to_eof(s, timeout=20):
    s.settimeout(timeout)
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk
    raise AssertionError("no EOF after %ds (%d bytes read)" % (timeout, len(buf)))


def pipeline_then_fin(port, payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = read_to_eof(s)
    s.close()
    return got


def resp_echo(i):
    v = b"v%d" % i
    return b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(v), v), b"$%d\r\n%s\r\n" % (len(v), v)


def test_resp_pipeline_then_fin_gets_every_reply(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, [r.port]))
    wait_port(port)
    for n in (10, 1000):
        reqs, replies = zip(*(resp_echo(i) for i in range(n)))
        want = b"".join(replies)
        for round_ in range(ROUNDS if n == 10 else 5):
            got = pipeline_then_fin(port, b"".join(reqs))
            assert got == want, "round %d of %d: %d of %d bytes" % (round_, n, len(got), len(want))
    stop_clean(p)


def test_resp_fin_while_paused_by_unread_replies_gets_every_reply(procs, tmp_path, sluice):
    """Replies past the output watermark (1 MiB) pause reading; the FIN comes meanwhile."""
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, [r.port]))
    wait_port(port)
    value = b"w" * (64 << 10)
    setter = socket.create_connection(("127.0.0.1", port), timeout=10)
    setter.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nwide\r\n$%d\r\n%s\r\n" % (len(value), value))
    assert setter.recv(100) == b"+OK\r\n"
    setter.close()
    reply = b"$%d\r\n%s\r\n" % (len(value), value)
    for round_ in range(3):
        got = pipeline_then_fin(port, b"*2\r\n$3\r\nGET\r\n$4\r\nwide\r\n" * 100)
        assert got == reply * 100, "round %d: %d of %d bytes" % (round_, len(got), len(reply) * 100)
    stop_clean(p)


def test_line_pipeline_then_fin_gets_every_reply(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(front_back_config(port, [up.port], pool="min_idle: 1, max_connections: 2"))
    wait_port(port)
    msgs = b"".join(b"m%d\n" % i for i in range(1000))
    for round_ in range(5):
        got = pipeline_then_fin(port, msgs)
        assert got == msgs, "round %d: %d of %d lines" % (round_, got.count(b"\n"), 1000)
    assert p.stop() == 0


def test_length_pipeline_then_fin_gets_every_reply(upstream, sluice):
    up = upstream(framing="length4")
    port = free_port()
    codec = "{ type: length, field_size: 4 }"
    p = sluice(front_back_config(port, [up.port], codec=codec,
                                 pool="min_idle: 1, max_connections: 2"))
    wait_port(port)
    frames = b"".join(struct.pack(">I", 6) + b"f%05d" % i for i in range(1000))
    for round_ in range(5):
        got = pipeline_then_fin(port, frames)
        assert got == frames, "round %d: %d of %d bytes" % (round_, len(got), len(frames))
    assert p.stop() == 0


def test_trailing_partial_frame_is_dropped_after_the_whole_ones(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(front_back_config(port, [up.port]))
    wait_port(port)
    msgs = b"".join(b"m%d\n" % i for i in range(300))
    got = pipeline_then_fin(port, msgs + b"never ended")
    assert got == msgs
    p.wait_line("partial frame", timeout=5)
    assert p.stop() == 0


class RawPeer:
    """An upstream for raw: accepts one connection and runs script(conn) on it."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self.run, args=(script,), daemon=True)
        self.thread.start()

    def run(self, script):
        try:
            self.sock.settimeout(10)
            conn, _ = self.sock.accept()
            conn.settimeout(10)
            with conn:
                self.result = script(conn)
        except Exception as e:  # reported by join()
            self.error = e

    def join(self):
        self.thread.join(15)
        self.sock.close()
        assert not self.thread.is_alive(), "the raw upstream did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def raw_config(port, up_port):
    return front_back_config(port, [up_port], codec="raw", pool="min_idle: 0, max_connections: 4")


def test_raw_client_fin_reaches_upstream_and_replies_still_flow(sluice):
    def script(conn):
        data = read_to_eof(conn, 10)  # the client's FIN arrives as EOF here
        time.sleep(0.2)
        conn.sendall(b"after-fin:" + data)  # the other direction still flows
        return data

    peer = RawPeer(script)
    port = free_port()
    p = sluice(raw_config(port, peer.port))  # serving: no probe connection, the peer takes one
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"hello " * 1000)
    s.shutdown(socket.SHUT_WR)
    got = read_to_eof(s, 10)
    s.close()
    assert peer.join() == b"hello " * 1000
    assert got == b"after-fin:" + b"hello " * 1000
    assert p.stop() == 0


def test_raw_upstream_fin_reaches_client_and_requests_still_flow(sluice):
    def script(conn):
        conn.sendall(b"banner\n")
        conn.shutdown(socket.SHUT_WR)  # the upstream is done talking, not listening
        return read_to_eof(conn, 10)

    peer = RawPeer(script)
    port = free_port()
    p = sluice(raw_config(port, peer.port))  # serving: no probe connection, the peer takes one
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"x")  # a lease is taken once the client is accepted
    assert read_to_eof(s, 10) == b"banner\n"  # the client sees the upstream's FIN
    s.sendall(b"still sending " * 500)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    assert s.recv(1) == b""
    s.close()
    assert peer.join() == b"x" + b"still sending " * 500
    assert p.stop() == 0
