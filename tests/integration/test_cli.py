"""The command line and configuration checking of the real binary."""
import glob
import json
import os
import re
import signal
import subprocess

import yaml

from conftest import SOURCE_DIR, free_port, run


def minimal_config(port=None, extra=""):
    port = port or free_port()
    return f"""{extra}
listeners:
  - name: l
    bind: 127.0.0.1:{port}
    codec: line
    cluster: c
clusters:
  - name: c
    servers: [{{ address: 127.0.0.1:{free_port()} }}]
"""


def test_version_names_sluice_and_libraries(sluice_bin):
    r = run([sluice_bin, "--version"])
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"sluice \d+\.\d+\.\d+", lines[0])
    assert re.fullmatch(r"libevent 2\.1\.\d+-stable", lines[1])
    assert re.match(r"OpenSSL 3\.", lines[2])
    assert re.fullmatch(r"libyaml 0\.\d+\.\d+", lines[3])


def test_help_and_usage_errors(sluice_bin):
    r = run([sluice_bin, "-h"])
    assert r.returncode == 0 and "usage: sluice" in r.stdout
    r = run([sluice_bin, "--bogus"])
    assert r.returncode == 2 and "usage: sluice" in r.stderr
    r = run([sluice_bin, "-t", "stray"])
    assert r.returncode == 2 and "unexpected argument 'stray'" in r.stderr
    r = run([sluice_bin, "-c"])
    assert r.returncode == 2


def test_shipped_config_checks_and_round_trips(sluice_bin, write_config):
    shipped = os.path.join(SOURCE_DIR, "config", "sluice.yaml")
    r = run([sluice_bin, "-t", "-c", shipped])
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stderr
    doc = yaml.safe_load(r.stdout)
    # Every default is filled in, in the documented spelling.
    assert doc["workers"] == "auto"
    assert doc["listeners"][0]["codec"] == {"type": "line", "max_frame": "64KiB", "delimiter": "\n"}
    assert doc["listeners"][0]["backlog"] == 511
    assert doc["clusters"][0]["pool"]["queue"] == {"max": 10000, "timeout": "1s"}
    # The dump is itself a valid config that dumps to the same text.
    again = run([sluice_bin, "-t", "-c", write_config(r.stdout)])
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1:] == r.stdout.splitlines()[1:]


def test_default_config_without_c(sluice_bin):
    r = run([sluice_bin, "-t"])
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("# effective configuration of ") and first.endswith("sluice/sluice.yaml") or first.endswith(
        "config/sluice.yaml"
    )


# docker compose files ship beside sluice's own YAML but are not sluice configurations.
COMPOSE_FILES = {os.path.join("docker", "compose.yaml")}


def shipped_yaml():
    found = []
    for pattern in ("config/*.yaml", "config/examples/*.yaml", "docker/*.yaml", "docker/*.yml"):
        found += glob.glob(os.path.join(SOURCE_DIR, pattern))
    return sorted(os.path.relpath(p, SOURCE_DIR) for p in found)


def test_every_shipped_yaml_passes_the_check(sluice_bin):
    """Every YAML file the repository ships (config/, config/examples/, docker/) is a config
    `sluice -t` accepts, except the compose files, which are told apart by their services."""
    files = shipped_yaml()
    assert os.path.join("config", "sluice.yaml") in files and len(files) >= 5, files
    for rel in files:
        path = os.path.join(SOURCE_DIR, rel)
        with open(path) as f:
            doc = yaml.safe_load(f)
        if rel in COMPOSE_FILES:
            assert isinstance(doc, dict) and "services" in doc, rel + " is not a compose file"
            continue
        assert not (isinstance(doc, dict) and "services" in doc), rel + ": add it to COMPOSE_FILES"
        r = run([sluice_bin, "-t", "-c", path])
        assert r.returncode == 0, rel + "\n" + r.stderr
        assert r.stderr.strip().endswith("configuration ok"), rel + "\n" + r.stderr


UNBUILT = """listeners:
  - name: web
    bind: 127.0.0.1:{p1}
    codec: {{ type: http }}
    cluster: c
  - name: secure
    bind: 127.0.0.1:{p2}
    codec: line
    cluster: d
    tls: {{ cert: {cert}, key: {cert} }}
clusters:
  - name: c
    servers: [{{ address: 127.0.0.1:{p3} }}]
    tls: {{}}
  - name: d
    servers: [{{ address: 127.0.0.1:{p3} }}]
udp:
  - name: dns
    bind: 127.0.0.1:{p4}
    cluster: c
"""


def unbuilt_expected(path):
    return [
        f"{path}:4:20: listeners[0].codec: codec http is not available in this version yet "
        "(listener 'web')",
        f"{path}:10:10: listeners[1].tls: tls is not available in this version yet "
        "(listener 'secure')",
        f"{path}:14:10: clusters[0].tls: tls is not available in this version yet (cluster 'c')",
        f"{path}:18:5: udp[0]: a udp relay is not available in this version yet (udp relay 'dns')",
    ]


def test_unbuilt_features_refused_with_positions(sluice_bin, write_config, tmp_path):
    """codec http, tls and udp are parsed and checked, then refused by -t and at start, each
    line with the file, line and column of what asks for it, like every other error."""
    cert = tmp_path / "cert.pem"
    cert.write_text("not used\n")
    p1, p2, p3, p4 = (free_port() for _ in range(4))
    path = write_config(UNBUILT.format(p1=p1, p2=p2, p3=p3, p4=p4, cert=cert))
    for argv in ([sluice_bin, "-t", "-c", path], [sluice_bin, "-c", path]):
        r = run(argv, timeout=10)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.splitlines()
        assert lines[:-1] == unbuilt_expected(path), r.stderr
        assert lines[-1] == f"sluice: {path}: configuration asks for 4 features this version does not have"


