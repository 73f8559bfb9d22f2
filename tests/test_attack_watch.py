"""Attacks on the watcher as a daemon: a verdict must reach keepalived's track file even when
its folder has no free space left (or the node keeps the VIP with a dead haproxy), and a storm
of SIGHUPs must not queue reloads that SIGTERM waits behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import check_fixtures
from tests.haproxy_helpers import REPO, Haproxy, Namespace, wait_for
from tests.watch_helpers import Watch

# Shared with the haproxy check tests: a pid namespace and a master-worker haproxy in it.
ns, proxy = check_fixtures.ns, check_fixtures.mw_proxy


@pytest.fixture
def tiny_run(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs standing in for /run/ha-notify/track (mounted before the namespace
    is made, so the watcher inside sees it)."""
    mount = tmp_path / "run-track"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path) -> None:
    """Take every free block of the file system that holds ``folder``."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"x" * 4096)
        except OSError:
            pass
    assert os.statvfs(folder).f_bavail == 0


@pytest.mark.root
def test_full_track_folder_still_reports_a_dead_haproxy(
    tiny_run: Path, ns: Namespace, tmp_path: Path, proxy: Haproxy
) -> None:
    """Fail-safe: a full /run cannot leave a stale "0" while haproxy is dead."""
    watch = Watch(ns, tmp_path, proxy, track_dir=tiny_run).start()
    try:
        watch.wait_value("0\n", "a healthy verdict")
        fill(tiny_run)
        hosts = [ns.host_pid(pid) for pid in [proxy.pids()[0], *proxy.workers()]]
        for host in hosts:
            if host is not None:
                with contextlib.suppress(ProcessLookupError):  # a worker may go first
                    os.kill(host, signal.SIGKILL)
        watch.wait_value("1\n", "the unhealthy verdict despite the full folder")
        assert "free space" in watch.log_text()
        proxy.start()
        watch.wait_value("0\n", "healthy again")
        (tiny_run / "filler").unlink()
        watch.next_rounds(2)  # replaced whole again: a new inode each round
        assert watch.value() == "0\n"
    finally:
        watch.stop()


def test_sighup_storm_queues_one_reload_and_sigterm_goes_first(tmp_path: Path) -> None:
    """SIGTERM ends the watcher after its round even right after 20,000 SIGHUPs."""
    config = tmp_path / "watch.toml"
    config.write_text(
        f"""[general]
state_dir = "{tmp_path / "state"}"
[checks.haproxy]
pidfile = "{tmp_path / "none.pid"}"
[watch]
interval = 1
track_file = "{tmp_path / "track" / "haproxy"}"
metrics_file = "{tmp_path / "metrics" / "ha-notify.prom"}"
"""
    )
    log = tmp_path / "watch.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HA_NOTIFY_SYSLOG": "off"}
    argv = [sys.executable, "-m", "ha_notify", "watch", "--config", str(config), "--verbose"]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)
    try:
        wait_for(lambda: (tmp_path / "track" / "haproxy").exists(), "the first round")
        for _ in range(20000):
            os.kill(proc.pid, signal.SIGHUP)
        before = log.read_text().count("config reloaded")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "watcher stopped" in text
    assert text.count("config reloaded") <= before + 1  # no backlog of reloads went first
