"""codec resp through the real binary against a real redis-server (Debian redis 7.0):
the same replies as redis direct, pipelining cut at every byte, big values,
redis-benchmark, QUIT, sluice's own error replies, client and upstream AUTH."""
import os
import shutil
import socket
import threading
import time

import pytest

from conftest import stats_sum, free_port, free_ports, run, wait_port

import redis  # python3-redis

from resp_util import *  # noqa: F401,F403 (the client, servers and fixtures)

# ---- 1. one server: same results as direct ----


def redis_py_session(r, pre):
    """A mix of commands through redis-py; every result (or error) in order."""
    out = []

    def do(f):
        try:
            out.append(f())
        except redis.ResponseError as e:
            out.append(("error", str(e)))

    do(lambda: r.get(pre + "missing"))
    do(lambda: r.set(pre + "s", "v1"))
    do(lambda: r.get(pre + "s"))
    do(lambda: r.set(pre + "s", "v2", nx=True))
    do(lambda: r.set(pre + "s", "v3", xx=True, get=True))
    do(lambda: r.incr(pre + "n"))
    do(lambda: r.incrby(pre + "n", 41))
    do(lambda: r.incr(pre + "s"))  # not an integer
    do(lambda: r.append(pre + "s", "\r\n\x00tail"))
    do(lambda: r.get(pre + "s"))
    do(lambda: r.rpush(pre + "l", *range(10)))
    do(lambda: r.lrange(pre + "l", 2, 5))
    do(lambda: r.hset(pre + "h", mapping={"a": 1, "b": "x"}))
    do(lambda: sorted(r.hgetall(pre + "h").items()))
    do(lambda: r.type(pre + "h"))
    do(lambda: r.expire(pre + "s", 100))
    do(lambda: r.ttl(pre + "s"))
    do(lambda: r.execute_command("NOSUCHCOMMAND", "x"))
    do(lambda: r.ping())
    do(lambda: r.echo("héllo"))
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(pre + "p%d" % i, i)
        pipe.incr(pre + "pc")
        pipe.get(pre + "p%d" % i)
    pipe.lpop(pre + "nolist")
    pipe.incr(pre + "h")  # wrong type, inside the pipeline
    pipe.get(pre + "pc")
    out.append([("error", str(x)) if isinstance(x, Exception) else x
                for x in pipe.execute(raise_on_error=False)])
    tx = r.pipeline(transaction=True)  # MULTI ... EXEC
    tx.incr(pre + "tx").incr(pre + "tx").get(pre + "tx").rpush(pre + "l", "x").llen(pre + "l")
    out.append(tx.execute())
    do(lambda: r.delete(pre + "s", pre + "n", pre + "nothing"))
    return out


