"""The data path through the real binary: listeners, sessions, codecs, pools,
deadlines. Upstreams are tests/tools/fakeupstream.py (fault injection) and
real servers from Debian packages; everything is on 127.0.0.1, bounded in time."""
import asyncio
import os
import resource
import signal
import socket
import struct
import time

import pytest

from conftest import free_port, front_back_config, stats_sum, wait_port


def config(listen, upstream_port, codec="line", workers=1, pool="", timeouts="", cluster_timeouts="",
           listener_extra="", cluster_extra="", servers=None):
    return front_back_config(listen, servers or [upstream_port], codec=codec, workers=workers,
                             pool=pool, timeouts=timeouts, cluster_timeouts=cluster_timeouts,
                             listener_extra=listener_extra,
                             cluster_extra=[cluster_extra] if cluster_extra else [])


async def pipelined_client(port, cid, count, payload=b"", timeout=60):
    """Send count unique lines at once, then read count lines; return them."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    lines = [b"c%d-r%d %s\n" % (cid, i, payload) for i in range(count)]
    writer.write(b"".join(lines))
    await writer.drain()
    got = []
    for _ in range(count):
        got.append(await asyncio.wait_for(reader.readuntil(b"\n"), timeout))
    writer.close()
    return lines, got


def lines_roundtrip(port, text=b"ping\n", timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(text)
        buf = b""
        while buf.count(b"\n") < text.count(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def wait_closed(sock, timeout):
    """Seconds until the peer closes sock (recv returns b'' or reset), or None on timeout."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - start
    except ConnectionResetError:
        return time.monotonic() - start
    except socket.timeout:
        return None


def test_1000_pipelining_clients_in_order_over_2_connections(upstream, sluice):
    up = upstream()
    port = free_port()
    # 20,000 requests at once over 2 x 128 in flight: the rest wait in the queue
    p = sluice(config(port, up.port, pool="min_idle: 1, max_connections: 2, max_pipeline: 128, "
                                          "queue: { max: 20000, timeout: 60s }",
                      timeouts="request: 60s"))
    wait_port(port)

    async def run():
        return await asyncio.gather(*(pipelined_client(port, i, 20) for i in range(1000)))

    results = asyncio.run(asyncio.wait_for(run(), 120))
    for sent, got in results:
        assert got == sent  # every response to the right client, in its order
    assert up.stats()["max_open"] <= 2
    assert p.stop() == 0
    assert stats_sum(p, "listener", "frames_in") == 20000
    assert stats_sum(p, "listener", "frames_out") == 20000
    assert stats_sum(p, "cluster", "conns_max") <= 2


def test_oversize_frame_closes_only_its_client(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, codec="{ type: line, max_frame: 1KiB }"))
    wait_port(port)
    good = socket.create_connection(("127.0.0.1", port), timeout=5)
    bad = socket.create_connection(("127.0.0.1", port), timeout=5)
    good.sendall(b"hello\n")
    assert good.recv(100) == b"hello\n"
    bad.sendall(b"x" * 2048)  # no delimiter within max_frame
    assert wait_closed(bad, 5) is not None
    good.sendall(b"still here\n")
    assert good.recv(100) == b"still here\n"
    good.close()
    bad.close()
    assert p.stop() == 0
    assert stats_sum(p, "listener", "bad_frames") == 1
    assert any("line longer than max_frame" in l or "max_frame" in l for l in p.lines)


def test_upstream_killed_mid_pipeline_fails_only_its_requests_then_recovers(upstream, sluice):
    a = upstream(mode="delay", delay_ms=1500)
    b = upstream(mode="delay", delay_ms=1500)
    port = free_port()
    p = sluice(config(port, a.port, servers=[a.port, b.port],
                      pool="min_idle: 0, max_connections: 1, max_pipeline: 1"))
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    first.sendall(b"to-a\n")  # round robin: the first request goes to a
    time.sleep(0.2)
    second = socket.create_connection(("127.0.0.1", port), timeout=5)
    second.sendall(b"to-b\n")  # ... and the next to b
    time.sleep(0.3)
    a.proc.p.kill()
    a.proc.p.wait()
    took = wait_closed(first, 5)
    assert took is not None and took < 1, "the client of the broken connection must be closed at once"
    second.settimeout(5)
    assert second.recv(10) == b"to-b\n"  # the other connection's request was not touched
    second.close()
    first.close()
    a2 = upstream(port=a.port)  # a comes back on the same port
    deadline = time.monotonic() + 10
    while sum(1 for i in range(4) if lines_roundtrip(port, b"again%d\n" % i, timeout=3) ==
              b"again%d\n" % i) < 4:
        assert time.monotonic() < deadline, "the pool did not recover"
        time.sleep(0.2)
    assert a2.stats()["opened"] >= 1
    assert p.stop() == 0
    assert stats_sum(p, "listener", "upstream_failures") == 1


