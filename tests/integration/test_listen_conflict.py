"""A listening address held by another process is an error, never shared: every worker binds
its listeners with SO_REUSEPORT, which would let a second sluice (or anything else using
SO_REUSEPORT) on the same address take part of the connections. The start fails (exit 1,
naming the listener and the address) and a reload that asks for such an address fails and
keeps the running configuration; a reload keeps sluice's own sockets. Real binary, fake
upstreams on 127.0.0.1, every process stopped by its PID when the test ends."""
import signal
import socket
import subprocess

from conftest import free_port, front_back_config
from test_admin import admin_port, get, line_requests, metric, parse_metrics

HELD = "another process holds that address"


def accepted(adm):
    status, _, body = get(adm, "/metrics")
    assert status == 200
    return metric(parse_metrics(body), "sluice_client_connections_accepted_total", listener="front")


def test_second_instance_on_the_same_address_fails(upstream, sluice, procs, sluice_bin, write_config):
    up = upstream()
    port = free_port()
    text = front_back_config(port, [up.port], workers=2)
    first = sluice(text)
    # The same listener address, its own admin port: only the listener collides.
    other = front_back_config(port, [up.port], workers=2)
    second = procs([sluice_bin, "-c", write_config(other, name="second.yaml")])
    try:
        rc = second.p.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the second sluice did not exit; stderr:\n" + "\n".join(second.lines))
    second.reader.join(5)
    assert rc == 1, "\n".join(second.lines)
    line = second.lines[second.wait_line(HELD, timeout=1)]
    assert "127.0.0.1:%d" % port in line and "listener=front" in line, line

    # The first one got every connection, and a reload with the listener unchanged keeps its
    # socket (no probe of its own address).
    line_requests(port, clients=20, per_client=2)
    assert accepted(admin_port(text)) == 20
    first.send(signal.SIGHUP)
    first.wait_line("generation 2: every worker serves it")
    line_requests(port, clients=10, per_client=2)
    assert accepted(admin_port(text)) == 30
    assert first.stop() == 0


def reload_onto_held_address_fails(p, text, host, held_port, holder, port):
    """Reload p with a listener 'extra' on host:held_port added: the reload must fail naming
    it, generation 1 keeps running (port still served), and every connection to the held
    address reaches holder."""
    added = text.replace("clusters:\n", (
        "  - name: extra\n"
        "    bind: %s:%d\n"
        "    codec: line\n"
        "    cluster: back\n"
        "clusters:\n") % (host, held_port), 1)
    with open(p.config_path, "w") as f:
        f.write(added)
    p.send(signal.SIGHUP)
    line = p.lines[p.wait_line(HELD)]
    assert "%s:%d" % (host, held_port) in line and "listener=extra" in line, line
    p.wait_line("still running generation 1")
    holder.settimeout(5)
    for _ in range(10):
        with socket.create_connection((host, held_port), timeout=5):
            conn, _ = holder.accept()
            conn.close()
    status, _, body = get(admin_port(text), "/metrics")
    assert metric(parse_metrics(body), "sluice_config_generation") == 1
    line_requests(port, clients=5, per_client=2)


def test_reload_onto_a_held_address_fails_and_keeps_the_old_config(upstream, sluice):
    up = upstream()
    port = free_port()
    text = front_back_config(port, [up.port], workers=2)
    p = sluice(text)
    # Another process holds a port the way a second sluice would: SO_REUSEPORT, listening.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(16)
    held = holder.getsockname()[1]
    try:
        reload_onto_held_address_fails(p, text, "127.0.0.1", held, holder, port)
    finally:
        holder.close()
    assert p.stop() == 0


def test_reload_onto_another_address_of_a_port_of_ours_is_probed(upstream, sluice):
    """sluice listens on 127.0.0.1:P; another process holds 127.0.0.2:P (all of 127/8 is
    loopback) with SO_REUSEPORT. A reload adding 127.0.0.2:P is probed like any new address
    (holding the port elsewhere is not holding this address), so it fails, not shares."""
    up = upstream()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.2", 0))
        holder.listen(16)
        port = holder.getsockname()[1]
        text = front_back_config(port, [up.port], workers=2)  # bind: 127.0.0.1:<port>
        p = sluice(text)
        reload_onto_held_address_fails(p, text, "127.0.0.2", port, holder, port)
    finally:
        holder.close()
    assert p.stop() == 0
