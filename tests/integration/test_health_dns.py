"""Servers named by DNS, end to end. dnsmasq serves svc.test from a hosts file of
its own on 127.0.0.1 (a free UDP port, SIGHUP re-reads the file); two tagged
line-echo upstreams listen on 127.0.0.2 and 127.0.0.3, on one port, and answer a
line X with "A:X" and "B:X"; sluice's cluster has the one server
"svc.test:PORT", looked up every 300ms through `resolvers`. Every wait is
bounded, every process is stopped when the test ends."""
import os
import shutil
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import free_port

NAME = "svc.test"
A_HOST, B_HOST = "127.0.0.2", "127.0.0.3"


def dnsmasq_bin():
    path = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    assert os.access(path, os.X_OK), "dnsmasq is not installed (dnsmasq-base): run scripts/deps.sh"
    return path


def free_dns_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both)."""
    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


def dns_a(port, name, timeout=1.0):
    """The IPv4 addresses dnsmasq gives for name (sorted), or None without an answer."""
    qid = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, ("127.0.0.1", port))
            reply = s.recv(4096)
        except OSError:
            return None
    if len(reply) < 12 or struct.unpack(">H", reply[:2])[0] != qid:
        return None
    answers = struct.unpack(">H", reply[6:8])[0]
    pos = 12 + len(question) + 4
    found = []
    for _ in range(answers):
        if reply[pos] & 0xC0 == 0xC0:  # a compressed name
            pos += 2
        else:
            while reply[pos]:
                pos += reply[pos] + 1
            pos += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            found.append(socket.inet_ntoa(reply[pos:pos + 4]))
        pos += rdlen
    return sorted(found)


class Dnsmasq:
    """dnsmasq answering svc.test from a hosts file, nothing else (no upstream, no
    /etc/hosts, no config file); other names under .test are NXDOMAIN."""

    def __init__(self, procs, tmp_path):
        self.procs = procs
        self.hosts = tmp_path / "dns-hosts"
        self.port = free_dns_port()
        self.proc = None

    def write(self, *addrs):
        tmp = self.hosts.with_suffix(".tmp")
        tmp.write_text("".join("%s %s\n" % (a, NAME) for a in addrs))
        os.replace(tmp, self.hosts)

    def start(self, *addrs):
        self.write(*addrs)
        argv = [dnsmasq_bin(), "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--addn-hosts=%s" % self.hosts, "--local=/test/",
                "--bind-interfaces", "--listen-address=127.0.0.1", "--port=%d" % self.port,
                "--pid-file=", "--log-facility=-"]
        if os.geteuid() == 0:
            argv.append("--user=root")  # not nobody, who cannot read the file in tmp_path on SIGHUP
        self.proc = self.procs(argv)
        self.wait_answer(list(addrs))

    def set(self, *addrs):
        """Point the name at addrs and make dnsmasq re-read the file; return once it answers so."""
        self.write(*addrs)
        self.proc.send(signal.SIGHUP)
        self.wait_answer(list(addrs))

    def wait_answer(self, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = dns_a(self.port, NAME)
            if got == sorted(want):
                return
            time.sleep(0.05)
        raise AssertionError("dnsmasq answers %r, not %r; its log:\n%s"
                             % (got, want, "\n".join(self.proc.lines)))

    def kill(self):
        self.proc.p.kill()
        self.proc.p.wait()


def tags(port, n, timeout=5):
    """Send one line on each of n fresh connections; the tag of each reply (A or B)."""
    out = []
    for i in range(n):
        line = b"probe-%d\n" % i
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(line)
            reply = s.makefile("rb").readline()
        assert reply.endswith(b":" + line), "reply %r to %r" % (reply, line)
        out.append(reply.split(b":", 1)[0].decode())
    return out


def wait_tags(port, want, timeout=10.0, n=12):
    """Wait until n fresh connections in a row are answered by exactly the servers in want."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = tags(port, n)
        if set(got) == set(want):
            return
        time.sleep(0.1)
    raise AssertionError("replies from %r, wanted from %r" % (sorted(set(got or [])), sorted(want)))


class Steady(threading.Thread):
    """One client connection kept open throughout: a line every 20ms, each reply checked."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")
        self.lock = threading.Lock()
        self.replies = []
        self.error = None
        self.halt = threading.Event()

    def run(self):
        i = 0
        try:
            while not self.halt.is_set():
                line = b"steady-%d\n" % i
                self.sock.sendall(line)
                reply = self.reader.readline()
                if not reply.endswith(b":" + line):
                    self.error = "reply %r to %r" % (reply, line)
                    return
                with self.lock:
                    self.replies.append(reply.split(b":", 1)[0].decode())
                i += 1
                time.sleep(0.02)
        except OSError as e:
            self.error = repr(e)

    def last(self, n):
        with self.lock:
            return self.replies[-n:]

    def wait_only(self, tag, timeout=10.0, n=10):
        """Wait until its last n replies all came from tag."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.error is None:
            last = self.last(n)
            if len(last) == n and set(last) == {tag}:
                return
            time.sleep(0.05)
        assert self.error is None, "the long-lived client failed: %s" % self.error
        raise AssertionError("the long-lived client's last replies: %r" % self.last(n))

    def finish(self):
        self.halt.set()
        self.join(10)
        assert not self.is_alive(), "the long-lived client hung"
        self.sock.close()
        assert self.error is None, "the long-lived client failed: %s" % self.error
        return self.replies


