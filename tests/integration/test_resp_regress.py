"""codec resp: regressions a review found (each test fails on the bug it names).
Connection state follows the replies in order (pipelined EXEC, MULTI and RESET,
SELECT; a refused DISCARD), commands that are not one-reply-per-command
(UNSUBSCRIBE, REPLCONF, SYNC), RESP3 pushes while a pinned connection is
cleaned, a blocked client's pipeline on a sharded cluster, the request deadline
after a blocking command, clients leaving while not being read, a streaming
client that floods, hostile integer replies, empty commands, malformed SELECT
and a bad inline command with re-framing."""
import socket
import threading
import time

import pytest

from conftest import free_port, stats_sum, wait_port

from resp_util import *  # noqa: F401,F403 (the client, servers and fixtures)


def read_reply(c, timeout=3.0):
    """The next reply, or what happened instead ('timeout', 'closed')."""
    c.sock.settimeout(timeout)
    try:
        return c.reply()
    except socket.timeout:
        return "timeout"
    except (Closed, ConnectionError):
        return "closed"


def sluice_err(x):
    return isinstance(x, Err) and x.msg.startswith("ERR sluice: ")


# ---- connection state follows the replies, in order ----


def exec_multi_session(port_a, port_b, k):
    a, b = Resp(port_a, timeout=5), Resp(port_b, timeout=5)
    out = [a.call("MULTI"), a.call("SET", k, "1")]
    out += [a.calls(("EXEC",), ("MULTI",))]  # a transaction ends and the next starts
    time.sleep(0.2)
    out += [b.call("SET", k + "x", "1"), b.call("GET", k + "x"), b.call("INCR", k + "n")]
    out += [a.call("SET", k, "2"), a.call("EXEC"), b.call("GET", k)]
    a.close()
    b.close()
    return out


def test_pipelined_exec_then_multi_keeps_the_transaction(one):
    r, p, port = one(pool="min_idle: 0, max_connections: 1")
    got = exec_multi_session(port, port, "em:")
    assert got[3:6] == ["OK", b"1", 1], "another client landed in A's transaction: %r" % got
    assert got == exec_multi_session(r.port, r.port, "emd:")
    assert got == ["OK", "QUEUED", [["OK"], "OK"], "OK", b"1", 1, "QUEUED", ["OK"], b"2"]
    stop_clean(p)


def test_pipelined_reset_then_select_does_not_leak_the_db(one):
    r, p, port = one(pool="min_idle: 0, max_connections: 1")
    direct(r.port, db=5).set("only5", "yes")
    a = Resp(port, timeout=5)
    assert a.call("SELECT", "2") == "OK"
    assert a.calls(("RESET",), ("SELECT", "5")) == ["RESET", "OK"]
    assert a.call("GET", "only5") == b"yes"  # A is in db 5 now, as it asked
    time.sleep(0.2)
    for i in range(3):
        b = Resp(port, timeout=5)
        assert b.call("GET", "only5") is None, "db 5 leaked to another client"
        assert b.call("SET", "b%d" % i, "x") == "OK"
        b.close()
    a.close()
    time.sleep(0.2)
    b = Resp(port, timeout=5)
    assert b.call("GET", "only5") is None  # nor after A left
    b.close()
    assert direct(r.port).mget(["b0", "b1", "b2"]) == [b"x"] * 3
    stop_clean(p)


def watch_discard_session(port, k):
    c, b, d = Resp(port, timeout=5), Resp(port, timeout=5), Resp(port, timeout=5)
    out = [c.call("WATCH", k), c.call("DISCARD")]  # refused: no MULTI, the WATCH stays
    out += [b.call("SET", k, "changed")]
    out += [d.call("MULTI"), d.call("SET", k + "z", "1"), d.call("EXEC")]  # D never watched
    out += [c.call("MULTI"), c.call("SET", k, "mine"), c.call("EXEC"), c.call("GET", k)]
    for x in (b, c, d):
        x.close()
    return out


def test_refused_discard_keeps_the_watch(one):
    r, p, port = one(pool="min_idle: 0, max_connections: 1")
    got = watch_discard_session(port, "wd:")
    assert got == watch_discard_session(r.port, "wdd:")
    assert got[1] == Err("ERR DISCARD without MULTI")
    assert got[5] == ["OK"], "another client inherited the WATCH"
    assert got[8] is None, "EXEC ignored the WATCH after a conflicting write"
    assert got[9] == b"changed"
    stop_clean(p)


