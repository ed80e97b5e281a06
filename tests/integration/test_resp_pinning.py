"""codec resp: commands with connection state (MULTI, WATCH, SELECT, pub/sub,
blocking commands, HELLO 3) on pinned connections, exactly as against redis
direct and never leaking into another client; stateful: reject."""
import os
import socket
import struct
import time


from conftest import stats_sum


from resp_util import *  # noqa: F401,F403 (the client, servers and fixtures)

# ---- 4. MULTI / EXEC / WATCH ----


def transaction_session(port_a, port_b, k):
    a, b = Resp(port_a), Resp(port_b)
    out = []
    out += [a.call("MULTI"), a.call("SET", k, "1"), a.call("INCR", k), a.call("GET", k)]
    # B meanwhile: executed at once, A's queued commands are not
    out += [b.call("SET", k + "b", "x"), b.call("GET", k + "b"), b.call("GET", k)]
    out += [a.call("EXEC"), b.call("GET", k)]
    # an error while queueing aborts EXEC
    out += [a.call("MULTI"), a.call("SET", k), a.call("INCR", k), a.call("EXEC"), a.call("GET", k)]
    # DISCARD
    out += [a.call("MULTI"), a.call("INCR", k), a.call("DISCARD"), a.call("GET", k)]
    out += [a.call("EXEC"), a.call("DISCARD"), a.call("MULTI"), a.call("MULTI"), a.call("DISCARD")]
    # WATCH with a conflicting write from B: EXEC answers nil
    out += [a.call("WATCH", k), b.call("SET", k, "other"), a.call("MULTI"),
            a.call("SET", k, "mine"), b.call("GET", k), a.call("EXEC"), a.call("GET", k)]
    # WATCH without a conflict
    out += [a.call("WATCH", k), a.call("MULTI"), a.call("SET", k, "mine"), a.call("EXEC"),
            b.call("GET", k)]
    # WATCH, UNWATCH, then a write from B does not matter
    out += [a.call("WATCH", k), a.call("UNWATCH"), b.call("SET", k, "b2"), a.call("MULTI"),
            a.call("INCR", k), a.call("EXEC")]
    # a pipelined transaction
    a.send(("SET", k + "q", "1"), ("MULTI",), ("INCR", k + "p"), ("INCR", k + "p"),
           ("LPUSH", k, "x"), ("EXEC",), ("GET", k + "p"), ("INCR", k + "q"))
    out += [a.reply() for _ in range(8)]
    out += [b.call("INCR", k + "p")]
    out += [b.call("SET", k + "b", "after"), b.call("GET", k + "b"), a.call("PING")]
    a.close()
    b.close()
    return out


def test_multi_exec_watch_like_direct(one):
    r, p, port = one()
    got = transaction_session(port, port, "tx1:")
    want = transaction_session(r.port, r.port, "tx2:")
    assert got == want
    assert got[4:7] == ["OK", b"x", None]  # B's SET is OK (not QUEUED), A's SET not yet done
    assert got[7] == ["OK", 2, b"2"]
    assert got[28] is None  # EXEC after a conflicting write
    # B's conflicting write through sluice, or directly: the same
    got2 = transaction_session(port, r.port, "tx3:")
    assert got2 == want
    stop_clean(p)


