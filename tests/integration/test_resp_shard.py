"""codec resp over three redis-servers with balance: hash, key placement checked
against a real nutcracker, split multi-key commands; and a redis restarted
under load."""
import shutil
import signal
import socket
import threading
import time


from conftest import free_port, free_ports, wait_port


from resp_util import *  # noqa: F401,F403 (the client, servers and fixtures)

# ---- 14. sharding ----


NUT_NAMES = ("shard1", "shard2", "shard3")


def owner_of(directs, key):
    where = [i for i, d in enumerate(directs) if d.exists(key)]
    assert len(where) == 1, (key, where)
    return where[0]


def test_sharding_like_nutcracker(procs, tmp_path, sluice):
    assert shutil.which("nutcracker"), "nutcracker is not installed: run scripts/deps.sh"
    rs = [start_redis(procs, tmp_path) for _ in range(3)]
    port, nport, nstats = free_ports(3)
    servers = [(r.port, n) for r, n in zip(rs, NUT_NAMES)]
    p = sluice(config(port, servers, pool="min_idle: 1, max_connections: 2",
                      cluster_extra='balance: hash\n    hash: fnv1a_64\n    distribution: ketama\n'
                                    '    hash_tag: "{}"'))
    nconf = tmp_path / "nutcracker.yml"
    nconf.write_text("\n".join([
        "shards:", "  listen: 127.0.0.1:%d" % nport, "  redis: true", "  hash: fnv1a_64",
        "  distribution: ketama", '  hash_tag: "{}"', "  auto_eject_hosts: false", "  servers:"]
        + ["   - 127.0.0.1:%d:1 %s" % s for s in servers]) + "\n")
    procs(["nutcracker", "-c", str(nconf), "-s", str(nstats), "-a", "127.0.0.1",
           "-o", str(tmp_path / "nutcracker.log")])
    wait_port(port)
    wait_port(nport)
    directs = [direct(r.port) for r in rs]
    c = Resp(port)
    keys = ["obj:%d:name" % i for i in range(200)]  # spread by fnv1a over all three
    mset = ["MSET"]
    for k in keys:
        mset += [k, "v-" + k]
    assert c.call(*mset) == "OK"
    sizes = [d.dbsize() for d in directs]
    assert sum(sizes) == 200 and all(s > 0 for s in sizes), sizes
    # every key sits where nutcracker looks for it
    nut = Resp(nport)
    assert nut.calls(*[("GET", k) for k in keys]) == [b"v-" + k.encode() for k in keys]
    # MGET in the client's order, missing keys as nil in place
    asked = []
    for i, k in enumerate(keys):
        asked.append(k)
        if i % 17 == 0:
            asked.append("absent:%d" % i)
    got = c.call("MGET", *asked)
    assert got == [None if k.startswith("absent") else b"v-" + k.encode() for k in asked]
    # written through nutcracker, read through sluice
    nut.call("SET", "fromnut", "n")
    assert c.call("GET", "fromnut") == b"n"
    assert c.call("EXISTS", keys[0], keys[0], "absent", keys[1], keys[2]) == 4
    assert c.call("TOUCH", *(keys[:10] + ["absent1", "absent2"])) == 10
    assert c.call("UNLINK", *(keys[:50] + ["absent"])) == 50
    assert c.call("EXISTS", *keys) == 150
    assert c.call("DEL", *(keys + ["absent:%d" % i for i in range(20)])) == 150
    assert sum(d.dbsize() for d in directs) == 1  # fromnut
    assert c.call("MGET", *keys[:5]) == [None] * 5
    # a pipeline mixing shards and split commands answers like one redis
    pipe = []
    for i in range(60):
        k1, k2, k3 = "pp:%d" % i, "pp:%d:x" % (i * 7), "{pp}:%d" % i
        pipe += [("SET", k1, "a%d" % i), ("MSET", k2, "b", k3, "c"), ("GET", k2),
                 ("MGET", k1, k2, k3, "pp:none"), ("INCR", k1 + ":n"), ("EXISTS", k1, k2, k3),
                 ("DEL", k2, "pp:none"), ("GET", k1)]
    one_redis = direct(rs[0].port, db=7)
    want = one_redis.pipeline(transaction=False)
    for cmd in pipe:
        want.execute_command(*cmd)
    want = [("OK" if x is True else x) for x in want.execute(raise_on_error=False)]
    one_redis.flushdb()
    assert c.calls(*pipe) == want
    # split commands with bad arguments: an error reply, the client stays
    for cmd in (("MSET", "a"), ("MSET", "a", "1", "b"), ("MGET",), ("DEL",), ("EXISTS",)):
        assert isinstance(c.call(*cmd), Err), cmd
    assert c.call("MGET", keys[0]) == [None]
    # commands that cannot be split
    assert c.call("KEYS", "*") == Err("ERR sluice: KEYS cannot be sharded")
    assert c.call("SCAN", "0") == Err("ERR sluice: SCAN cannot be sharded")
    assert c.call("DBSIZE") == Err("ERR sluice: DBSIZE cannot be sharded")
    assert c.call("FLUSHALL") == Err("ERR sluice: FLUSHALL cannot be sharded")
    for cmd in (("MULTI",), ("WATCH", "a"), ("SUBSCRIBE", "ch"), ("SELECT", "1")):
        assert c.call(*cmd) == Err("ERR sluice: %s is not supported on a sharded cluster" % cmd[0])
    # RENAME between servers, and within one
    for k in keys[:40]:
        c.call("SET", k, "r")
    where = {k: owner_of(directs, k) for k in keys[:40]}
    a = keys[0]
    other = next(k for k in keys[1:40] if where[k] != where[a])
    same = next(k for k in keys[1:40] if where[k] == where[a])
    assert c.call("RENAME", a, other) == Err("ERR sluice: keys of RENAME are on different servers")
    assert c.call("GET", a) == b"r"
    assert c.call("RENAME", a, same) == "OK"
    assert c.call("EXISTS", a, same) == 1
    # hash tags keep related keys together
    assert c.call("SET", "{user1}.a", "tagged") == "OK"
    assert c.call("RENAME", "{user1}.a", "{user1}.b") == "OK"
    assert c.call("GET", "{user1}.b") == b"tagged"
    assert nut.call("GET", "{user1}.b") == b"tagged"
    assert c.call("MSET", "{user1}.x", "1", "{user1}.y", "2") == "OK"
    assert owner_of(directs, "{user1}.x") == owner_of(directs, "{user1}.y") \
        == owner_of(directs, "{user1}.b")
    # a blocking command with one key goes to that key's server
    b = Resp(port)
    start = time.monotonic()
    b.send(("BLPOP", "queue:7", "5"))
    time.sleep(0.2)
    assert c.call("RPUSH", "queue:7", "job") == 1
    assert b.reply() == [b"queue:7", b"job"]
    assert time.monotonic() - start < 2 * SLOW
    assert b.call("GET", "{user1}.b") == b"tagged"
    # one shard down: requests that touch it get error replies, the others are served
    assert c.call(*mset) == "OK"
    rs[2].stop(signal.SIGKILL)
    alive_key = next(k for k in keys if directs[0].exists(k))
    dead_key = next(k for k in keys if not directs[0].exists(k) and not directs[1].exists(k))
    for _ in range(3):
        got = c.call("GET", dead_key)
        assert isinstance(got, Err) and got.msg.startswith("ERR sluice: "), got
        got = c.call("MGET", alive_key, dead_key)
        assert isinstance(got, Err) and got.msg.startswith("ERR sluice: "), got
        assert c.call("GET", alive_key) == b"v-" + alive_key.encode()
    assert c.call("MGET", *[k for k in keys if directs[1].exists(k)][:20]) == \
        [b"v-" + k.encode() for k in keys if directs[1].exists(k)][:20]
    for x in (b, c, nut):
        x.close()
    stop_clean(p)


