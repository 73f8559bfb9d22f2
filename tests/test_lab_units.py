"""The checklist nodes' stand-in for systemd (lab.units) on real processes: a start that
hangs or never says READY is killed, a timer's run never blocks the init, Restart=always
restarts a killed service, and a restart that cannot start never takes the init down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from lab import unitfile
from lab.unitfile import Unit
from lab.units import Manager


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Unit files are looked up in ``tmp_path`` only."""
    monkeypatch.setattr(unitfile, "UNIT_DIRS", (tmp_path,))
    return tmp_path


def unit(folder: Path, name: str, *lines: str) -> Unit:
    path = folder / name
    path.write_text("[Service]\n" + "".join(f"{line}\n" for line in lines))
    found = Unit.find(name)
    assert found is not None
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def tick_until(manager: Manager, done: object) -> None:
    while not done():  # type: ignore[operator]
        manager.tick()
        time.sleep(0.05)


def test_oneshot_that_hangs_is_killed_at_its_start_timeout(folder: Path) -> None:
    """systemctl start of a hung oneshot fails after TimeoutStartSec and kills it (it used to
    raise TimeoutExpired out of the init's loop, killing the node)."""
    manager = Manager(folder / "logs")
    hung = unit(folder, "hung.service", "Type=oneshot", "ExecStart=/bin/sleep 600",
                "TimeoutStartSec=300ms", "TimeoutStopSec=1s")  # fmt: skip
    out: list[str] = []
    assert manager.start(hung, out) == 1
    assert "failed" in out[0]
    assert not manager.active(hung) and "hung.service" not in manager.running


def test_timer_run_does_not_block_and_is_killed_when_it_hangs(folder: Path) -> None:
    """A timer's run returns at once (the init keeps serving systemctl and /dev/log); a run
    that hangs past TimeoutStartSec is killed by tick."""
    manager = Manager(folder / "logs")
    flush = unit(folder, "flush.service", "Type=oneshot", "ExecStart=/bin/sleep 600",
                 "TimeoutStartSec=500ms", "TimeoutStopSec=1s")  # fmt: skip
    began = time.monotonic()
    assert manager.start(flush, [], wait=False) == 0
    assert time.monotonic() - began < 1.0 and manager.active(flush)
    pid = manager.running["flush.service"].proc.pid
    tick_until(manager, lambda: gone(pid))
    assert "start timed out" in (folder / "logs" / "init.log").read_text()


def test_notify_service_that_never_says_ready_is_killed(folder: Path) -> None:
    """Type=notify without READY=1 fails the start and does not stay running."""
    manager = Manager(folder / "logs")
    mute = unit(folder, "mute.service", "Type=notify", "ExecStart=/bin/sleep 600",
                "TimeoutStartSec=500ms", "TimeoutStopSec=1s")  # fmt: skip
    out: list[str] = []
    assert manager.start(mute, out) == 1
    assert "never said READY=1" in out[0]
    assert not manager.active(mute)


def test_restart_always_after_sigkill(folder: Path) -> None:
    """A SIGKILLed Restart=always service comes back with a new pid."""
    manager = Manager(folder / "logs")
    watch = unit(folder, "watch.service", "ExecStart=/bin/sleep 600", "Restart=always",
                 "RestartSec=0")  # fmt: skip
    assert manager.start(watch, []) == 0
    first = manager.running["watch.service"].proc.pid
    os.kill(first, signal.SIGKILL)

    def back() -> bool:
        run = manager.running.get("watch.service")
        return run is not None and run.proc.pid != first and run.proc.poll() is None

    tick_until(manager, back)
    manager.shutdown()
    assert not manager.running


def test_restart_that_cannot_start_is_logged_not_raised(folder: Path) -> None:
    """An ExecStart gone missing before a restart is noted in the log; tick does not raise
    (an exception there used to end the init, and with it the whole node)."""
    manager = Manager(folder / "logs")
    svc = unit(folder, "svc.service", "ExecStart=/bin/sleep 600", "Restart=always",
               "RestartSec=0")  # fmt: skip
    assert manager.start(svc, []) == 0
    unit(folder, "svc.service", "ExecStart=/nonexistent/daemon", "Restart=always")
    os.kill(manager.running["svc.service"].proc.pid, signal.SIGKILL)
    log = folder / "logs" / "init.log"
    tick_until(manager, lambda: log.is_file() and "cannot start" in log.read_text())


def test_restart_loop_stops_at_the_start_limit(folder: Path) -> None:
    """A service that exits at once is restarted 5 times in 10 s, then left down, noted once
    per exit instead of on every tick."""
    manager = Manager(folder / "logs")
    bad = unit(folder, "bad.service", "ExecStart=/bin/false", "Restart=always", "RestartSec=0")
    assert manager.start(bad, []) == 0
    log = folder / "logs" / "init.log"
    tick_until(manager, lambda: log.is_file() and "repeated too quickly" in log.read_text())
    for _ in range(10):
        manager.tick()
    assert log.read_text().count("exited with 1") == 6


HAPROXY_CFG = """global
    log stdout format raw local0
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend site
    bind {address}:{port}
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/sbin/haproxy").exists(), reason="needs root, haproxy"
)
def test_haproxy_reload_that_cannot_bind_fails_the_reload(folder: Path) -> None:
    """haproxy's reload is a kill -USR2 that returns at once; a config it cannot load (an
    address it cannot bind: the standby's VIP without ip_nonlocal_bind) must fail
    `systemctl reload` instead of passing while haproxy keeps the old config."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = folder / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(address="127.0.0.1", port=port))
    haproxy = unit(
        folder,
        "haproxy.service",
        "Type=notify",
        f"ExecStart=/usr/sbin/haproxy -Ws -f {cfg} -p {folder / 'haproxy.pid'}",
        f"ExecReload=/usr/sbin/haproxy -Ws -f {cfg} -c -q",
        "ExecReload=/bin/kill -USR2 $MAINPID",
        "TimeoutStopSec=5s",
    )
    manager = Manager(folder / "logs")
    out: list[str] = []
    try:
        assert manager.start(haproxy, out) == 0, out
        assert manager.reload(haproxy, out) == 0, out  # the same config: fine
        cfg.write_text(HAPROXY_CFG.format(address="192.0.2.1", port=port))  # not local
        assert manager.reload(haproxy, out) == 1
        assert "cannot bind socket" in out[-1] and "haproxy.service" in out[-1]
        assert manager.active(haproxy)  # the old workers still serve
    finally:
        manager.shutdown()