def test_max_pinned(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 2, max_pinned: 2")
    a, b, c = Resp(port), Resp(port), Resp(port)
    assert a.call("MULTI") == "OK"
    assert b.call("MULTI") == "OK"
    assert c.call("MULTI") == Err("ERR sluice: too many pinned clients")
    assert c.call("SET", "mp", "c") == "OK"  # not pinned, still served
    assert a.call("SET", "mp", "a") == "QUEUED"
    assert a.call("EXEC") == ["OK"]
    time.sleep(0.1)
    assert c.call("MULTI") == "OK"  # a's pin ended and made room
    assert c.call("GET", "mp") == "QUEUED"
    assert c.call("EXEC") == [b"a"]
    assert b.call("DISCARD") == "OK"
    for x in (a, b, c):
        x.close()
    stop_clean(p)


# ---- 5. SELECT ----


def test_select_pins_and_is_reset(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 1")
    d0, d1 = direct(r.port, 0), direct(r.port, 1)
    a = Resp(port)
    assert a.call("SET", "sel", "db0") == "OK"
    assert a.call("SELECT", "1") == "OK"
    assert a.call("SET", "sel", "db1") == "OK"
    assert a.call("SET", "only1", "x") == "OK"
    assert d1.get("sel") == b"db1" and d1.get("only1") == b"x"
    assert d0.get("sel") == b"db0" and d0.get("only1") is None
    b = Resp(port)
    assert b.call("GET", "sel") == b"db0"
    assert b.call("GET", "only1") is None
    assert b.call("SET", "fromb", "y") == "OK"
    assert a.call("GET", "sel") == b"db1"  # A is still in db 1
    assert a.call("GET", "fromb") is None
    assert d0.get("fromb") == b"y"
    a.close()
    time.sleep(0.3)
    for i in range(5):
        c = Resp(port)
        assert c.call("GET", "sel") == b"db0"
        assert c.call("GET", "only1") is None
        assert c.call("SET", "after%d" % i, i) == "OK"
        c.close()
    assert b.call("GET", "sel") == b"db0"
    b.close()
    assert d0.mget(["after%d" % i for i in range(5)]) == [b"%d" % i for i in range(5)]
    assert d1.exists(*["after%d" % i for i in range(5)]) == 0
    # SELECT of the cluster's own db and RESET on a shared connection: answered, not pinned
    e = Resp(port)
    assert e.calls(("SELECT", "0"), ("SET", "e", "1"), ("RESET",), ("GET", "e")) == \
        ["OK", "OK", "RESET", b"1"]
    e.close()
    stop_clean(p)
    assert stats_sum(p, "cluster", "pins") == 1
    assert stats_sum(p, "cluster", "unpin_resets") == 1


# ---- 6. pub/sub ----


def test_pubsub(one):
    r, p, port = one()
    d = Resp(r.port)
    s = Resp(port)
    other = Resp(port)
    s.send(("SUBSCRIBE", "ch1", "ch2"))
    assert s.reply() == [b"subscribe", b"ch1", 1]
    assert s.reply() == [b"subscribe", b"ch2", 2]
    assert d.call("PUBLISH", "ch1", "m1") == 1
    assert s.reply() == [b"message", b"ch1", b"m1"]
    assert other.call("PUBLISH", "ch2", "m2") == 1  # through sluice
    assert s.reply() == [b"message", b"ch2", b"m2"]
    assert other.call("SET", "ps", "v") == "OK"  # other clients are not affected
    assert other.call("GET", "ps") == b"v"
    # PING in subscribed mode, like redis direct
    ds = Resp(r.port)
    ds.call("SUBSCRIBE", "zz")
    want_pings = [ds.call("PING"), ds.call("PING", "hi")]
    ds.close()
    assert want_pings == [[b"pong", b""], [b"pong", b"hi"]]
    assert [s.call("PING"), s.call("PING", "hi")] == want_pings
    assert s.call("PSUBSCRIBE", "p*") == [b"psubscribe", b"p*", 3]
    assert d.call("PUBLISH", "px", "hello") == 1
    assert s.reply() == [b"pmessage", b"p*", b"px", b"hello"]
    assert s.call("UNSUBSCRIBE", "ch1") == [b"unsubscribe", b"ch1", 2]
    assert d.call("PUBLISH", "ch1", "lost") == 0
    assert other.call("PUBLISH", "ch2", "m3") == 1
    assert s.reply() == [b"message", b"ch2", b"m3"]
    assert s.call("UNSUBSCRIBE") == [b"unsubscribe", b"ch2", 1]
    assert s.call("PUNSUBSCRIBE") == [b"punsubscribe", b"p*", 0]
    # out of subscribed mode: ordinary commands again, nothing more is delivered
    assert s.call("GET", "ps") == b"v"
    assert d.call("PUBLISH", "ch2", "none") == 0
    assert d.call("PUBLISH", "px", "none") == 0
    assert s.call("SET", "ps2", "w") == "OK"
    assert s.call("GET", "ps2") == b"w"
    assert d.call("PUBSUB", "NUMSUB", "ch1", "ch2") == [b"ch1", 0, b"ch2", 0]
    assert d.call("PUBSUB", "NUMPAT") == 0
    # the pin taken in the middle of a pipeline
    s3 = Resp(port)
    s3.send(("SET", "ps3", "1"), ("INCR", "ps3"), ("SUBSCRIBE", "ch7"), ("PING",))
    assert [s3.reply() for _ in range(4)] == ["OK", 2, [b"subscribe", b"ch7", 1], [b"pong", b""]]
    assert other.call("PUBLISH", "ch7", "x") == 1
    assert s3.reply() == [b"message", b"ch7", b"x"]
    s3.send(("UNSUBSCRIBE", "ch7"), ("GET", "ps3"), ("SET", "ps3", "z"))
    assert [s3.reply() for _ in range(3)] == [[b"unsubscribe", b"ch7", 0], b"2", "OK"]
    s3.close()
    # a subscriber that just leaves
    s2 = Resp(port)
    assert s2.call("SUBSCRIBE", "ch9") == [b"subscribe", b"ch9", 1]
    s2.close()
    deadline = time.monotonic() + 3 * SLOW
    while d.call("PUBSUB", "NUMSUB", "ch9") != [b"ch9", 0]:
        assert time.monotonic() < deadline, "the subscription outlived its client"
        time.sleep(0.05)
    for c in (s, other, d):
        c.close()
    stop_clean(p)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def socket_fds(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def test_subscriber_spared_by_idle_deadline_but_not_unbounded(one):
    r, p, port = one(listener_timeouts="idle: 500ms")
    d = Resp(r.port)
    s = Resp(port)
    assert s.call("SUBSCRIBE", "news") == [b"subscribe", b"news", 1]
    time.sleep(1.2)  # well past the idle deadline
    assert d.call("PUBLISH", "news", "late") == 1
    assert s.reply() == [b"message", b"news", b"late"]
    idle = Resp(port)
    assert idle.call("PING") == "PONG"
    assert idle.wait_closed(3 * SLOW)  # ordinary clients still go idle
    idle.close()
    # a subscriber that does not read: closed once far behind, sluice stays bounded
    sockets_before = socket_fds(p.p.pid)
    rss_before = rss_kib(p.p.pid)
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(encode("SUBSCRIBE", "flood"))
    deadline = time.monotonic() + 3 * SLOW
    while d.call("PUBSUB", "NUMSUB", "flood")[1] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Redis's own pubsub limit (32 MiB) would otherwise race sluice's when sluice reads
    # slowly (under ASan): switch it off so the bound under test is sluice's
    assert d.call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0") == "OK"
    chunk = b"f" * (1 << 20)
    for _ in range(80):  # 80 MiB, past the 32 MiB of unread messages sluice keeps
        d.call("PUBLISH", "flood", chunk)
    p.wait_line("reads too slowly", timeout=10 * SLOW)
    grew = rss_kib(p.p.pid) - rss_before
    if not SANITIZED:  # ASan's quarantine keeps freed memory in RSS
        assert grew < 64 << 10, "sluice grew by %d KiB for one subscriber" % grew
    # both its connections are closed (what the kernel still sends it is not sluice's)
    deadline = time.monotonic() + 3 * SLOW
    while d.call("PUBSUB", "NUMSUB", "flood")[1] != 0 or socket_fds(p.p.pid) > sockets_before:
        assert time.monotonic() < deadline, "the slow subscriber's connections stayed"
        time.sleep(0.05)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    slow.close()
    assert d.call("PUBLISH", "news", "still") == 1  # the other subscriber is untouched
    assert s.reply() == [b"message", b"news", b"still"]
    s.close()
    d.close()
    stop_clean(p)


# ---- 7. blocking commands ----


def test_blpop_times_out_by_itself_and_others_are_served(one):
    r, p, port = one(cluster_timeouts="read: 500ms")
    a = Resp(port)
    b = Resp(port)
    assert b.call("SET", "warm", "1") == "OK"
    start = time.monotonic()
    a.send(("BLPOP", "empty", "1"))
    worst = 0
    while time.monotonic() - start < 0.7:
        t = time.monotonic()
        assert b.call("SET", "during", "x") == "OK"
        assert b.call("GET", "during") == b"x"
        worst = max(worst, time.monotonic() - t)
        time.sleep(0.02)
    assert worst < 0.2 * SLOW, "GET/SET took %.3fs while another client blocked" % worst
    assert a.reply() is None  # redis's own timeout, not a sluice error
    took = time.monotonic() - start
    assert 0.9 <= took <= 1.6 * SLOW, took
    # woken by an LPUSH from another client
    start = time.monotonic()
    a.send(("BLPOP", "wake", "5"))
    time.sleep(0.3)
    assert b.call("LPUSH", "wake", "v") == 1
    assert a.reply() == [b"wake", b"v"]
    assert time.monotonic() - start < 1.5 * SLOW
    assert a.call("GET", "during") == b"x"  # back on the shared connections
    assert direct(r.port).exists("wake") == 0
    # in the middle of a pipeline: the replies keep their order
    assert a.calls(("SET", "pp", "1"), ("BLPOP", "nolist", "0.3"), ("INCR", "pp"),
                   ("RPUSH", "pl", "q"), ("BRPOP", "pl", "1"), ("GET", "pp")) == \
        ["OK", None, 2, 1, [b"pl", b"q"], b"2"]
    # XREAD BLOCK: nil after its timeout, or woken by XADD
    start = time.monotonic()
    assert a.call("XREAD", "BLOCK", "300", "STREAMS", "st", "$") is None
    assert 0.25 <= time.monotonic() - start < 1.5 * SLOW
    a.send(("XREAD", "BLOCK", "5000", "STREAMS", "st", "$"))
    time.sleep(0.2)
    xid = b.call("XADD", "st", "*", "f", "v")
    assert a.reply() == [[b"st", [[xid, [b"f", b"v"]]]]]
    # BZPOPMIN too
    a.send(("BZPOPMIN", "z", "5"))
    time.sleep(0.2)
    assert b.call("ZADD", "z", "1.5", "m") == 1
    assert a.reply() == [b"z", b"m", b"1.5"]
    a.close()
    b.close()
    stop_clean(p)


# ---- 8. HELLO 3 ----


def test_hello3_switches_only_its_client(one):
    r, p, port = one()
    d = Resp(r.port)
    want = d.call("HELLO", "3")
    d.close()
    a = Resp(port)
    got = a.call("HELLO", "3")
    assert isinstance(got, dict), got
    assert set(got) == set(want)
    assert got[b"proto"] == want[b"proto"] == 3
    assert got[b"server"] == b"redis"
    assert a.call("HSET", "h3", "f", "v") == 1
    assert a.call("HGETALL", "h3") == {b"f": b"v"}  # a map: RESP3
    a.send_raw(encode("HGETALL", "h3"))  # answered after B's below
    b = Resp(port)
    b.send(("HGETALL", "h3"))
    line = b._line()
    assert line == b"*2", line  # b still speaks RESP2
    assert [b.reply(), b.reply()] == [b"f", b"v"]
    assert b.call("GET", "nothing") is None
    assert a.reply() == {b"f": b"v"}
    a.send(("GET", "nothing"))
    assert a._line() == b"_"  # RESP3 null
    assert a.call("PING") == "PONG"
    a.close()
    b.close()
    # after A leaves, new clients speak RESP2
    c = Resp(port)
    c.send(("GET", "nothing"))
    assert c._line() == b"$-1"
    c.close()
    stop_clean(p)


def resp3_pubsub_session(port, pub_port, ch):
    a = Resp(port)
    pub = Resp(pub_port)
    out = [a.call("HELLO", "3")[b"proto"]]
    out += [a.call("SUBSCRIBE", ch)]
    out += [pub.call("PUBLISH", ch, "m1"), a.reply()]
    out += [a.call("SET", ch + "k", "v"), a.call("GET", ch + "k")]  # RESP3: commands go on
    out += [pub.call("PUBLISH", ch, "m2"), a.reply(), a.call("PING")]
    out += [a.call("UNSUBSCRIBE", ch), pub.call("PUBLISH", ch, "m3"), a.call("GET", ch + "k")]
    a.close()
    pub.close()
    return out


def test_resp3_pubsub_like_direct(one):
    r, p, port = one()
    got = resp3_pubsub_session(port, port, "c3")
    want = resp3_pubsub_session(r.port, r.port, "c3")
    assert got == want
    assert type(got[1]) is Push and type(got[3]) is Push
    stop_clean(p)


# ---- 9. stateful: reject ----


def test_stateful_reject(one):
    r, p, port = one(listener_resp="stateful: reject")
    c = Resp(port)
    for cmd in (("MULTI",), ("multi",), ("BLPOP", "l", "1"), ("SUBSCRIBE", "c"),
                ("SELECT", "1"), ("WATCH", "k")):
        name = cmd[0].upper()
        assert c.call(*cmd) == Err(
            "ERR sluice: %s needs a connection of its own (resp.stateful: reject)" % name), cmd
    assert c.call("SET", "k", "v") == "OK"  # the client stays connected and served
    assert c.call("EXEC") == Err("ERR EXEC without MULTI")  # not inside a transaction
    assert c.call("GET", "k") == b"v"
    c.close()
    stop_clean(p)
    assert stats_sum(p, "listener", "rejected_commands") == 6
    assert stats_sum(p, "cluster", "pins") == 0


# ---- 16. a blocked client that leaves ----


def blocked_clients(d):
    return [l for l in d.client_list() if "b" in l.get("flags", "")]


def test_blocked_client_leaving_frees_its_connection(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 2")
    d = direct(r.port)
    c = Resp(port)
    assert c.call("SET", "warm", "1") == "OK"
    time.sleep(0.2)
    baseline = len(d.client_list())
    clients = []
    for i in range(10):
        b = Resp(port)
        b.send(("BLPOP", "never", "30"))
        clients.append(b)
    deadline = time.monotonic() + 3 * SLOW
    while len(blocked_clients(d)) < 10:
        assert time.monotonic() < deadline, d.client_list()
        time.sleep(0.05)
    assert len(d.client_list()) >= baseline + 10
    assert c.call("GET", "warm") == b"1"  # the shared connections still serve
    for b in clients:
        b.close()
    # each pinned connection is closed, or cleaned and kept within max_connections (2)
    deadline = time.monotonic() + 2 * SLOW
    while blocked_clients(d) or len(d.client_list()) > 1 + 2:
        assert time.monotonic() < deadline, "pinned connections outlived their clients: %s" % (
            ["%s flags=%s cmd=%s age=%s" % (l["addr"], l["flags"], l["cmd"], l["age"])
             for l in d.client_list()],)
        time.sleep(0.05)
    # nothing left blocked upstream would swallow this
    assert d.lpush("never", "v") == 1
    time.sleep(0.1)
    assert d.llen("never") == 1
    assert c.call("LPOP", "never") == b"v"
    c.close()
    stop_clean(p)