def test_orphaned_reply_is_read_and_dropped(upstream, sluice):
    """A client that leaves with a request in flight: its reply is read off the shared
    connection and dropped, so the next client's reply is its own."""
    up = upstream(mode="delay", delay_ms=300)
    port = free_port()
    p = sluice(config(port, up.port, pool="min_idle: 1, max_connections: 1, max_pipeline: 8"))
    gone = socket.create_connection(("127.0.0.1", port), timeout=5)
    gone.sendall(b"orphan\n")
    time.sleep(0.05)
    gone.close()  # leaves with its request on the upstream connection
    stays = socket.create_connection(("127.0.0.1", port), timeout=5)
    stays.sendall(b"mine\n")
    stays.settimeout(5)
    assert stays.recv(100) == b"mine\n"
    stays.close()
    assert up.stats()["opened"] == 1  # one connection carried both, and stayed in sync
    assert p.stop() == 0
    assert stats_sum(p, "cluster", "responses") == 2


def test_silent_upstream_trips_read_deadline_within_10_percent(upstream, sluice):
    up = upstream(mode="silent")
    port = free_port()
    p = sluice(config(port, up.port, timeouts="request: 10s", cluster_timeouts="read: 1s"))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"anyone?\n")
    took = wait_closed(s, 5)
    s.close()
    assert took is not None and 0.9 <= took <= 1.1, took
    assert p.stop() == 0
    assert stats_sum(p, "cluster", "failed_timeout") == 1


def test_request_deadline(upstream, sluice):
    up = upstream(mode="silent")
    port = free_port()
    p = sluice(config(port, up.port, timeouts="request: 700ms", cluster_timeouts="read: 10s"))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"slow\n")
    took = wait_closed(s, 5)
    s.close()
    assert took is not None and 0.63 <= took <= 0.8, took
    assert p.stop() == 0
    assert stats_sum(p, "listener", "request_timeouts") == 1


def test_slowloris_cut_off_after_read_deadline(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, timeouts="read: 500ms, idle: 30s"))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTT")  # part of a frame, then nothing
    took = wait_closed(s, 5)
    s.close()
    assert took is not None and 0.45 <= took <= 0.6, took
    assert p.stop() == 0
    assert stats_sum(p, "listener", "read_timeouts") == 1


def test_idle_client_closed(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, timeouts="idle: 400ms"))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"one\n")
    assert s.recv(10) == b"one\n"
    took = wait_closed(s, 5)
    assert took is not None and 0.35 <= took <= 0.5, took
    s.close()
    assert p.stop() == 0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_non_reading_client_bounded_then_cut_off(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, timeouts="request: 1s"))
    wait_port(port)
    before = rss_kib(p.p.pid)
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    line = b"y" * 1000 + b"\n"
    sent = 0
    cut = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sent < 200 << 20 and not cut:
        try:
            sent += s.send(line * 64)
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            cut = True  # sluice already gave up on this client
    grew = rss_kib(p.p.pid) - before
    # sluice stopped reading: far less than what the client tried to push is held
    assert sent < 64 << 20, sent
    if os.environ.get("SLUICE_SANITIZED") != "1":  # ASan's quarantine keeps freed memory in RSS
        assert grew < 16 << 10, "sluice grew by %d KiB for one client" % grew
    # and once its replies have stalled for timeouts.request (1s), it is cut off
    p.wait_line("does not read its replies", timeout=5)
    if not cut:
        s.setblocking(True)
        assert wait_closed(s, 5) is not None
    s.close()
    assert p.stop() == 0
    assert stats_sum(p, "listener", "write_timeouts") == 1