def test_reset_in_a_transaction_keeps_the_cluster_db(one):
    r, p, port = one(cluster_resp="db: 3", pool="min_idle: 1, max_connections: 1")
    direct(r.port, db=3).set("k", "in-db3")
    c = Resp(port, timeout=5)
    assert c.call("GET", "k") == b"in-db3"
    assert c.call("MULTI") == "OK"
    assert c.call("RESET") == "RESET"
    assert c.call("GET", "k") == b"in-db3", "RESET left the client in db 0"
    assert c.calls(("MULTI",), ("RESET",), ("GET", "k"), ("SET", "k2", "v")) == \
        ["OK", "RESET", b"in-db3", "OK"]
    assert c.call("SELECT", "3") == "OK"
    c.close()
    time.sleep(0.2)
    n = Resp(port, timeout=5)
    assert n.call("GET", "k2") == b"v"
    n.close()
    assert direct(r.port, db=3).get("k2") == b"v" and direct(r.port).get("k2") is None
    stop_clean(p)


# ---- commands whose replies are not one per command ----


def test_unsubscribe_on_a_fresh_client_does_not_disturb_others(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 1")
    dr = Resp(r.port)
    dr.send(("UNSUBSCRIBE", "x", "y"))
    want = [dr.reply(), dr.reply()]
    dr.close()
    assert want == [[b"unsubscribe", b"x", 0], [b"unsubscribe", b"y", 0]]
    direct(r.port).set("secret", "bob-data")
    a, b = Resp(port, timeout=3), Resp(port, timeout=3)
    assert a.call("PING") == "PONG" and b.call("PING") == "PONG"
    for _ in range(5):
        a.send(("UNSUBSCRIBE", "x", "y"))
        b.send(*[("GET", "secret")] * 3)
        assert [read_reply(b) for _ in range(3)] == [b"bob-data"] * 3
        assert [read_reply(a), read_reply(a)] == want
    assert a.call("GET", "secret") == b"bob-data"
    a.close()
    b.close()
    stop_clean(p)


def test_replication_commands_are_refused(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 1")
    direct(r.port).set("secret", "bob-data")
    b = Resp(port, timeout=3)
    for cmd in (("REPLCONF", "ACK", "0"), ("REPLCONF", "listening-port", "1"), ("SYNC",),
                ("PSYNC", "?", "-1")):
        a = Resp(port, timeout=3)
        assert a.call("PING") == "PONG"
        a.send(cmd)
        b.send(("GET", "secret"))
        got_a, got_b = read_reply(a), read_reply(b)
        assert sluice_err(got_a), (cmd, got_a)
        assert got_b == b"bob-data", (cmd, got_b)
        assert a.call("GET", "secret") == b"bob-data"  # the client stays and is served
        a.close()
    assert b.call("GET", "secret") == b"bob-data"
    assert [c for c in direct(r.port).client_list() if "S" in c["flags"]] == []  # no replica
    b.close()
    stop_clean(p)


def test_tracking_client_leaving_hands_no_reset_to_the_next(one):
    r, p, port = one(pool="min_idle: 0, max_connections: 1")
    stop = threading.Event()

    def writer():
        w = direct(r.port)
        while not stop.is_set():
            w.set("hot", "1")

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    bad = []
    try:
        for rnd in range(100):
            tr = Resp(port, timeout=3)
            assert tr.call("HELLO", "3")[b"proto"] == 3
            assert tr.call("CLIENT", "TRACKING", "ON") == "OK"
            tr.send(*[("GET", "hot")] * 20)
            for _ in range(20):
                tr.reply()  # replies and invalidation pushes
            tr.close()  # while the writer invalidates what it tracked
            o = Resp(port, timeout=3)
            for i in range(5):
                got = o.call("ECHO", "e%d" % i)
                if got != b"e%d" % i:
                    bad.append((rnd, i, got))
            o.close()
            if bad:
                break
    finally:
        stop.set()
        t.join(5)
    assert not bad, "replies not meant for the next client: %r" % bad[:5]
    stop_clean(p)


# ---- a blocking command on a sharded cluster ----


def test_sharded_pipeline_behind_a_blocking_command(procs, tmp_path, sluice):
    rs = [start_redis(procs, tmp_path) for _ in range(2)]
    port = free_port()
    p = sluice(config(port, [(rs[0].port, "s1"), (rs[1].port, "s2")],
                      pool="min_idle: 1, max_connections: 2",
                      cluster_extra="balance: hash\n    hash: md5\n    distribution: ketama"))
    wait_port(port)
    d1, d2 = direct(rs[0].port), direct(rs[1].port)
    c = Resp(port, timeout=5)
    keys = ["key%d" % i for i in range(40)]
    assert c.call("MSET", *[x for k in keys for x in (k, "v")]) == "OK"
    a = next(k for k in keys if d1.exists(k))
    b = next(k for k in keys if d2.exists(k))
    d1.flushall()
    d2.flushall()
    start = time.monotonic()
    got = c.calls(("BLPOP", a, "0.3"), ("SET", b, "v"), ("MGET", a, b), ("GET", b))
    assert got == [None, "OK", [None, b"v"], b"v"]
    assert time.monotonic() - start < 2 * SLOW
    assert d2.get(b) == b"v" and d1.get(b) is None, "SET went to the blocked key's shard"
    assert c.call("GET", b) == b"v"
    # a blocking command woken by another client, with the pipeline behind it
    other = Resp(port)
    c.send(("BLPOP", a, "5"), ("SET", b, "w"), ("GET", b))
    time.sleep(0.2)
    assert other.call("RPUSH", a, "job") == 1
    assert [c.reply() for _ in range(3)] == [[a.encode(), b"job"], "OK", b"w"]
    assert d2.get(b) == b"w" and d1.get(b) is None
    for x in (c, other):
        x.close()
    stop_clean(p)


# ---- deadlines and clients that leave ----


def test_request_deadline_still_cuts_after_blpop(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path, extra=["--enable-debug-command", "yes"])
    port = free_port()
    p = sluice(config(port, [r.port], listener_timeouts="request: 1s",
                      cluster_timeouts="read: 10s"))
    wait_port(port)
    c = Resp(port, timeout=10)
    assert c.call("BLPOP", "nolist", "0.2") is None
    start = time.monotonic()
    c.send(("DEBUG", "SLEEP", "3"))
    got = read_reply(c, timeout=10)
    took = time.monotonic() - start
    # sluice closes a client past its request deadline (an error reply would do too)
    assert got == "closed" or sluice_err(got), \
        "DEBUG SLEEP 3 was not cut by the 1s request deadline: %r" % (got,)
    assert 0.8 <= took <= 1.8 * SLOW, took
    c.close()
    stop_clean(p)
    assert stats_sum(p, "listener", "request_timeouts") == 1


def blpop_upstreams(d):
    return [x for x in d.client_list() if x["cmd"] == "blpop"]


@pytest.mark.parametrize("behind", ["quit", "max_inflight"])
def test_client_leaving_behind_a_blpop_frees_its_connection(one, behind):
    """A client that sluice no longer reads (after QUIT, or with max_inflight requests
    in flight) and that closes is dropped at once, as Redis drops it."""
    r, p, port = one(listener_timeouts="request: 1s, idle: 5s")
    d = direct(r.port)
    for _ in range(2):
        c = Resp(port, timeout=3)
        c.send(*[("BLPOP", "never", "0")] +
               ([("QUIT",)] if behind == "quit" else [("GET", "k")] * 200))  # 128 by default
        deadline = time.monotonic() + 3 * SLOW
        while len(blpop_upstreams(d)) != 1:
            assert time.monotonic() < deadline, d.client_list()
            time.sleep(0.05)
        c.close()
        deadline = time.monotonic() + 2 * SLOW
        while blpop_upstreams(d):
            assert time.monotonic() < deadline, \
                "the blocked upstream connection outlived its client"
            time.sleep(0.05)
    assert d.lpush("never", "v") == 1  # nothing blocked upstream swallows it
    time.sleep(0.1)
    assert d.llen("never") == 1
    stop_clean(p)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_reply_off_flood_while_redis_is_busy_stays_bounded(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path, extra=["--enable-debug-command", "yes"])
    port = free_port()
    p = sluice(config(port, [r.port], cluster_timeouts="read: 30s, write: 30s"))
    wait_port(port)
    c = Resp(port, timeout=30)
    c.send(("CLIENT", "REPLY", "OFF"), ("SET", "first", "1"))  # no replies from here on
    time.sleep(0.2)
    assert direct(r.port).get("first") == b"1"
    busy = Resp(r.port, timeout=30)
    busy.send(("DEBUG", "SLEEP", "3"))
    time.sleep(0.2)
    before = rss_kib(p.p.pid)
    chunk = b"".join(encode("SET", "k%d" % i, "x" * 1000) for i in range(1000))  # ~1 MiB
    c.sock.settimeout(0.5)
    sent = 0
    stop_at = time.monotonic() + 2.0
    try:
        while time.monotonic() < stop_at and sent < (256 << 20):
            c.sock.sendall(chunk)
            sent += len(chunk)
    except socket.timeout:
        pass  # sluice stopped reading: what it should do
    grew = rss_kib(p.p.pid) - before
    assert grew < 64 << 10, "sluice grew by %d KiB buffering %d MiB for one client" % (
        grew, sent >> 20)
    assert_alive(p)
    assert busy.reply() == "OK"
    other = Resp(port)
    assert other.call("PING") == "PONG"
    other.close()
    c.close()
    busy.close()
    stop_clean(p)


# ---- hostile replies ----


class FakeShard:
    """A RESP server that answers GET with its name, DEL/EXISTS/UNLINK/TOUCH with
    self.integer and MGET with self.array (set by the test), anything else +OK."""

    def __init__(self, name):
        self.name = name.encode()
        self.integer = b":1\r\n"
        self.array = b"*1\r\n$1\r\na\r\n"
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", free_port()))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.lsock.settimeout(0.1)
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _commands(buf):
        out = []
        while buf.startswith(b"*"):
            try:
                i = buf.index(b"\r\n")
                pos, args = i + 2, []
                for _ in range(int(buf[1:i])):
                    j = buf.index(b"\r\n", pos)
                    n = int(buf[pos + 1:j])
                    if len(buf) < j + 2 + n + 2:
                        raise ValueError
                    args.append(buf[j + 2:j + 2 + n])
                    pos = j + 2 + n + 2
            except ValueError:
                break
            out.append(args[0].upper())
            buf = buf[pos:]
        return out, buf

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                cmds, buf = self._commands(buf + data)
                for name in cmds:
                    if name == b"GET":
                        conn.sendall(b"$%d\r\n%s\r\n" % (len(self.name), self.name))
                    elif name in (b"DEL", b"EXISTS", b"UNLINK", b"TOUCH"):
                        conn.sendall(self.integer)
                    elif name == b"MGET":
                        conn.sendall(self.array)
                    else:
                        conn.sendall(b"+OK\r\n")
        except OSError:
            return

    def close(self):
        self.stopped = True
        self.lsock.close()
        for c in self.conns:
            c.close()


def test_hostile_integer_replies_from_two_shards(sluice):
    fakes = [FakeShard("s1"), FakeShard("s2")]
    try:
        port = free_port()
        p = sluice(config(port, [(f.port, f.name.decode()) for f in fakes],
                          cluster_timeouts="read: 300ms",
                          cluster_extra="balance: hash\n    hash: md5"))
        wait_port(port)
        c = Resp(port, timeout=5)
        placed = {}
        for i in range(40):
            placed.setdefault(c.call("GET", "key%d" % i), "key%d" % i)
        assert set(placed) == {b"s1", b"s2"}, placed
        k1, k2 = placed[b"s1"], placed[b"s2"]
        big = b":%d\r\n" % (2 ** 63 - 1)
        for first, second in ((big, b":1\r\n"), (b":-%d\r\n" % 2 ** 63, b":-1\r\n"),
                              (b":99999999999999999999\r\n", b":0\r\n"),
                              (b":-99999999999999999999\r\n", b":0\r\n"),
                              (b":\r\n", b":1\r\n"), (b":12abc\r\n", b":1\r\n")):
            fakes[0].integer, fakes[1].integer = first, second
            for cmd in ("DEL", "EXISTS", "UNLINK", "TOUCH"):
                got = c.call(cmd, k1, k2)
                assert got == Err("ERR sluice: malformed upstream reply"), (first, second, cmd, got)
        fakes[0].integer, fakes[1].integer = b":%d\r\n" % (2 ** 62), b":%d\r\n" % (2 ** 62 - 1)
        assert c.call("DEL", k1, k2) == 2 ** 63 - 1  # the largest sum still fits
        fakes[0].integer, fakes[1].integer = b":2\r\n", b":3\r\n"
        assert c.call("EXISTS", k1, k2) == 5
        # odd MGET parts: an error or an array of the keys' count, sluice stays
        for arr in (b":1\r\n", b"*-1\r\n", b"_\r\n", b"*3\r\n$-1\r\n_\r\n:5\r\n",
                    b"*99999999999999999999\r\n", b"*2\r\n*1\r\n:1\r\n%1\r\n+a\r\n+b\r\n"):
            fakes[0].array = arr
            got = c.call("MGET", k1, k2)
            assert isinstance(got, Err) or (isinstance(got, list) and len(got) == 2), (arr, got)
            assert c.call("GET", k1) == b"s1"
        assert_alive(p)
        c.close()
        stop_clean(p)  # and no sanitizer report
    finally:
        for f in fakes:
            f.close()


# ---- odd requests ----


def test_empty_commands_are_ignored_like_redis(one):
    r, p, port = one()
    data = (encode("ECHO", "a") + b"*0\r\n" + b"*-1\r\n" + encode("ECHO", "b") + b"*0\r\n"
            + b"PING\r\n" + b"*-1\r\n" + encode("ECHO", "c"))
    out = []
    for where in (r.port, port):
        c = Resp(where, timeout=3)
        c.send_raw(data)
        got = [read_reply(c) for _ in range(4)]
        got.append(c.call("ECHO", "after"))
        c.close()
        out.append(got)
    assert out[0] == [b"a", b"b", "PONG", b"c", b"after"]
    assert out[1] == out[0]
    stop_clean(p)


def select_session(port):
    c = Resp(port, timeout=3)
    out = []
    for arg in ("abc", "-1", "99999999999999999999", "100", "", "0x1", "1.0"):
        out.append(c.call("SELECT", arg))
    out.append(c.call("SELECT", "0"))
    out.append(c.call("SET", "sel", "v"))
    c.close()
    return out


def test_malformed_select_gets_the_servers_error(one):
    r, p, port = one()
    got = select_session(port)
    want = select_session(r.port)
    assert got == want
    assert all(isinstance(x, Err) for x in got[:7]), got
    assert direct(r.port).get("sel") == b"v"
    stop_clean(p)


def test_select_with_leading_zeros_gets_the_servers_error(one):
    r, p, port = one()
    c, d = Resp(port, timeout=3), Resp(r.port, timeout=3)
    for arg in ("00", "000"):
        want = d.call("SELECT", arg)
        assert want == Err("ERR value is not an integer or out of range")
        assert c.call("SELECT", arg) == want, arg
    c.close()
    d.close()
    stop_clean(p)


def test_bad_inline_command_with_reframing_leaves_others_intact(one):
    r, p, port = one(codec="{ type: resp, max_frame: 1MiB }", cluster_extra="codec: resp")
    direct(r.port).set("x", "xv")
    c = Resp(port, timeout=3)
    assert c.call("GET", "x") == b"xv"
    for _ in range(3):
        b = Resp(port, timeout=3)
        b.send_raw(b'SET a "unbalanced\r\n')
        bad = read_reply(b)
        c.sock.sendall(encode("GET", "x"))
        time.sleep(0.1)
        c.sock.settimeout(3)
        raw = c.sock.recv(1000)
        assert raw == b"$2\r\nxv\r\n", "another client's reply was corrupted: %r" % raw
        assert sluice_err(bad) and "protocol error" in bad.msg, bad
        b.send_raw(encode("GET", "x"))  # b stays, in sync
        assert read_reply(b) == b"xv"
        b.close()
    assert direct(r.port).exists("a") == 0
    c.close()
    stop_clean(p)
