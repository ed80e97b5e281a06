"""A whole frame has a deadline from its first byte (timeouts.frame), plus an allowance
that grows with the bytes received (timeouts.min_rate): a client trickling bytes is cut
however short its gaps, and a large frame sent at a decent rate passes. Real redis-server
(resp) and tests/tools/fakeupstream.py (line, length) on 127.0.0.1."""
import socket
import struct
import time

from conftest import free_port, front_back_config, stats_sum, wait_port

from resp_util import SLOW, config as resp_config, start_redis, stop_clean

FRAME = "frame: 1s, read: 20s"  # the gaps below stay far under timeouts.read


def trickle_until_closed(port, frame_bytes, gap=0.2, limit=8.0):
    """Send frame_bytes one byte per gap (repeating them while sluice keeps the connection);
    return the seconds until sluice closed it, or None if it was still open after limit."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(gap)
    t0 = time.monotonic()
    i = 0
    try:
        while time.monotonic() - t0 < limit:
            try:
                s.send(frame_bytes[i % len(frame_bytes):i % len(frame_bytes) + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0
            i += 1
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                pass
            except ConnectionResetError:
                return time.monotonic() - t0
        return None
    finally:
        s.close()


def check_cut(p, port, frame_bytes):
    took = trickle_until_closed(port, frame_bytes)
    assert took is not None, "a 5 byte/s sender was still connected after 8s"
    assert took < 1.0 + 1.5 * SLOW, took  # timeouts.frame is 1s
    p.wait_line("frame timeout", timeout=5)


def test_line_trickle_is_cut(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(front_back_config(port, [up.port], timeouts=FRAME))
    wait_port(port)
    check_cut(p, port, b"a line that never ends " * 10)
    assert p.stop() == 0
    assert stats_sum(p, "listener", "frame_timeouts") == 1
    assert stats_sum(p, "listener", "read_timeouts") == 0


def test_length_trickle_is_cut(upstream, sluice):
    up = upstream(framing="length4")
    port = free_port()
    p = sluice(front_back_config(port, [up.port], codec="{ type: length, field_size: 4 }",
                                 timeouts=FRAME))
    wait_port(port)
    check_cut(p, port, struct.pack(">I", 100) + b"z" * 100)
    assert p.stop() == 0
    assert stats_sum(p, "listener", "frame_timeouts") == 1


def test_resp_trickle_is_cut_and_others_are_served(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, [r.port], listener_timeouts=FRAME))
    wait_port(port)
    check_cut(p, port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\n01234567890123456789\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
    stop_clean(p)
    assert stats_sum(p, "listener", "frame_timeouts") == 1


def send_steadily(s, data, seconds):
    """Send data evenly over about seconds, in 64 KiB steps."""
    step = 64 << 10
    t0 = time.monotonic()
    for off in range(0, len(data), step):
        s.sendall(data[off:off + step])
        due = t0 + seconds * (off + step) / len(data)
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
    return time.monotonic() - t0


def test_large_frame_at_a_good_rate_passes(upstream, sluice):
    """2 MiB at about 1 MiB/s takes twice timeouts.frame; min_rate (64KiB/s) allows it."""
    up = upstream(framing="length4")
    port = free_port()
    codec = "{ type: length, field_size: 4, max_frame: 4MiB }"
    p = sluice(front_back_config(port, [up.port], codec=codec, timeouts=FRAME))
    wait_port(port)
    payload = bytes(range(256)) * (8 << 10)
    frame = struct.pack(">I", len(payload)) + payload
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        took = send_steadily(s, frame, 2.0)
        assert took > 1.5
        got = b""
        while len(got) < len(frame):
            chunk = s.recv(1 << 20)
            assert chunk, "closed after %d bytes" % len(got)
            got += chunk
        assert got == frame
    assert p.stop() == 0
    assert stats_sum(p, "listener", "frame_timeouts") == 0


def test_resp_large_value_at_a_good_rate_passes(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(resp_config(port, [r.port], listener_timeouts=FRAME))
    wait_port(port)
    value = b"v" * (2 << 20)
    cmd = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n" % (len(value), value)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert send_steadily(s, cmd, 2.0) > 1.5
        assert s.recv(100) == b"+OK\r\n"
    stop_clean(p)
    assert stats_sum(p, "listener", "frame_timeouts") == 0