def test_half_close_gets_every_pending_reply(upstream, sluice):
    up = upstream(mode="delay", delay_ms=50)
    port = free_port()
    p = sluice(config(port, up.port))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    msgs = b"".join(b"m%d\n" % i for i in range(50))
    s.sendall(msgs)
    s.shutdown(socket.SHUT_WR)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    assert buf == msgs
    assert p.stop() == 0


def test_min_idle_connections_before_first_client(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, workers=2, pool="min_idle: 3, max_connections: 4"))
    deadline = time.monotonic() + 5
    while up.stats()["open"] < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert up.stats()["open"] == 6  # 3 per worker, 2 workers, and no client yet
    assert p.stop() == 0


def test_max_lifetime_rotation_loses_no_request(upstream, sluice):
    up = upstream(mode="delay", delay_ms=20)
    port = free_port()
    p = sluice(config(port, up.port, pool="min_idle: 1, max_connections: 2, max_lifetime: 300ms"))
    wait_port(port)

    async def run():
        async def client(i):
            total = []
            for round_ in range(10):
                sent, got = await pipelined_client(port, i * 100 + round_, 5)
                assert got == sent
                total.append(len(got))
                await asyncio.sleep(0.1)
            return sum(total)

        return await asyncio.gather(*(client(i) for i in range(10)))

    counts = asyncio.run(asyncio.wait_for(run(), 60))
    assert sum(counts) == 500
    assert up.stats()["opened"] >= 4  # connections were rotated
    assert p.stop() == 0
    assert stats_sum(p, "listener", "upstream_failures") == 0


def test_max_clients_rejects_at_once(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, listener_extra="max_clients: 3"))
    wait_port(port)  # that probe connection comes and goes
    time.sleep(0.1)
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    for s in held:
        s.sendall(b"hi\n")
        assert s.recv(10) == b"hi\n"
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    took = wait_closed(extra, 2)
    assert took is not None and took < 1
    extra.close()
    for s in held:
        s.close()
    assert p.stop() == 0
    assert stats_sum(p, "listener", "rejected") == 1


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_emfile_does_not_spin(upstream, sluice):
    up = upstream()
    port = free_port()

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    p = sluice(config(port, up.port, pool="min_idle: 1"), preexec_fn=low_fd_limit)
    wait_port(port)
    conns = []
    for _ in range(60):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    p.wait_line("pausing accepts", timeout=5)
    start = cpu_seconds(p.p.pid)
    time.sleep(2)
    used = cpu_seconds(p.p.pid) - start
    assert used < 0.3, "sluice used %.2fs of CPU in 2s while out of descriptors" % used
    for c in conns:
        c.close()
    time.sleep(0.3)
    assert lines_roundtrip(port, b"after\n") == b"after\n"  # accepting resumed
    assert p.stop() == 0
    assert stats_sum(p, "listener", "accept_errors") >= 1


@pytest.mark.parametrize("min_idle", [1, 0])  # a warm lease, and a lease that connects
def test_raw_relays_both_ways_and_propagates_fin(upstream, sluice, min_idle):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port, codec="raw", pool="min_idle: %d" % min_idle))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    payload = b"".join(b"raw line %d\n" % i for i in range(2000))
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)  # FIN to sluice, then to the upstream, which closes after echoing
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    assert buf == payload
    assert p.stop() == 0
    assert stats_sum(p, "cluster", "leases") == 1


def test_connect_failure_retries_on_another_server(upstream, sluice):
    up = upstream()
    dead = free_port()  # nothing listens there
    port = free_port()
    p = sluice(config(port, up.port, servers=[dead, up.port], pool="min_idle: 0",
                      cluster_extra="retries: 1"))
    wait_port(port)
    for i in range(10):
        assert lines_roundtrip(port, b"r%d\n" % i) == b"r%d\n" % i
    assert p.stop() == 0
    assert stats_sum(p, "listener", "upstream_failures") == 0


def test_length_codec_frames_and_pipelines(upstream, sluice):
    up = upstream(framing="length2")
    port = free_port()
    p = sluice(config(port, up.port, codec="{ type: length, field_size: 2 }",
                      pool="max_connections: 1"))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    frames = [struct.pack(">H", len(b)) + b for b in (b"", b"a", b"x" * 300, bytes(range(256)))]
    data = b"".join(frames)
    for i in range(len(data)):  # one byte at a time
        s.sendall(data[i:i + 1])
    buf = b""
    while len(buf) < len(data):
        buf += s.recv(65536)
    s.close()
    assert buf == data
    assert p.stop() == 0


