"""Shared fixtures: the real sluice binary, free loopback ports, and processes
that are always stopped (by PID) when a test ends."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

SLUICE_BIN = os.environ.get("SLUICE_BIN", "")
SOURCE_DIR = os.environ.get(
    "SLUICE_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose stderr is collected line by line."""

    def __init__(self, argv, **kw):
        self.argv = argv
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, **kw
        )
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.p.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, needle, timeout=10.0, start=0):
        """Index of the first stderr line from start on that contains needle."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if needle in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(
                        "no line with %r within %.1fs; stderr so far:\n%s"
                        % (needle, timeout, "\n".join(self.lines))
                    )
                self.cond.wait(min(left, 0.1))

    def send(self, sig):
        self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the process and return its exit code; kill it if it hangs."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("%s did not exit within %.1fs of %s" % (self.argv[0], timeout, sig))
        self.reader.join(timeout)
        return self.p.returncode


@pytest.fixture
def sluice_bin():
    assert SLUICE_BIN and os.access(SLUICE_BIN, os.X_OK), "set SLUICE_BIN to the built sluice"
    return SLUICE_BIN


@pytest.fixture
def procs():
    """Start processes with procs(argv); every one is stopped when the test ends."""
    started = []

    def start(argv, **kw):
        p = Proc(argv, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()


@pytest.fixture
def write_config(tmp_path):
    def write(text, name="sluice.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def run(argv, timeout=30, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
