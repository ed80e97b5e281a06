"""twemproxy compatibility of sluice's key placement (pool/pool_hash.c).

nutcracker (Debian) shards keys over three real redis-servers (weights 1,1,2 and more);
every redis is then asked which keys it holds, and tests/tools/hashplace
(pool_hash.c) must place every key on the same server: every hash function,
ketama and modula, hash_tag "{}", servers with and without names. The hash
functions are also checked against independent Python references below.
"""
import os
import shutil
import signal
import struct
import subprocess
import zlib
import binascii
import hashlib

import pytest

from conftest import free_ports, wait_port

import redis  # python3-redis, installed by scripts/deps.sh like every server these tests use

SOURCE_DIR = os.environ.get(
    "SLUICE_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
NKEYS = 2000
WEIGHTS = (1, 1, 2)

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def sx(b, mask=M32):
    """A byte as twemproxy reads it through a (signed) char, widened."""
    return (b - 256 if b >= 128 else b) & mask


def fnv1_64(k):
    h = 0xCBF29CE484222325
    for b in k:
        h = (h * 0x100000001B3) & M64
        h ^= sx(b, M64)
    return h & M32


def fnv1a_64(k):
    h = 0xCBF29CE484222325 & M32
    for b in k:
        h ^= sx(b)
        h = (h * (0x100000001B3 & M32)) & M32
    return h


def fnv1_32(k):
    h = 2166136261
    for b in k:
        h = (h * 16777619) & M32
        h ^= sx(b)
    return h


def fnv1a_32(k):
    h = 2166136261
    for b in k:
        h ^= sx(b)
        h = (h * 16777619) & M32
    return h


def one_at_a_time(k):
    h = 0
    for b in k:
        h = (h + sx(b)) & M32
        h = (h + (h << 10)) & M32
        h ^= h >> 6
    h = (h + (h << 3)) & M32
    h ^= h >> 11
    h = (h + (h << 15)) & M32
    return h


def md5(k):
    return struct.unpack("<I", hashlib.md5(k).digest()[:4])[0]


def crc32a(k):
    return zlib.crc32(k) & M32


def crc32(k):
    return (binascii.crc32(k) >> 16) & 0x7FFF


def crc16(k):
    crc = 0
    for b in k:
        idx = ((crc >> 8) ^ b) & 0xFF
        crc = ((crc << 8) ^ binascii.crc_hqx(bytes([idx]), 0)) & M32
    return crc


def murmur(k):
    m = 0x5BD1E995
    n = len(k)
    h = ((0xDEADBEEF * n) & M32) ^ n
    i = 0
    while n - i >= 4:
        w = struct.unpack_from("<I", k, i)[0]
        w = (w * m) & M32
        w ^= w >> 24
        w = (w * m) & M32
        h = ((h * m) & M32) ^ w
        i += 4
    rest = k[i:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & M32
    h ^= h >> 13
    h = (h * m) & M32
    h ^= h >> 15
    return h


def _rot(x, r):
    return ((x << r) | (x >> (32 - r))) & M32


def jenkins(k):
    n = len(k)
    a = b = c = (0xDEADBEEF + n + 13) & M32
    i = 0
    while n - i > 12:
        x, y, z = struct.unpack_from("<III", k, i)
        a, b, c = (a + x) & M32, (b + y) & M32, (c + z) & M32
        a = (a - c) & M32; a ^= _rot(c, 4); c = (c + b) & M32
        b = (b - a) & M32; b ^= _rot(a, 6); a = (a + c) & M32
        c = (c - b) & M32; c ^= _rot(b, 8); b = (b + a) & M32
        a = (a - c) & M32; a ^= _rot(c, 16); c = (c + b) & M32
        b = (b - a) & M32; b ^= _rot(a, 19); a = (a + c) & M32
        c = (c - b) & M32; c ^= _rot(b, 4); b = (b + a) & M32
        i += 12
    if n - i == 0:
        return c
    x, y, z = struct.unpack("<III", k[i:].ljust(12, b"\0"))
    a, b, c = (a + x) & M32, (b + y) & M32, (c + z) & M32
    c ^= b; c = (c - _rot(b, 14)) & M32
    a ^= c; a = (a - _rot(c, 11)) & M32
    b ^= a; b = (b - _rot(a, 25)) & M32
    c ^= b; c = (c - _rot(b, 16)) & M32
    a ^= c; a = (a - _rot(c, 4)) & M32
    b ^= a; b = (b - _rot(a, 14)) & M32
    c ^= b; c = (c - _rot(b, 24)) & M32
    return c


def hsieh(k):
    if not k:
        return 0
    h = 0
    n = len(k)
    i = 0
    for _ in range(n >> 2):
        h = (h + (k[i] | k[i + 1] << 8)) & M32
        tmp = (((k[i + 2] | k[i + 3] << 8) << 11) ^ h) & M32
        h = ((h << 16) ^ tmp) & M32
        i += 4
        h = (h + (h >> 11)) & M32
    rem = n & 3
    if rem == 3:
        h = (h + (k[i] | k[i + 1] << 8)) & M32
        h ^= (h << 16) & M32
        h ^= (sx(k[i + 2]) << 18) & M32
        h = (h + (h >> 11)) & M32
    elif rem == 2:
        h = (h + (k[i] | k[i + 1] << 8)) & M32
        h ^= (h << 11) & M32
        h = (h + (h >> 17)) & M32
    elif rem == 1:
        h = (h + k[i]) & M32
        h ^= (h << 10) & M32
        h = (h + (h >> 1)) & M32
    h ^= (h << 3) & M32
    h = (h + (h >> 5)) & M32
    h ^= (h << 4) & M32
    h = (h + (h >> 17)) & M32
    h ^= (h << 25) & M32
    h = (h + (h >> 6)) & M32
    return h


HASHES = {
    f.__name__: f
    for f in (one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32,
              hsieh, murmur, jenkins)
}


def key_hash(name, k):
    """twemproxy's server_pool_hash: an empty key hashes to 0."""
    return 0 if not k else HASHES[name](k)


# ---- helpers ----


@pytest.fixture(scope="module")
def hashplace(tmp_path_factory):
    """tests/tools/hashplace: $HASHPLACE_BIN, else compiled here with cc."""
    path = os.environ.get("HASHPLACE_BIN")
    if path:
        return path
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "no C compiler and no HASHPLACE_BIN"
    out = str(tmp_path_factory.mktemp("hashplace") / "hashplace")
    subprocess.run(
        [cc, "-std=c11", "-D_GNU_SOURCE", "-O1", "-I" + SOURCE_DIR, "-o", out,
         os.path.join(SOURCE_DIR, "tests", "tools", "hashplace.c"),
         os.path.join(SOURCE_DIR, "pool", "pool_hash.c")],
        check=True, timeout=120)
    return out


def run_hashplace(argv, keys):
    assert all(b"\n" not in k for k in keys)
    out = subprocess.run(argv, input=b"".join(k + b"\n" for k in keys), capture_output=True,
                         check=True, timeout=60).stdout.split()
    assert len(out) == len(keys)
    return [int(x) for x in out]


def sample_keys(n):
    """Plain, tagged, empty-tag, unclosed-tag, nested and non-ASCII keys."""
    keys = []
    for i in range(n):
        kind = i % 10
        if kind == 0:
            keys.append(b"key:%d" % i)
        elif kind == 1:
            keys.append(b"{user%d}:profile:%d" % (i % 37, i))
        elif kind == 2:
            keys.append(b"order:{cart%d}:%d" % (i % 11, i))
        elif kind == 3:
            keys.append(b"{}empty:%d" % i)
        elif kind == 4:
            keys.append(b"open{only:%d" % i)
        elif kind == 5:
            keys.append(b"a}b{c%d}d" % i)
        elif kind == 6:
            keys.append(b"{{n%d}}" % (i % 5))
            keys[-1] += b":%d" % i
        elif kind == 7:
            keys.append(("ключ:%d" % i).encode())
        elif kind == 8:
            keys.append(b"\xff\xfe\x80bin:%d" % i)
        else:
            keys.append(b"k%d" % i)
    return keys


def test_hashes_match_python_references(hashplace):
    keys = [b"", b"a", b"hello", b"123456789", "ключ".encode(), b"\xff\x80\x7f\x01"]
    keys += [bytes((j * 37 + n) % 255 + 1 for j in range(n)).replace(b"\n", b"x") for n in range(1, 70)]
    for name in HASHES:
        got = run_hashplace([hashplace, "hash", name], keys)
        assert got == [key_hash(name, k) for k in keys], name


def test_hashes_known_vectors():
    """The references themselves, against published values."""
    assert crc32a(b"123456789") == 0xCBF43926
    assert crc16(b"123456789") & 0xFFFF == 0x31C3  # CRC-16/XMODEM
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1_32(b"a") == 0x050C5D7E
    assert fnv1_64(b"a") == 0xAF63BD4C8601B7BE & M32


# ---- against nutcracker ----


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three redis-servers and a nutcracker with one pool per (dist, hash)."""
    for tool in ("redis-server", "nutcracker"):
        assert shutil.which(tool), "%s is not installed: run scripts/deps.sh" % tool
    tmp = tmp_path_factory.mktemp("hashcompat")
    started = []
    try:
        # listed against twemproxy's own order (by name length, then bytes), which
        # decides modula's slots: the check fails if hashplace does not re-sort
        # distinct ports for the servers, the pools and nutcracker's stats: twemproxy refuses a
        # config that repeats one, and free_port() called again and again may hand one out twice
        spare = free_ports(len(WEIGHTS) + 40)
        ports = sorted(spare[:len(WEIGHTS)], key=lambda p: (len(str(p)), str(p)), reverse=True)
        spare = spare[len(WEIGHTS):]
        for i, port in enumerate(ports):
            started.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--logfile", str(tmp / ("redis%d.log" % i))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            wait_port(port)
        # (distribution, hash, named servers, weights): every hash under both
        # distributions, named servers, and weights whose point counts round
        pools = [(d, h, False, WEIGHTS) for d in ("ketama", "modula") for h in HASHES]
        pools += [("ketama", "md5", True, WEIGHTS), ("ketama", "fnv1a_64", True, WEIGHTS),
                  ("ketama", "md5", False, (3, 5, 7)), ("ketama", "murmur", False, (1, 2, 3)),
                  ("ketama", "fnv1a_64", True, (10, 1, 100)), ("modula", "fnv1a_64", False, (3, 5, 7)),
                  ("ketama", "crc16", False, (1, 1, 1))]
        yaml, listen = [], []
        assert len(pools) < len(spare)
        for n, (dist, h, named, weights) in enumerate(pools):
            port = spare[n]
            listen.append(port)
            yaml += ["p%d:" % n, "  listen: 127.0.0.1:%d" % port, "  redis: true",
                     "  distribution: %s" % dist, "  hash: %s" % h, '  hash_tag: "{}"',
                     "  auto_eject_hosts: false", "  servers:"]
            for i, (rport, w) in enumerate(zip(ports, weights)):
                yaml.append("   - 127.0.0.1:%d:%d%s" % (rport, w, " srv-%c" % "cba"[i] if named else ""))
        conf = tmp / "nutcracker.yml"
        conf.write_text("\n".join(yaml) + "\n")
        check = subprocess.run(["nutcracker", "-t", "-c", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        started.append(subprocess.Popen(
            ["nutcracker", "-c", str(conf), "-s", str(spare[-1]), "-a", "127.0.0.1",
             "-o", str(tmp / "nutcracker.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in listen:
            wait_port(port)
        yield ports, pools, listen
    finally:
        for p in reversed(started):
            stop(p)


def owners(ports):
    """key -> index of the redis holding it."""
    where = {}
    for i, port in enumerate(ports):
        r = redis.Redis(host="127.0.0.1", port=port)
        for k in r.scan_iter(count=1000):
            assert k not in where, "key %r on two servers" % k
            where[k] = i
        r.close()
    return where


def test_placement_matches_nutcracker(cluster, hashplace):
    ports, pools, listen = cluster
    base = sample_keys(NKEYS)
    for n, port in enumerate(listen):
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        pipe = r.pipeline(transaction=False)
        for k in base:
            pipe.set(b"p%d-" % n + k, b"1")
        assert all(pipe.execute())
        r.close()
    where = owners(ports)
    assert len(where) == NKEYS * len(pools)
    failures = []
    for n, (dist, h, named, weights) in enumerate(pools):
        keys = [b"p%d-" % n + k for k in base]
        names = ["srv-%c" % "cba"[i] if named else "127.0.0.1:%d" % p for i, p in enumerate(ports)]
        servers = ["%s:%d" % (name, w) for name, w in zip(names, weights)]
        got = run_hashplace([hashplace, "place", dist, h, "{}"] + servers, keys)
        want = [where[k] for k in keys]
        bad = [(k, g, w) for k, g, w in zip(keys, got, want) if g != w]
        if bad:
            failures.append("%s/%s%s weights %s: %d of %d keys differ, e.g. %r" % (
                dist, h, " named" if named else "", weights, len(bad), len(keys), bad[:3]))
        # crc32 is 15 bits wide: under ketama it reaches only the continuum's start
        if h != "crc32":
            assert set(want) == {0, 1, 2}, "%s/%s used only servers %s" % (dist, h, set(want))
    assert not failures, "\n".join(failures)