def config(listen, dns_port, upstream_port, workers=2):
    return f"""workers: {workers}
log: {{ level: info }}
admin: {{ bind: 127.0.0.1:{free_port()} }}
resolvers: ["127.0.0.1:{dns_port}"]
listeners:
  - name: front
    bind: 127.0.0.1:{listen}
    codec: line
    cluster: back
clusters:
  - name: back
    resolve_interval: 300ms
    servers:
      - {{ address: "{NAME}:{upstream_port}" }}
"""


@pytest.fixture
def setup(procs, tmp_path, upstream, sluice):
    """Start dnsmasq with the name on addrs, both upstreams and sluice: (dns, port, sluice)."""

    def start(*addrs):
        dns = Dnsmasq(procs, tmp_path)
        dns.start(*addrs)
        a = upstream(host=A_HOST, tag="A")
        upstream(host=B_HOST, tag="B", port=a.port)
        port = free_port()
        return dns, port, sluice(config(port, dns.port, a.port))

    return start


def test_follows_the_name_without_breaking_a_client(setup):
    dns, port, p = setup(A_HOST)
    assert set(tags(port, 12)) == {"A"}
    steady = Steady(port)
    steady.start()
    steady.wait_only("A")
    dns.set(B_HOST)
    wait_tags(port, {"B"}, timeout=10)  # a few intervals: 300ms each
    steady.wait_only("B")
    replies = steady.finish()
    assert replies[0] == "A" and replies[-1] == "B"
    assert p.stop() == 0


def test_several_addresses_are_several_servers(setup):
    dns, port, p = setup(A_HOST)
    wait_tags(port, {"A"})
    dns.set(A_HOST, B_HOST)
    wait_tags(port, {"A", "B"}, timeout=10, n=20)  # round robin over both
    dns.set(B_HOST)
    wait_tags(port, {"B"}, timeout=10)
    assert p.stop() == 0


def test_failed_lookups_keep_the_last_answer(setup):
    dns, port, p = setup(A_HOST, B_HOST)
    wait_tags(port, {"A", "B"}, n=20)
    steady = Steady(port)
    steady.start()
    dns.kill()  # every lookup from now on times out
    deadline = time.monotonic() + 6  # many intervals, several lookups timed out
    while time.monotonic() < deadline:
        assert set(tags(port, 20)) == {"A", "B"}
        time.sleep(0.2)
    assert steady.error is None, "the long-lived client failed: %s" % steady.error
    # dnsmasq back on the same port with a new answer: followed again
    dns.start(B_HOST)
    wait_tags(port, {"B"}, timeout=15)
    steady.wait_only("B", timeout=15)
    steady.finish()
    assert p.stop() == 0  # lookups may be in flight at exit: nothing leaks (sanitized builds)


def test_sigterm_while_waiting_for_the_first_answers(sluice):
    """A resolver that never answers: the start waits for it (up to 5 s), and a stop asked
    for meanwhile is obeyed at once instead of being lost."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes queries, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        p = sluice(config(free_port(), silent.getsockname()[1], free_port()), wait=False)
        time.sleep(0.5)
        t0 = time.monotonic()
        assert p.stop(signal.SIGTERM, timeout=5.0) == 0
        assert time.monotonic() - t0 < 2.0
        assert not any("server: serving with" in line for line in p.lines), "\n".join(p.lines)
    finally:
        silent.close()


def test_reload_waits_for_a_changed_clusters_names(setup):
    """A reload that changes a cluster given by hostname makes new health for it, with no
    address until the name is answered: the reload waits for the answer before applying, so
    the long-lived client (which moves to the new pool) and new clients lose nothing."""
    dns, port, p = setup(A_HOST)
    wait_tags(port, {"A"})
    steady = Steady(port)
    steady.start()
    steady.wait_only("A")
    original = open(p.config_path).read()
    for i in range(6):
        text = original.replace("resolve_interval: 300ms",
                                "resolve_interval: %dms" % (300 + 100 * ((i + 1) % 2)))
        with open(p.config_path, "w") as f:
            f.write(text)
        p.send(signal.SIGHUP)
        i_wait = p.wait_line("generation %d: waiting up to 5 s for the first answers" % (i + 2))
        p.wait_line("generation %d: every worker serves it" % (i + 2), start=i_wait)
        assert set(tags(port, 4)) == {"A"}
    steady.wait_only("A")
    steady.finish()
    assert not any("not answered" in line for line in p.lines), "\n".join(p.lines)
    assert p.stop() == 0


def test_reload_waits_for_names_a_bounded_time(setup):
    """A resolver that never answers: the reload applies after 5 s anyway, saying so, and the
    running generation serves meanwhile. (The cluster changes too: a cluster that did not
    change keeps its health and its addresses, and nothing waits.)"""
    dns, port, p = setup(A_HOST)
    wait_tags(port, {"A"})
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        text = open(p.config_path).read().replace(
            "127.0.0.1:%d" % dns.port, "127.0.0.1:%d" % silent.getsockname()[1]).replace(
            "resolve_interval: 300ms", "resolve_interval: 350ms")
        with open(p.config_path, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        p.send(signal.SIGHUP)
        p.wait_line("generation 2: waiting up to 5 s for the first answers for 1 name")
        assert set(tags(port, 6)) == {"A"}  # generation 1 serves while 2 waits
        p.wait_line("generation 2: 1 name not answered within 5 s; applying it anyway", timeout=10)
        assert 4.5 < time.monotonic() - t0 < 8
        p.wait_line("generation 2: every worker serves it")
        assert p.stop() == 0
    finally:
        silent.close()