def test_redis_py_same_as_direct(one):
    r, p, port = one()
    via = direct(port)
    got = redis_py_session(via, "t1:")
    want = redis_py_session(direct(r.port), "t1d:")
    assert got == want
    via.close()
    stop_clean(p)


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_pipelining_clients_get_their_own_replies(one, workers):
    r, p, port = one(pool="min_idle: 1, max_connections: 2, max_pipeline: 32", workers=workers)
    failures = []

    def client(cid):
        try:
            c = Resp(port, timeout=30)
            for rnd in range(5):
                cmds = []
                for i in range(100):
                    key = "cc:%d:%d" % (cid, i % 7)
                    cmds += [("SET", key, "%d-%d-%d" % (cid, rnd, i)), ("GET", key),
                             ("INCR", "cc:n:%d" % cid)]
                got = c.calls(*cmds)
                for i in range(100):
                    want = ["OK", b"%d-%d-%d" % (cid, rnd, i), rnd * 100 + i + 1]
                    if got[3 * i:3 * i + 3] != want:
                        failures.append((cid, rnd, i, got[3 * i:3 * i + 3], want))
                        return
            c.close()
        except Exception as e:  # reported below, with the others
            failures.append((cid, repr(e)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:5]
    assert direct(r.port).get("cc:n:7") == b"500"
    stop_clean(p)


def test_client_leaving_mid_pipeline_does_not_disturb_others(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 1, max_pipeline: 64")
    d = direct(r.port)
    d.set("blob", os.urandom(256 << 10))
    d.set("mine", "m")
    for _ in range(5):
        gone = Resp(port)
        gone.send(*[("GET", "blob")] * 200)  # 50 MiB of replies it never reads
        time.sleep(0.02)
        gone.close()
        stays = Resp(port)
        assert stays.calls(*[("GET", "mine"), ("INCR", "seq")] * 50)[-2:] == [b"m", 50]
        assert stays.call("DEL", "seq") == 1
        stays.close()
    assert_alive(p)
    stop_clean(p)


def test_pipeline_sent_one_byte_at_a_time(one):
    r, p, port = one()
    cmds = [("SET", "bat:a", b"hello\r\nworld\x00"), ("GET", "bat:a"), ("INCR", "bat:n"),
            ("INCR", "bat:n"), ("GET", "bat:n"), ("RPUSH", "bat:l", "x", "", "z"),
            ("LRANGE", "bat:l", 0, -1), ("GET", "bat:missing"), ("INCR", "bat:a"),
            ("HSET", "bat:h", "f", "v"), ("HGETALL", "bat:h"), ("DEL", "bat:a", "bat:l"),
            ("GET", "bat:a"), ("EXISTS", "bat:n", "bat:h", "bat:a")]
    data = b"".join(encode(*c) for c in cmds) + b"PING\r\n" + encode("ECHO", b"$3\r\n*\r\n")
    n = len(cmds) + 2
    c = Resp(port, nodelay=True)
    for i in range(len(data)):
        c.sock.send(data[i:i + 1])
        if i % 8 == 0:
            time.sleep(0.0005)  # let sluice see frames cut at many places
    got = [c.reply() for _ in range(n)]
    c.close()
    d = Resp(r.port)
    d.calls(("DEL", "bat:n", "bat:h"))
    d.send_raw(data)
    want = [d.reply() for _ in range(n)]
    d.close()
    assert got == want
    assert got[1] == b"hello\r\nworld\x00" and got[-2] == "PONG" and got[-1] == b"$3\r\n*\r\n"
    stop_clean(p)


def test_8mib_value_round_trips(one):
    r, p, port = one()
    value = os.urandom(8 << 20)
    via = direct(port)
    assert via.set("big", value) is True
    assert via.get("big") == value
    assert direct(r.port).get("big") == value
    # and two of them pipelined, with small commands around them
    pipe = via.pipeline(transaction=False)
    pipe.set("big2", value[::-1]).get("small").get("big").strlen("big2").get("big2")
    assert pipe.execute() == [True, None, value, len(value), value[::-1]]
    via.close()
    stop_clean(p)


def test_inline_commands(one):
    r, p, port = one()
    c = Resp(port)
    c.send_raw(b"PING\r\n")
    assert c.reply() == "PONG"
    c.send_raw(b"SET inl 42\r\nGET inl\r\nINCR inl\r\n")
    assert [c.reply() for _ in range(3)] == ["OK", b"42", 43]
    c.send_raw(b"PING\r\n" + encode("GET", "inl") + b"EXISTS inl nope\r\n")
    assert [c.reply() for _ in range(3)] == ["PONG", b"43", 1]
    c.close()
    assert direct(r.port).get("inl") == b"43"
    stop_clean(p)


# ---- 2. redis-benchmark ----


def benchmark(port, *args, timeout=240):
    res = run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port)] + list(args), timeout=timeout)
    out = (res.stdout + res.stderr).replace("\r", "\n")
    return res.returncode, out


BENCH_POOL = "min_idle: 1, max_connections: 8, queue: { timeout: 20s }"