def test_unbuilt_codec_refused_at_start(sluice_bin, write_config):
    path = write_config(minimal_config().replace("codec: line", "codec: http"))
    r = run([sluice_bin, "-c", path])
    assert r.returncode == 2
    assert re.search(
        re.escape(path) + r":\d+:\d+: listeners\[0\]\.codec: codec http is not available in this "
        r"version yet \(listener 'l'\)", r.stderr), r.stderr


def test_every_error_reported_once_with_position(sluice_bin, write_config):
    path = write_config(
        """workers: many
log: { level: loud }
listeners:
  - name: a
    bind: 127.0.0.1:7000
    codec: { type: length, field_size: 5 }
    cluster: cach
    colour: blue
clusters:
  - name: cache
    servers: []
"""
    )
    r = run([sluice_bin, "-t", "-c", path])
    assert r.returncode == 2
    assert r.stdout == ""
    errors = [l for l in r.stderr.splitlines() if l.startswith(path + ":")]
    expected = [
        "1:10: workers: expected auto or a number from 1 to 256",
        "2:15: log.level: unknown value 'loud'",
        "6:40: listeners[0].codec.field_size: 5 is not a field size",
        "7:14: listeners[0].cluster: unknown cluster 'cach'; did you mean 'cache'?",
        "8:5: listeners[0].colour: unknown key 'colour'",
        "11:14: clusters[0].servers: empty list",
    ]
    assert len(errors) == len(expected), r.stderr
    for line, want in zip(errors, expected):
        assert line.startswith(path + ":" + want), (line, want)
    assert r.stderr.splitlines()[-1] == f"sluice: {path}: configuration has 6 errors"


def test_syntax_error_and_missing_file(sluice_bin, write_config):
    path = write_config("listeners:\n  - name: x\n    bind: [1,2\n")
    r = run([sluice_bin, "-t", "-c", path])
    assert r.returncode == 2
    assert r.stderr.startswith(path + ":4:1: YAML syntax error: ")
    r = run([sluice_bin, "-t", "-c", path + ".missing"])
    assert r.returncode == 2
    assert "cannot open: No such file or directory" in r.stderr


def test_reference_matches_docs(sluice_bin):
    r = run([sluice_bin, "--reference"])
    assert r.returncode == 0
    with open(os.path.join(SOURCE_DIR, "docs", "configuration.md")) as f:
        docs = f.read()
    assert r.stdout == docs, "docs/configuration.md is stale: regenerate it with `sluice --reference`"
    # Each key of the schema is documented: spot-check a few from every section.
    for key in ("`max_pipeline`", "`field_offset`", "`max_ejected_percent`", "`flow_idle`", "`sni`"):
        assert key in docs


def test_bad_config_at_start_exits_2(sluice_bin, write_config):
    path = write_config("listeners: 5\n")
    r = run([sluice_bin, "-c", path])
    assert r.returncode == 2
    assert path + ":1:12: listeners: expected a sequence, got a scalar" in r.stderr


def test_reload_keeps_old_config_on_errors_and_adopts_a_good_one(sluice_bin, write_config, procs):
    path = write_config(minimal_config(extra="log: { level: info, format: text }"))
    p = procs([sluice_bin, "-c", path])
    p.wait_line("loaded " + path + " (generation 1)")

    with open(path, "a") as f:
        f.write("bogus: 1\n")
    p.send(signal.SIGHUP)
    i = p.wait_line("unknown key 'bogus'")
    assert path + ":10:1: bogus:" in p.lines[i]
    p.wait_line("reload of " + path + " failed with 1 error; still running generation 1", start=i)

    with open(path, "w") as f:
        f.write(minimal_config(extra="log: { level: info, format: json }"))
    p.send(signal.SIGHUP)
    i = p.wait_line("reloaded")
    entry = json.loads(p.lines[i])  # the new config switched the log format to JSON
    assert entry["level"] == "info" and entry["component"] == "config"
    assert entry["msg"].startswith("reloaded " + path + " (generation 2)")
    assert p.stop(signal.SIGTERM) == 0
    assert "SIGTERM received: no new clients" in "\n".join(p.lines)


def test_sigint_stops_cleanly(sluice_bin, write_config, procs):
    p = procs([sluice_bin, "-c", write_config(minimal_config())])
    p.wait_line("starting")
    assert p.stop(signal.SIGINT) == 0


def test_install_layout(tmp_path):
    build = os.environ.get("SLUICE_BUILD_DIR")
    assert build, "set SLUICE_BUILD_DIR"
    r = run(["cmake", "--install", build, "--prefix", str(tmp_path)], timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.access(tmp_path / "bin" / "sluice", os.X_OK)
    installed = tmp_path / "etc" / "sluice" / "sluice.yaml"
    assert installed.read_text() == open(os.path.join(SOURCE_DIR, "config", "sluice.yaml")).read()
    r = run([str(tmp_path / "bin" / "sluice"), "-t", "-c", str(installed)])
    assert r.returncode == 0, r.stderr


def test_bind_failure_exits_1_naming_the_address(sluice_bin, write_config):
    import socket

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)  # without SO_REUSEPORT: sluice's bind must fail
    port = held.getsockname()[1]
    r = run([sluice_bin, "-c", write_config(minimal_config(port))], timeout=10)
    held.close()
    assert r.returncode == 1
    assert "cannot listen on 127.0.0.1:%d: Address already in use" % port in r.stderr
    assert "start failed" in r.stderr
