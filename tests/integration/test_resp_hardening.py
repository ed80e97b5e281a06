"""codec resp against real redis-servers, hardening (issue 12): a reload that
removes a shard moves every client to the new key map; replies nested 1,000
deep pass while other clients keep being served; CLIENT ID pins the client,
so CLIENT UNBLOCK on its id works; counts <= 0 are skipped like Redis does;
requests_submitted_total and requests_total agree on pinned and split
requests."""
import os
import signal
import socket
import threading
import time
import urllib.request

from conftest import free_port, free_ports, wait_port

from resp_util import *  # noqa: F401,F403 (the client, servers and fixtures)


def read_raw(c, n, timeout=5.0):
    """Exactly n more bytes from c (its own buffer first)."""
    c.sock.settimeout(timeout)
    out = c.buf
    c.buf = b""
    while len(out) < n:
        d = c.sock.recv(65536)
        if not d:
            break
        out += d
    c.buf = out[n:]
    return out[:n]


def metrics(text):
    """Prometheus text as {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        labels = frozenset()
        if "{" in name:
            name, rest = name.split("{", 1)
            labels = frozenset(tuple(kv.split("=", 1)) for kv in rest.rstrip("}").split(","))
            labels = frozenset((k, v.strip('"')) for k, v in labels)
        out[(name, labels)] = float(value)
    return out


def scrape(admin_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=5) as r:
        return metrics(r.read().decode())


def cluster_counts(m, cluster="redis"):
    """(requests_submitted_total, {result: requests_total}) of a cluster."""
    sub = m[("sluice_requests_submitted_total", frozenset({("cluster", cluster)}))]
    res = {}
    for (name, labels), v in m.items():
        d = dict(labels)
        if name == "sluice_requests_total" and d.get("cluster") == cluster:
            res[d["result"]] = v
    return sub, res


def admin_port_of(text):
    return int(text.split("admin: { bind: 127.0.0.1:", 1)[1].split(" ", 1)[0])


def keep_admin(new, old):
    """new with old's admin line (config() picks a port of its own each time)."""
    line = [l for l in old.splitlines() if l.startswith("admin:")][0]
    return "\n".join(line if l.startswith("admin:") else l for l in new.splitlines()) + "\n"


# ---- 10. a reload that removes a shard: one key map for every client ----


HASH = 'balance: hash\n    hash: fnv1a_64\n    distribution: ketama'


def test_reload_removing_a_shard_moves_connected_clients_to_the_new_map(procs, tmp_path,
                                                                         sluice):
    rs = [start_redis(procs, tmp_path) for _ in range(3)]
    port = free_port()
    names = [(r.port, "s%d" % i) for i, r in enumerate(rs)]
    text = config(port, names, pool="min_idle: 0, max_connections: 2", cluster_extra=HASH)
    p = sluice(text)
    wait_port(port)
    directs = [direct(r.port) for r in rs]
    old = Resp(port, timeout=5)
    assert old.call("SET", "warm", "1") == "OK"  # its session exists before the reload
    blocked = Resp(port, timeout=10)
    blocked.send(("BLPOP", "waiting", "1"))  # pinned to a shard across the reload
    with open(p.config_path, "w") as f:
        f.write(keep_admin(config(port, names[:2], pool="min_idle: 0, max_connections: 2",
                                  cluster_extra=HASH), text))
    p.send(signal.SIGHUP)
    p.wait_line("generation 2: every worker serves it")
    new = Resp(port, timeout=5)
    keys = ["k:%d" % i for i in range(60)]
    assert blocked.reply() is None
    for k in keys:
        assert blocked.call("SET", k, "blocked") == "OK"
    assert directs[2].dbsize() <= 1, "a client pinned over the reload writes to the removed shard"
    for k in keys:
        assert old.call("SET", k, "old") == "OK"
    assert directs[2].dbsize() <= 1, "the old client still writes to the removed shard"
    for k in keys:
        assert new.call("GET", k) == b"old", k  # the new client finds each where the old put it
        assert new.call("SET", k, "new") == "OK"
        assert old.call("GET", k) == b"new", k
    for k in keys:
        where = [i for i, d in enumerate(directs) if d.exists(k)]
        assert len(where) == 1 and where[0] in (0, 1), (k, where)
    for c in (old, new, blocked):
        c.close()
    stop_clean(p)


# ---- 11. replies nested 1,000 deep ----


DEEP = "local t = 1 for i = 1, tonumber(ARGV[1]) do t = {t} end return t"