def test_redis_benchmark_default_tests(one):
    assert shutil.which("redis-benchmark")
    r, p, port = one(pool=BENCH_POOL)
    n, c = (2000, 50) if SANITIZED else (4000, 500)
    code, out = benchmark(port, "-c", str(c), "-P", "16", "-n", str(n), "-q")
    assert code == 0, out[-3000:]
    lines = [l for l in out.split("\n") if "requests per second" in l]
    names = [l.split(":")[0] for l in lines]
    for t in ("PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP",
              "SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN", "LRANGE_100 (first 100 elements)",
              "LRANGE_600 (first 600 elements)", "MSET (10 keys)"):
        assert t in names, "%s missing from:\n%s" % (t, out[-3000:])
    assert "rror" not in out, out[-3000:]
    d = direct(r.port)
    assert d.get("key:__rand_int__") == b"VXK"  # SET's value, default -d 3
    assert d.get("counter:__rand_int__") == str(n).encode()  # every INCR applied once
    assert d.llen("mylist") == n  # LPUSH n, RPUSH n, LPOP n, RPOP n, then LPUSH n for LRANGE
    assert d.hlen("myhash") == 1
    assert d.exists("myset", "myzset") == 0  # SPOP and ZPOPMIN emptied them
    d.close()
    stop_clean(p)


def test_redis_benchmark_csv_no_errors(one):
    r, p, port = one(pool=BENCH_POOL)
    n, c = (2000, 50) if SANITIZED else (6000, 200)
    tests = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"
    code, out = benchmark(port, "-c", str(c), "-P", "16", "-n", str(n), "-q", "--csv", "-t", tests)
    assert code == 0, out[-3000:]
    rows = [l for l in out.split("\n") if l.startswith('"') and not l.startswith('"test"')]
    names = [row.split('"')[1].split(" ")[0] for row in rows]
    assert names == ["SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET", "SPOP",
                     "ZADD", "ZPOPMIN", "LPUSH", "LRANGE_100", "MSET"], out
    for row in rows:
        assert float(row.split('"')[3]) > 0, row
    assert "rror" not in out, out
    d = direct(r.port)
    assert d.get("counter:__rand_int__") == str(n).encode()
    assert d.get("key:__rand_int__") == b"VXK"
    d.close()
    stop_clean(p)


# ---- 3. QUIT ----


def test_quit_answers_ok_and_closes(one):
    r, p, port = one()
    c = Resp(port)
    assert c.call("QUIT") == "OK"
    expect_closed(c)
    c.close()
    # pipelined: replies before QUIT arrive, nothing after it is executed
    c = Resp(port)
    c.send(("SET", "q", "1"), ("PING",), ("QUIT",), ("SET", "q", "2"))
    assert [c.reply() for _ in range(3)] == ["OK", "PONG", "OK"]
    expect_closed(c)
    c.close()
    time.sleep(0.2)
    assert direct(r.port).get("q") == b"1"
    c = Resp(port)
    assert c.call("GET", "q") == b"1"  # sluice still serves
    # QUIT inside a transaction: nothing queued is executed, the pin is cleaned
    m = Resp(port)
    assert m.calls(("MULTI",), ("SET", "q", "3"), ("QUIT",)) == ["OK", "QUEUED", "OK"]
    expect_closed(m)
    m.close()
    time.sleep(0.2)
    assert c.call("GET", "q") == b"1"
    assert c.calls(("MULTI",), ("INCR", "q"), ("EXEC",)) == ["OK", "QUEUED", [2]]
    c.close()
    stop_clean(p)


# ---- 10. sluice's error replies ----