def test_memcached_one_line_commands(sluice, procs):
    mc_port = free_port()
    procs(["memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-u", "nobody", "-m", "16"])
    wait_port(mc_port)
    port = free_port()
    p = sluice(config(port, mc_port, codec='{ type: line, delimiter: "\\r\\n" }'))
    wait_port(port)
    reply = lines_roundtrip(port, b"version\r\nget nokey\r\nflush_all\r\n")
    lines = reply.split(b"\r\n")
    assert lines[0].startswith(b"VERSION ")
    assert lines[1] == b"END" and lines[2] == b"OK"
    assert p.stop() == 0


def test_sigterm_with_clients_connected(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port))
    wait_port(port)
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
    for c in clients:
        c.sendall(b"x\n")
        assert c.recv(10) == b"x\n"
    assert p.stop(signal.SIGTERM) == 0
    for c in clients:
        c.close()


def test_line_clients_reframed_to_length_prefixed_upstream(upstream, sluice):
    up = upstream(mode="delay", framing="length4", delay_ms=1)  # answers whole length frames only
    port = free_port()
    p = sluice(config(port, up.port, codec='{ type: line, delimiter: "\\n" }',
                      cluster_extra="codec: { type: length, field_size: 4 }"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    msgs = [b"hello", b"", b"x" * 5000, b"last one"]
    s.sendall(b"".join(m + b"\n" for m in msgs))
    buf = b""
    while buf.count(b"\n") < len(msgs):
        chunk = s.recv(65536)
        assert chunk, "closed early: %r" % buf
        buf += chunk
    s.close()
    assert buf == b"".join(m + b"\n" for m in msgs)  # framed as length upstream, lines again here
    assert up.stats()["frames"] == len(msgs)
    assert p.stop() == 0


def dns_query(qid, name):
    """A DNS query for name's A record over TCP: 2-byte length, then the message."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(q)) + q


def test_length_codec_with_real_dns_over_tcp(sluice, procs):
    dns_port = free_port()
    procs(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
           "--listen-address=127.0.0.1", "--bind-interfaces", "--port=%d" % dns_port, "--user=root",
           "--address=/example.test/127.0.0.53"])
    wait_port(dns_port)
    port = free_port()
    p = sluice(config(port, dns_port, codec="{ type: length, field_size: 2, max_frame: 64KiB }",
                      pool="max_pipeline: 1"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    queries = b"".join(dns_query(100 + i, "host%d.example.test" % i) for i in range(20))
    for i in range(0, len(queries), 7):  # split at odd places
        s.sendall(queries[i:i + 7])
    answers = []
    buf = b""
    while len(answers) < 20:
        chunk = s.recv(65536)
        assert chunk
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = struct.unpack(">H", buf[:2])[0]
            answers.append(buf[2:2 + n])
            buf = buf[2 + n:]
    s.close()
    for i, a in enumerate(answers):
        qid, flags, qd, an = struct.unpack(">HHHH", a[:8])
        assert qid == 100 + i  # every answer to its own query, in order
        assert flags & 0x8000 and an == 1
        assert a.endswith(socket.inet_aton("127.0.0.53"))
    assert p.stop() == 0


def test_same_codec_other_delimiter_is_reframed(upstream, sluice):
    """"\\n" clients in front of a "\\r\\n" upstream: each line changes delimiter both ways."""
    up = upstream(mode="delay", delay_ms=1)  # echoes up to and including "\n"
    port = free_port()
    p = sluice(config(port, up.port, codec='{ type: line, delimiter: "\\n" }',
                      timeouts="request: 2s",
                      cluster_extra='codec: { type: line, delimiter: "\\r\\n" }'))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"one\ntwo\n")
    buf = b""
    while buf.count(b"\n") < 2:
        chunk = s.recv(100)
        assert chunk, "no reply: the upstream did not get \\r\\n-terminated lines"
        buf += chunk
    s.close()
    assert buf == b"one\ntwo\n"
    assert p.stop() == 0


@pytest.mark.parametrize("mode", ["close", "rst", "garbage"])
def test_upstream_fault_fails_only_its_connection(upstream, sluice, mode):
    """An upstream that closes mid-frame, resets, or sends what the codec cannot frame breaks
    its connection: the client whose request was on it is closed, the rest of the pool serves on."""
    bad = upstream(mode=mode, after=1, framing="length4")
    good = upstream(framing="length4")
    port = free_port()
    p = sluice(config(port, bad.port, servers=[bad.port, good.port],
                      codec="{ type: length, field_size: 4, max_frame: 64KiB }",
                      pool="min_idle: 0, max_connections: 1, max_pipeline: 1"))
    frame = struct.pack(">I", 5) + b"hello"
    failed = served = 0
    for _ in range(8):  # round robin: every other request lands on the faulty server
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(frame)
        got = b""
        s.settimeout(5)
        try:
            while len(got) < len(frame):
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        s.close()
        if got == frame:
            served += 1
        else:
            assert got == b"", "a client got a partial or foreign reply: %r" % got
            failed += 1
    assert served >= 4 and failed >= 1
    assert p.stop() == 0
    assert stats_sum(p, "listener", "upstream_failures") == failed


def test_ipv6_loopback_bind(upstream, sluice):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port).replace("bind: 127.0.0.1:%d" % port, 'bind: "[::1]:%d"' % port))
    s = socket.create_connection(("::1", port), timeout=5)
    s.sendall(b"six\n")
    assert s.recv(10) == b"six\n"
    s.close()
    assert p.stop() == 0


def test_wildcard_bind_takes_ipv4(upstream, sluice):
    up = upstream()
    port = free_port()
    p = sluice(config(port, up.port).replace("bind: 127.0.0.1:%d" % port, 'bind: "*:%d"' % port))
    assert lines_roundtrip(port, b"any\n") == b"any\n"
    assert p.stop() == 0


def test_server_that_hangs_up_is_not_redialled_in_a_loop(upstream, sluice):
    up = upstream(mode="hangup")
    port = free_port()
    p = sluice(config(port, up.port, pool="min_idle: 2"))
    time.sleep(3)
    opened = up.stats()["opened"]
    # backoff from 100 ms doubling: a handful of attempts per warm slot, not thousands
    assert 2 <= opened <= 40, opened
    assert p.stop() == 0


def test_late_loop_turn_does_not_turn_a_ready_reply_into_a_timeout(upstream, sluice):
    """Stop sluice past the upstream read deadline while the reply arrives: when it runs again,
    libevent reports the expired deadline and the readiness in one turn; the reply must win."""
    up = upstream(mode="delay", delay_ms=100)
    port = free_port()
    p = sluice(config(port, up.port, timeouts="request: 10s", cluster_timeouts="read: 500ms"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"warm\n")
    assert s.recv(10) == b"warm\n"
    s.sendall(b"late\n")
    time.sleep(0.02)  # the request is on its way upstream
    p.p.send_signal(signal.SIGSTOP)
    time.sleep(1.2)  # the reply arrives at 100 ms; the 500 ms deadline passes
    p.p.send_signal(signal.SIGCONT)
    s.settimeout(5)
    assert s.recv(10) == b"late\n"
    s.close()
    assert p.stop() == 0
    assert stats_sum(p, "cluster", "failed_timeout") == 0


def test_raw_backpressure_does_not_spin(upstream, sluice):
    """An upstream that stops reading: sluice stops reading the client, without burning CPU."""
    up = upstream(mode="stall")
    port = free_port()
    # A raw relay has no frame boundary to stop at: a SIGTERM waits drain_timeout for it.
    p = sluice(config(port, up.port, codec="raw", pool="min_idle: 1") +
               "shutdown: { drain_timeout: 1s }\n")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send its own segment
    s.setblocking(False)
    start = cpu_seconds(p.p.pid)
    deadline = time.monotonic() + 2
    sent = 0
    while time.monotonic() < deadline:
        try:
            sent += s.send(b"x" * 100)  # small segments fill a pipe by slots, not bytes
        except BlockingIOError:
            time.sleep(0.005)
    used = cpu_seconds(p.p.pid) - start
    s.close()
    assert sent > 0
    assert used < 0.4, "sluice used %.2fs of CPU in 2s on a stalled relay" % used
    assert p.stop() == 0
