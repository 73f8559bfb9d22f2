"""Fixtures of the haproxy check tests: a pid namespace, the check inside it, real haproxy."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.haproxy_helpers import (
    CheckRun,
    Haproxy,
    Namespace,
    requirements,
    server_status,
    wait_for,
)


@pytest.fixture
def ns() -> Iterator[Namespace]:
    """A fresh pid namespace; skips cleanly where haproxy tests cannot run."""
    reason = requirements()
    if reason:
        pytest.skip(reason)
    space = Namespace()
    try:
        yield space
    finally:
        space.close()


@pytest.fixture
def mw_proxy(ns: Namespace, tmp_path: Path) -> Iterator[Haproxy]:
    """haproxy -W -D (master-worker, as Debian's unit runs it) with a backend UP."""
    haproxy = Haproxy(ns, tmp_path, master_worker=True)
    yield haproxy.start()
    haproxy.close()


@pytest.fixture
def check(tmp_path: Path, ns: Namespace) -> CheckRun:
    """Runs `ha-notify check` inside the test's namespace."""
    return CheckRun(tmp_path, ns)


@pytest.fixture
def world() -> Iterator[Path]:
    """A folder under /tmp that nobody may enter and read (tmp_path is 0700 root)."""
    folder = Path(tempfile.mkdtemp(prefix="ha-notify-shared-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def down(ns: Namespace, tmp_path: Path) -> Iterator[Haproxy]:
    """haproxy with be_up (a live server) and be_down (its only server DOWN)."""
    proxy = Haproxy(ns, tmp_path, down_backend=True).start()
    wait_for(lambda: server_status(proxy.sock, "be_down", "dead1") == "DOWN", "be_down DOWN")
    yield proxy
    proxy.close()


def syslog_lines(check: CheckRun, tmp_path: Path, runs: int, *args: str) -> list[str]:
    """What a real syslog socket received over ``runs`` identical check runs."""
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(str(path))
        check.syslog_env = str(path)
        for _ in range(runs):
            check(*args)  # each run has exited: its datagrams are already queued
        log.setblocking(False)
        received = []
        while True:
            try:
                received.append(log.recv(65536).decode())
            except BlockingIOError:
                return received
