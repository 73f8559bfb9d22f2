"""`ha-notify watch` against Debian's real haproxy: every failure mode reaches the track file."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import check_fixtures
from tests.haproxy_helpers import Haproxy, Namespace, runtime_api, wait_for
from tests.watch_helpers import Watch, kill_all

pytestmark = pytest.mark.root

# Shared with the haproxy check tests: a pid namespace and a master-worker haproxy in it.
ns, proxy = check_fixtures.ns, check_fixtures.mw_proxy


@pytest.fixture
def watch(ns: Namespace, tmp_path: Path, proxy: Haproxy) -> Iterator[Watch]:
    """The watcher, deep check, 0.2 s rounds, started and healthy."""
    watcher = Watch(ns, tmp_path, proxy).start()
    watcher.wait_value("0\n", "a healthy verdict")
    yield watcher
    watcher.stop()


def test_healthy_haproxy_gives_0_and_metrics(watch: Watch) -> None:
    """A serving haproxy: track file 0, check_healthy 1 in a textfile promtool accepts."""
    watch.next_rounds(1)
    text = watch.metrics.read_text()
    assert 'ha_notify_check_healthy{cluster="test",node="' in text
    assert '",check="haproxy"} 1' in text
    if shutil.which("promtool"):
        done = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_killed_haproxy_gives_1_and_back(watch: Watch, ns: Namespace, proxy: Haproxy) -> None:
    """SIGKILL on the master and its worker: 1 with the reason logged; a new haproxy: 0."""
    master = proxy.pids()[0]
    kill_all(ns, proxy, signal.SIGKILL)
    watch.wait_value("1\n", "the unhealthy verdict")
    # Caught before or after its parent reaped it: a zombie or gone, both said by name.
    said = watch.log_text()
    prefix = f"check haproxy: unhealthy: pidfile {proxy.pidfile}: "
    gone, zombie = (
        f"{prefix}pid {master} is not running",
        f"{prefix}haproxy pid {master} is a zombie",
    )
    assert gone in said or zombie in said, said[-2000:]
    # The metrics file is written after the track file: await it, a loaded machine is slow.
    wait_for(lambda: 'check="haproxy"} 0' in watch.metrics.read_text(), "the metric at 0")
    proxy.start()
    watch.wait_value("0\n", "healthy again")


def test_disabled_frontend_gives_1(watch: Watch, proxy: Haproxy) -> None:
    """A frontend disabled on the runtime API (haproxy alive, not serving) gives 1."""
    runtime_api(proxy.sock, "disable frontend fe_http")
    watch.wait_value("1\n", "the unhealthy verdict")
    assert "unhealthy: frontend fe_http is PAUSED" in watch.log_text()
    runtime_api(proxy.sock, "enable frontend fe_http")
    watch.wait_value("0\n", "healthy again")


def test_hung_haproxy_gives_1(watch: Watch, ns: Namespace, proxy: Haproxy) -> None:
    """A SIGSTOPped haproxy (alive, silent socket) gives 1 after the check's timeout."""
    pids = [proxy.pids()[0], *proxy.workers()]
    for pid in pids:
        ns.kill(pid, signal.SIGSTOP)
    try:
        watch.wait_value("1\n", "the unhealthy verdict")
        assert "stats socket timed out after 0.5 s" in watch.log_text()
    finally:
        for pid in pids:
            ns.kill(pid, signal.SIGCONT)
    watch.wait_value("0\n", "healthy again")


def test_reloads_never_read_as_unhealthy(watch: Watch, proxy: Haproxy) -> None:
    """20 master-worker reloads (SIGUSR2) while the watcher runs: never one unhealthy round."""
    for _ in range(20):
        workers = set(proxy.workers())
        # A new worker can run before its re-executed master catches SIGUSR2 again (seen on
        # a loaded machine): a reload sent then is lost, and no new worker ever comes.
        wait_for(proxy.master_catches_sigusr2, "the master's SIGUSR2 handler")
        proxy.ns.kill(proxy.pids()[0], signal.SIGUSR2)
        wait_for(lambda workers=workers: set(proxy.workers()) - workers, "a new worker")  # type: ignore[misc]
        watch.next_rounds(1)
    proxy.wait_ready()
    watch.next_rounds(2)
    assert "unhealthy" not in watch.log_text()
    assert watch.value() == "0\n"


def test_restart_and_vanishing_socket(watch: Watch, proxy: Haproxy) -> None:
    """The stats socket removed under a live haproxy gives 1; a restart brings it and 0 back."""
    proxy.sock.unlink()
    watch.wait_value("1\n", "the unhealthy verdict")
    assert f"stats socket {proxy.sock} does not exist" in watch.log_text()
    proxy.stop()
    proxy.start()
    watch.wait_value("0\n", "healthy again")
    assert watch.proc.poll() is None