def test_no_healthy_server_is_an_error_reply(procs, tmp_path, sluice):
    dead = free_port()  # nothing listens there
    port = free_port()
    p = sluice(config(port, [dead], pool="min_idle: 0, max_connections: 2",
                      cluster_timeouts="connect: 500ms"))
    wait_port(port)
    c = Resp(port)
    start = time.monotonic()
    assert c.call("GET", "k") == Err("ERR sluice: no healthy server")
    assert c.call("SET", "k", "v") == Err("ERR sluice: no healthy server")  # still connected
    got = c.calls(("PING",), ("GET", "a"), ("GET", "b"))
    assert got == [Err("ERR sluice: no healthy server")] * 3
    assert time.monotonic() - start < 3 * SLOW
    start_redis(procs, tmp_path, port=dead)  # the server comes up: served within seconds
    deadline = time.monotonic() + 5 * SLOW
    while c.call("SET", "k", "v") != "OK":
        assert time.monotonic() < deadline, "no recovery after the server came up"
        time.sleep(0.1)
    assert c.call("GET", "k") == b"v"
    c.close()
    stop_clean(p)


class SilentServer:
    """Accepts TCP connections and never answers (nor closes them)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(0.1)
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
                self.conns.append(conn)
            except socket.timeout:
                pass
            except OSError:
                return

    def close(self):
        self.stopped = True
        self.thread.join(5)
        self.lsock.close()
        for c in self.conns:
            c.close()


def test_silent_server_gives_upstream_timeout(sluice):
    silent = SilentServer()
    try:
        port = free_port()
        p = sluice(config(port, [silent.port], cluster_timeouts="connect: 1s, read: 300ms"))
        wait_port(port)
        c = Resp(port)
        for _ in range(2):
            start = time.monotonic()
            assert c.call("GET", "k") == Err("ERR sluice: upstream timeout")
            took = time.monotonic() - start
            assert 0.25 <= took <= 1.5 * SLOW, took
        c.close()
        stop_clean(p)
    finally:
        silent.close()


class EchoServer:
    """Answers each command with its last argument as a bulk string; the first command on the
    first connection is answered only after `delay` seconds."""

    def __init__(self, delay):
        self.delay = delay
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.stopped = False
        self.accepted = 0
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(conn, self.accepted == 1), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn, first_is_slow):
        buf = b""
        conn.settimeout(0.1)
        while not self.stopped:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            while True:
                cmd, buf = self._take(buf)
                if cmd is None:
                    break
                if first_is_slow:
                    time.sleep(self.delay)
                    first_is_slow = False
                conn.sendall(b"$%d\r\n%s\r\n" % (len(cmd[-1]), cmd[-1]))
        conn.close()

    @staticmethod
    def _take(buf):
        """One RESP array of bulk strings off the front of buf, or (None, buf)."""
        head = buf.find(b"\r\n")
        if head < 0:
            return None, buf
        n, at, args = int(buf[1:head]), head + 2, []
        for _ in range(n):
            eol = buf.find(b"\r\n", at)
            if eol < 0:
                return None, buf
            size = int(buf[at + 1:eol])
            if len(buf) < eol + 2 + size + 2:
                return None, buf
            args.append(buf[eol + 2:eol + 2 + size])
            at = eol + 2 + size + 2
        return args, buf[at:]

    def close(self):
        self.stopped = True
        self.lsock.close()
        for t in self.threads:
            t.join(5)


def test_request_deadline_answers_with_an_error_and_keeps_the_client(sluice):
    """timeouts.request on a shared connection: -ERR sluice: request timeout in the request's
    place, the client stays, and the late reply is dropped, never given to a later request."""
    slow = EchoServer(delay=2.0)
    try:
        port = free_port()
        p = sluice(config(port, [slow.port], pool="min_idle: 2, max_connections: 2",
                          listener_timeouts="request: 700ms",
                          cluster_timeouts="connect: 1s, read: 10s"))
        wait_port(port)
        c = Resp(port, timeout=10)
        start = time.monotonic()
        assert c.call("ECHO", "slow") == Err("ERR sluice: request timeout")
        took = time.monotonic() - start
        assert 0.6 <= took <= 1.5 * SLOW, took
        # the same client goes on, on the other connection
        assert c.call("ECHO", "a") == b"a"
        time.sleep(2.0)  # the slow reply arrives now, for nobody
        assert c.calls(*[("ECHO", "w%d" % i) for i in range(20)]) == [b"w%d" % i for i in range(20)]
        c.close()
        stop_clean(p)
        assert stats_sum(p, "listener", "request_timeouts") == 1
    finally:
        slow.close()


# ---- 11. oversize frame ----


def test_oversize_frame_closes_only_its_client(one):
    r, p, port = one(codec="{ type: resp, max_frame: 1KiB }")
    good = Resp(port)
    assert good.call("SET", "small", "x" * 500) == "OK"
    bad = Resp(port)
    bad.send(("SET", "huge", "y" * 2000))
    assert bad.reply() == Err("ERR sluice: frame too large")
    expect_closed(bad)
    bad.close()
    assert good.call("GET", "small") == b"x" * 500
    assert good.call("PING") == "PONG"
    assert direct(r.port).exists("huge") == 0
    # a reply over max_frame: an error reply for that request, the client stays
    direct(r.port).set("hugereply", "z" * 2000)
    got = good.call("GET", "hugereply")
    assert isinstance(got, Err) and got.msg.startswith("ERR sluice: "), got
    assert good.call("GET", "small") == b"x" * 500
    # bytes that cannot be framed: an error, then the connection closes
    for junk in (b"*1\r\n$x\r\n", b"*-0\r\n", b"*1\r\n$3\r\nGETxx\r\n"):  # "*-5" is skipped
        bad = Resp(port)
        bad.send_raw(encode("PING") + junk)
        assert bad.reply() == "PONG"
        got = bad.reply()
        assert isinstance(got, Err), (junk, got)
        assert got.msg.startswith("ERR sluice: protocol error: "), (junk, got)
        expect_closed(bad)
        bad.close()
    # a whole RESP value that is not a command: an error in its place, the stream goes on
    for junk, err in ((b"*2\r\n$3\r\nGET\r\n:1\r\n", "ERR sluice: protocol error: "),
                      (b'GET "unbalanced\r\n', "ERR sluice: protocol error: "),
                      (b"+OK\r\n", "ERR unknown command '+OK'")):  # inline, as redis reads it
        odd = Resp(port)
        odd.send_raw(encode("PING") + junk + encode("ECHO", "after"))
        assert odd.reply() == "PONG"
        got = odd.reply()
        assert isinstance(got, Err) and got.msg.startswith(err), (junk, got)
        assert odd.reply() == b"after"
        odd.close()
    assert good.call("PING") == "PONG"
    good.close()
    stop_clean(p)


# ---- 12. client auth ----


def test_client_auth(one):
    r, p, port = one(listener_resp='auth: { password: "secret" }')
    c = Resp(port)
    noauth = Err("NOAUTH Authentication required.")
    wrongpass = Err("WRONGPASS invalid username-password pair or user is disabled.")
    assert c.call("GET", "k") == noauth
    assert c.call("PING") == noauth
    assert c.call("AUTH", "wrong") == wrongpass
    assert c.call("AUTH", "default", "wrong") == wrongpass
    assert c.call("AUTH", "someone", "secret") == wrongpass
    assert c.call("SET", "k", "v") == noauth
    assert c.call("AUTH", "secret") == "OK"
    assert c.call("SET", "k", "v") == "OK"
    assert c.call("GET", "k") == b"v"
    c2 = Resp(port)  # every connection authenticates for itself
    assert c2.call("GET", "k") == noauth
    assert c2.call("AUTH", "default", "secret") == "OK"
    assert c2.call("GET", "k") == b"v"
    c4 = Resp(port)  # pipelined: each command sees the AUTH state before it
    assert c4.calls(("AUTH", "nope"), ("GET", "k"), ("AUTH", "secret"), ("GET", "k"),
                    ("AUTH", "nope"), ("GET", "k")) == \
        [wrongpass, noauth, "OK", b"v", wrongpass, b"v"]
    c4.close()
    c3 = Resp(port)
    c3.send(("GET", "k"), ("QUIT",))
    assert [c3.reply(), c3.reply()] == [noauth, "OK"]
    expect_closed(c3)
    for x in (c, c2, c3):
        x.close()
    assert direct(r.port).get("k") == b"v"  # the upstream itself has no password
    stop_clean(p)


# ---- 13. upstream auth ----


def test_upstream_auth(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path, extra=["--requirepass", "p"])
    good, bad, withdb = free_ports(3)
    text = f"""workers: 1