def test_reply_nested_1000_deep_passes_while_others_are_served(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 2")
    want = b"*1\r\n" * 1000 + b":1\r\n"
    direct(r.port).set("g", "v")
    stop = threading.Event()
    errors, gets = [], [0]

    def deep_loop():
        c = Resp(port, timeout=5)
        try:
            while not stop.is_set():
                c.send(("EVAL", DEEP, "0", "1000"))
                got = read_raw(c, len(want))
                if got != want:
                    errors.append(("deep", got[:40], got[-40:]))
                    return
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(("deep", repr(e)))

    def get_loop():
        c = Resp(port, timeout=5)
        try:
            while not stop.is_set():
                got = c.call("GET", "g")
                if got != b"v":
                    errors.append(("get", got))
                    return
                gets[0] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(("get", repr(e)))

    threads = [threading.Thread(target=deep_loop) for _ in range(2)]
    threads += [threading.Thread(target=get_loop) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2 * SLOW)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors[:5]
    assert gets[0] > 100, gets
    assert "malformed" not in "\n".join(p.lines)
    stop_clean(p)


# ---- 13. counts <= 0 are skipped, as Redis does ----


def test_negative_counts_are_skipped_like_redis(one):
    r, p, port = one()
    data = (b"*-10\r\n" + encode("ECHO", "a") + b"*-1\r\n*-3\r\n" + b"PING\r\n" + b"*0\r\n"
            + b"*-922337203685477580\r\n" + encode("ECHO", "b"))
    out = []
    for where in (r.port, port):
        c = Resp(where, timeout=3)
        c.send_raw(data)
        got = [c.reply() for _ in range(3)]
        got.append(c.call("ECHO", "after"))
        c.close()
        out.append(got)
    assert out[0] == [b"a", "PONG", b"b", b"after"]
    assert out[1] == out[0]
    for where in (r.port, port):  # "-0" is not a count: both refuse it and close
        c = Resp(where, timeout=3)
        c.send_raw(encode("PING") + b"*-0\r\n")
        assert c.reply() == "PONG"
        got = c.reply()
        assert isinstance(got, Err) and "rotocol error" in got.msg, got
        expect_closed(c)
        c.close()
    stop_clean(p)


# ---- 12. connection identity: CLIENT ID pins, CLIENT KILL needs an ID ----


BUSY = ("local t0 = redis.call('TIME') local ms = tonumber(ARGV[1]) "
        "repeat local t = redis.call('TIME') "
        "until (t[1] - t0[1]) * 1000 + (t[2] - t0[2]) / 1000 >= ms return 1")


def test_client_id_pins_so_client_unblock_reaches_the_blocked_client(one):
    r, p, port = one(pool="min_idle: 1, max_connections: 1")
    a, b = Resp(port, timeout=10), Resp(port, timeout=5)
    assert b.call("GET", "x") is None  # b's requests take the shared connection
    cid = a.call("CLIENT", "ID")
    assert isinstance(cid, int), cid
    info = a.call("CLIENT", "INFO")
    assert info.startswith(b"id=%d " % cid), info  # the connection it names is a's own
    b.send(("EVAL", BUSY, "0", "300"))  # the shared connection is busy: no idle one to pin
    time.sleep(0.05)
    a.send(("BLPOP", "nolist", "0"))
    assert b.reply() == 1
    time.sleep(0.3 * SLOW)
    assert b.call("CLIENT", "UNBLOCK", str(cid)) == 1
    assert a.reply() is None  # unblocked: a null reply, as Redis gives
    assert a.call("CLIENT", "ID") == cid  # the same connection still
    assert a.call("CLIENT", "GETNAME") is None
    got = b.call("CLIENT", "KILL", "ADDR", "127.0.0.1:1")
    assert got == Err("ERR sluice: CLIENT KILL needs an ID filter through a proxy "
                      "(its connections are shared)"), got
    got = b.call("CLIENT", "KILL", "127.0.0.1:1")
    assert isinstance(got, Err) and "needs an ID filter" in got.msg, got
    assert b.call("CLIENT", "KILL", "ID", str(cid)) == 1
    expect_closed(a)  # its pinned connection is gone, and its state with it
    assert b.call("PING") == "PONG"
    a.close()
    b.close()
    stop_clean(p)


def test_client_commands_are_refused_on_a_sharded_cluster(procs, tmp_path, sluice):
    rs = [start_redis(procs, tmp_path) for _ in range(2)]
    port = free_port()
    p = sluice(config(port, [(r.port, "s%d" % i) for i, r in enumerate(rs)],
                      cluster_extra=HASH))
    wait_port(port)
    c = Resp(port, timeout=5)
    for sub in (("ID",), ("INFO",), ("UNBLOCK", "5"), ("KILL", "ID", "5"), ("LIST",)):
        got = c.call("CLIENT", *sub)
        assert isinstance(got, Err) and "not supported on a sharded cluster" in got.msg, (sub, got)
    assert c.call("SET", "k", "v") == "OK"
    c.close()
    stop_clean(p)


# ---- 21. counters: each request once submitted, once with a result ----


def listener_failures(m, listener="redis"):
    return m[("sluice_client_upstream_failures_total", frozenset({("listener", listener)}))]


def test_pinned_requests_count_once_submitted_and_once_ended(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    text = config(port, [r.port], pool="min_idle: 0, max_connections: 2")
    p = sluice(text)
    wait_port(port)
    admin = admin_port_of(text)
    a, sub, pub = Resp(port, timeout=5), Resp(port, timeout=5), Resp(port, timeout=5)
    assert a.call("BLPOP", "none", "0.1") is None  # pinned while it blocks
    assert a.call("CLIENT", "ID") > 0  # pinned for good
    assert a.call("GET", "k") is None  # on its pinned connection
    sub.send(("SUBSCRIBE", "ch"))
    assert sub.reply() == [b"subscribe", b"ch", 1]
    for i in range(3):
        assert pub.call("PUBLISH", "ch", "m%d" % i) == 1  # shared
        assert sub.reply() == [b"message", b"ch", b"m%d" % i]  # messages are no replies
    gone = Resp(port, timeout=5)
    gone.send(("BLPOP", "none", "0"))
    time.sleep(0.3 * SLOW)
    gone.close()  # it leaves before its reply
    deadline = time.monotonic() + 5 * SLOW
    while True:
        sub_n, res = cluster_counts(scrape(admin))
        if res.get("canceled", 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # BLPOP, CLIENT ID, GET, SUBSCRIBE, 3 PUBLISH, BLPOP left: 8 sent, 7 answered, 1 canceled
    assert (sub_n, res.get("ok"), res.get("canceled")) == (8, 7, 1), (sub_n, res)
    assert sub_n == sum(res.values()), (sub_n, res)
    for c in (a, sub, pub):
        c.close()
    stop_clean(p)


def test_a_failed_split_counts_once_for_its_one_error(procs, tmp_path, sluice):
    rs = [start_redis(procs, tmp_path) for _ in range(2)]
    port = free_port()
    text = config(port, [(r.port, "s%d" % i) for i, r in enumerate(rs)], cluster_extra=HASH,
                  pool="min_idle: 0, max_connections: 2")
    p = sluice(text)
    wait_port(port)
    admin = admin_port_of(text)
    c = Resp(port, timeout=5)
    keys = ["obj:%d:name" % i for i in range(20)]  # on both servers
    assert c.call("MGET", *keys) == [None] * 20
    for r in rs:
        r.stop()
    m0 = scrape(admin)
    got = [c.call("MGET", *keys), c.call("DEL", *keys)]
    for g in got:
        assert isinstance(g, Err) and g.msg.startswith("ERR sluice: "), g
    m1 = scrape(admin)
    assert listener_failures(m1) - listener_failures(m0) == 2, "one per error the client got"
    sub_n, res = cluster_counts(m1)
    assert sub_n == sum(res.values()) == 6, (sub_n, res)  # one per fragment sent
    c.close()
    stop_clean(p)


# ---- an idle hash client across two reloads (the old pool freed in between) ----


def test_idle_hash_client_follows_two_reloads_that_add_a_server(procs, tmp_path, sluice):
    """A client idle through two reloads (its first pool freed meanwhile, whose address a
    later pool may take) must follow the newest pool: its key map has a server more."""
    rs = [start_redis(procs, tmp_path) for _ in range(3)]
    port = free_port()
    names = [(r.port, "s%d" % i) for i, r in enumerate(rs)]
    text = config(port, names[:2], pool="min_idle: 0, max_connections: 2", cluster_extra=HASH)
    # no quarantine under ASan: a freed pool's memory may come back, as it does in a release build
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
               ":quarantine_size_mb=0")
    p = sluice(text, env=env)
    wait_port(port)
    idle = Resp(port, timeout=5)
    assert idle.call("SET", "warm", "1") == "OK"  # its session and key map exist
    for gen, (servers, conns) in enumerate([(names[:2], 3), (names, 2)], start=2):
        with open(p.config_path, "w") as f:
            f.write(keep_admin(config(port, servers, pool="min_idle: 0, max_connections: %d"
                                      % conns, cluster_extra=HASH), text))
        p.send(signal.SIGHUP)
        p.wait_line("generation %d: every worker serves it" % gen)
        time.sleep(0.3)  # the old pool, idle, is freed
    keys = ["k:%d" % i for i in range(60)]
    for k in keys:
        assert idle.call("SET", k, "v") == "OK", k
    assert idle.call("MGET", *keys) == [b"v"] * len(keys)
    assert idle.call("DEL", *keys) == len(keys)
    new = Resp(port, timeout=5)
    assert new.call("SET", "k:0", "n") == "OK"
    assert idle.call("GET", "k:0") == b"n"  # one key map for both
    idle.close()
    new.close()
    stop_clean(p)