def test_sighup_reloads_and_keeps_old_config_when_broken(watch: Watch, tmp_path: Path) -> None:
    """SIGHUP applies a new track_file; a broken config on SIGHUP is logged and the old kept."""
    moved = tmp_path / "moved" / "track"
    text = watch.config.read_text().replace(str(watch.track), str(moved))
    watch.config.write_text(text)
    watch.signal(signal.SIGHUP)
    wait_for(lambda: moved.exists() and moved.read_text() == "0\n", "the new track file")
    watch.config.write_text(text.replace("interval = 0.2", "interval = -1"))
    watch.signal(signal.SIGHUP)
    wait_for(lambda: "the new config is not used" in watch.log_text(), "the reload error")
    assert "watch.interval: expected a number > 0" in watch.log_text()
    before = moved.stat().st_ino
    wait_for(lambda: moved.stat().st_ino != before, "rounds going on with the old config")


def test_sigterm_exits_cleanly(watch: Watch) -> None:
    """SIGTERM ends the watcher after its round with exit 0, the track file left as it was."""
    assert watch.stop() == 0
    assert "watcher stopped" in watch.log_text()
    assert watch.value() == "0\n"


def test_a_round_forks_nothing(watch: Watch, tmp_path: Path) -> None:
    """Rounds with the deep check run no process (strace sees no clone, fork or execve)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    pid = watch.pid()
    tracer = subprocess.Popen(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=clone,clone3,fork,vfork,execve",
            "-o",
            str(trace),
            "-p",
            str(pid),
        ]
    )
    try:
        wait_for(lambda: trace.exists(), "strace to attach")
        watch.next_rounds(10)
    finally:
        tracer.terminate()
        tracer.wait()
    assert [ln for ln in trace.read_text().splitlines() if "(" in ln] == []


def test_once_prints_verdicts_and_exits_like_check(
    ns: Namespace, tmp_path: Path, proxy: Haproxy
) -> None:
    """--once: one round, the verdict printed, exit 0 healthy and 1 unhealthy."""
    watcher = Watch(ns, tmp_path, proxy)
    argv = ["python3", "-m", "ha_notify", "watch", "--once", "--config", str(watcher.config)]
    import sys

    argv[0] = sys.executable
    done = ns.run(*argv, env=watcher.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("check haproxy: healthy: haproxy master pid")
    assert f"track_file {watcher.track}: 0 written" in done.stdout
    proxy.stop()
    done = ns.run(*argv, env=watcher.env())
    assert done.returncode == 1
    assert "check haproxy: unhealthy: pidfile" in done.stdout
    assert watcher.track.read_text() == "1\n"


def test_haproxy_exit_starts_a_round_at_once(ns: Namespace, tmp_path: Path, proxy: Haproxy) -> None:
    """With a 1-hour interval, a killed haproxy still reaches the file: its pidfd wakes the loop."""
    watch = Watch(ns, tmp_path, proxy, interval=3600).start()
    try:
        watch.wait_value("0\n", "the first round")
        kill_all(ns, proxy, signal.SIGKILL)
        watch.wait_value("1\n", "the round started by haproxy's exit")
        watch.signal(signal.SIGTERM)  # and a signal still ends the hour-long wait
        assert watch.proc.wait(timeout=60) == 0
    finally:
        watch.stop()


def test_fifo_lines_become_states_and_metrics(ns: Namespace, tmp_path: Path) -> None:
    """[watch] fifo: keepalived's lines are recorded in order and show in the VRRP metrics."""
    fifo = tmp_path / "notify.fifo"
    watch = Watch(ns, tmp_path, None, extra={"watch": {"fifo": str(fifo)}}).start()
    try:
        wait_for(lambda: "reading keepalived notify FIFO" in watch.log_text(), "the FIFO reader")
        with open(fifo, "w") as writer:
            writer.write('INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" MASTER 100\n')
            writer.write('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\n')
        line = 'ha_notify_vrrp_state{cluster="test",node="'
        wait_for(
            lambda: (
                watch.metrics.exists()  # not yet written by the first round
                and any(
                    ln.startswith(line) and ln.endswith('vrrp_instance="VI_1",state="master"} 1')
                    for ln in watch.metrics.read_text().splitlines()
                )
            ),
            "VI_1 master in the metrics",
        )
        text = watch.metrics.read_text()
        assert 'vrrp_instance="VI_1",state="backup"} 0' in text
        assert 'ha_notify_vrrp_transitions_total{cluster="test",node="' in text
        assert 'vrrp_instance="VI_1"} 2' in text
        assert watch.value() == "1\n"  # no haproxy here: the health verdict is unaffected
    finally:
        watch.stop()