log: {{ level: info }}
admin: {{ bind: 127.0.0.1:{free_port()} }}
listeners:
  - {{ name: good, bind: 127.0.0.1:{good}, codec: resp, cluster: good }}
  - name: bad
    bind: 127.0.0.1:{bad}
    codec: resp
    cluster: bad
    timeouts: {{ request: 3s }}
  - {{ name: withdb, bind: 127.0.0.1:{withdb}, codec: resp, cluster: withdb }}
clusters:
  - name: withdb
    servers: [ {{ address: 127.0.0.1:{r.port} }} ]
    resp: {{ password: "p", db: 3 }}
    pool: {{ min_idle: 1, max_connections: 1 }}
  - name: good
    servers: [ {{ address: 127.0.0.1:{r.port} }} ]
    resp: {{ password: "p" }}
    pool: {{ min_idle: 1, max_connections: 2 }}
  - name: bad
    servers: [ {{ address: 127.0.0.1:{r.port} }} ]
    resp: {{ password: "wrong" }}
    pool: {{ min_idle: 1, max_connections: 2, queue: {{ timeout: 1s }} }}
    timeouts: {{ connect: 1s, read: 1s }}
"""
    p = sluice(text)
    wait_port(good)
    wait_port(bad)
    c = Resp(good)
    assert c.call("SET", "k", "v") == "OK"
    assert c.call("GET", "k") == b"v"
    assert direct(r.port, password="p").get("k") == b"v"
    b = Resp(bad, timeout=15)
    for cmd in (("GET", "k"), ("SET", "k", "evil"), ("PING",)):
        got = b.call(*cmd)
        assert isinstance(got, Err) and got.msg.startswith("ERR sluice: "), (cmd, got)
    b.close()
    assert_alive(p)
    assert c.call("GET", "k") == b"v"  # the good cluster is unaffected
    c.close()
    # db: 3 on every upstream connection, also on those cleaned with RESET (which
    # logs out and selects db 0) after a pinned client
    d3 = direct(r.port, db=3, password="p")
    w = Resp(withdb)
    assert w.call("SET", "indb3", "1") == "OK"
    assert d3.get("indb3") == b"1"
    for i, state in enumerate((("SELECT", "5"), ("CLIENT", "SETNAME", "x"), ("MULTI",),
                               ("WATCH", "indb3"))):
        pinned = Resp(withdb)
        assert pinned.call(*state) == "OK"
        assert pinned.call("SET", "pinned%d" % i, "1") in ("OK", "QUEUED")
        pinned.close()
        time.sleep(0.1)
        for j in range(3):
            n = Resp(withdb)
            assert n.call("SET", "after%d-%d" % (i, j), "x") == "OK"
            assert n.call("GET", "indb3") == b"1"
            n.close()
        assert w.call("GET", "after%d-2" % i) == b"x"
    assert d3.get("pinned0") is None and direct(r.port, db=5, password="p").get("pinned0") == b"1"
    assert d3.get("pinned1") == b"1"
    assert d3.exists(*["after%d-%d" % (i, j) for i in range(4) for j in range(3)]) == 12
    assert direct(r.port, db=0, password="p").exists("indb3", "after0-0") == 0
    w.close()
    stop_clean(p)