# ---- 15. redis restarted under load ----


def test_redis_restart_under_load(procs, tmp_path, sluice):
    r = start_redis(procs, tmp_path)
    port = free_port()
    p = sluice(config(port, [r.port], pool="min_idle: 1, max_connections: 4",
                      cluster_timeouts="connect: 500ms, read: 2s"))
    wait_port(port)
    duration = 5.0 * (1.5 if SANITIZED else 1)
    stop_at = time.monotonic() + duration
    results = []
    lock = threading.Lock()

    def client(cid):
        st = {"ok": 0, "errors": 0, "nils": 0, "wrong": [], "closed": 0, "hung": 0,
              "last_error": 0.0, "last_ok": 0.0, "other": []}
        c = Resp(port, timeout=10)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            key, val = "load:%d" % cid, b"%d-%d" % (cid, n)
            try:
                c.send(("SET", key, val), ("GET", key))
                set_r, get_r = c.reply(), c.reply()
            except socket.timeout:
                st["hung"] += 1
                break
            except (Closed, ConnectionError):
                st["closed"] += 1
                c.close()
                c = Resp(port, timeout=10)
                continue
            errs = [x for x in (set_r, get_r) if isinstance(x, Err)]
            st["other"] += [x.msg for x in errs if not x.msg.startswith("ERR sluice: ")]
            if set_r != "OK" and not isinstance(set_r, Err):
                st["wrong"].append(("SET", set_r))
            if get_r is None:
                st["nils"] += 1
            elif isinstance(get_r, Err):
                pass
            elif set_r == "OK":
                if get_r != val:  # read-your-write in one pipeline
                    st["wrong"].append(("GET after SET", val, get_r))
            else:  # the SET failed: at most an older value of this client's
                mine, _, m = get_r.partition(b"-")
                if mine != b"%d" % cid or not m.isdigit() or int(m) >= n:
                    st["wrong"].append(("GET after failed SET", val, get_r))
            if errs:
                st["errors"] += 1
                st["last_error"] = time.monotonic()
                time.sleep(0.02)
            else:
                st["ok"] += 1
                st["last_ok"] = time.monotonic()
        c.close()
        with lock:
            results.append(st)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    r.p.send_signal(signal.SIGKILL)
    r.p.wait()
    time.sleep(0.3)
    r2 = start_redis(procs, tmp_path, port=r.port)
    restarted = time.monotonic()
    for t in threads:
        t.join(duration + 30)
    assert len(results) == 4
    assert_alive(p)
    summary = [{k: v for k, v in st.items() if k not in ("wrong",)} for st in results]
    for st in results:
        assert not st["wrong"], st["wrong"][:10]
        assert not st["other"], st["other"][:10]
        assert st["closed"] == 0 and st["hung"] == 0, summary
        assert st["errors"] <= 60, summary
        assert st["nils"] <= 2, summary
        assert st["last_ok"] > restarted, summary  # recovered
        assert st["last_error"] < restarted + 3 * SLOW, summary  # recovered within seconds
    d = direct(r2.port)
    assert d.get("load:0") is not None  # requests reach the new redis
    c = Resp(port)
    assert c.call("SET", "after", "1") == "OK"
    assert c.call("GET", "after") == b"1"
    c.close()
    stop_clean(p)
