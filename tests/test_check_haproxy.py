"""`ha-notify check haproxy` against Debian's real haproxy, each test in its own pid namespace."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from tests import check_fixtures
from tests.haproxy_helpers import (
    NOBODY,
    CheckRun,
    HangingSocket,
    Haproxy,
    HoldServer,
    Namespace,
    fake_haproxy,
    runtime_api,
    server_status,
    wait_for,
)

pytestmark = [pytest.mark.root, pytest.mark.haproxy]

# Shared with the other haproxy check tests.
ns = check_fixtures.ns


@pytest.fixture
def check(tmp_path: Path, ns: Namespace) -> CheckRun:
    """Runs `ha-notify check` inside the test's namespace."""
    return CheckRun(tmp_path, ns)


@pytest.fixture
def daemon(ns: Namespace, tmp_path: Path) -> Iterator[Haproxy]:
    """haproxy -D with a backend that is UP."""
    proxy = Haproxy(ns, tmp_path)
    yield proxy.start()
    proxy.close()


@pytest.fixture
def master(ns: Namespace, tmp_path: Path) -> Iterator[Haproxy]:
    """haproxy -W -D (master-worker, as Debian's systemd unit runs it)."""
    proxy = Haproxy(ns, tmp_path, master_worker=True)
    yield proxy.start()
    proxy.close()


@pytest.fixture
def hold() -> Iterator[HoldServer]:
    """A TCP server that keeps connections open, so an old haproxy has work to finish."""
    server = HoldServer()
    yield server
    server.close()


def long_connection(port: int) -> socket.socket:
    """A client connection through haproxy's TCP frontend that stays open."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(b"hello\n")
    return conn


def written_pid(path: Path) -> Optional[int]:
    """The pid a shell wrote to ``path``, once it is complete."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def comm(ns: Namespace, pid: int) -> Optional[str]:
    """The name of the namespace's process ``pid``."""
    host = ns.host_pid(pid)
    return Path(f"/proc/{host}/comm").read_text().strip() if host else None


def test_daemon_mode_healthy_by_pidfile(check: CheckRun, daemon: Haproxy) -> None:
    """A running haproxy -D named by its pidfile is healthy (exit 0, nothing on stderr)."""
    result = check("haproxy", "--pidfile", str(daemon.pidfile))
    assert (result.returncode, result.stderr) == (0, "")


def test_daemon_mode_healthy_by_scan(check: CheckRun, daemon: Haproxy) -> None:
    """Without a pidfile, the /proc scan finds the live haproxy."""
    assert check("haproxy", "--no-pidfile").returncode == 0


def test_master_worker_healthy(check: CheckRun, master: Haproxy) -> None:
    """A master with a live worker is healthy, by pidfile and by scan."""
    assert master.workers()
    assert check("haproxy", "--pidfile", str(master.pidfile)).returncode == 0
    assert check("haproxy", "--no-pidfile").returncode == 0


def test_stopped_haproxy_is_unhealthy(check: CheckRun, daemon: Haproxy) -> None:
    """After haproxy stops, its pidfile names a dead pid and the scan finds nothing."""
    pid = daemon.pids()[0]
    daemon.stop()
    by_pidfile = check("haproxy", "--pidfile", str(daemon.pidfile))
    assert by_pidfile.returncode == 1
    assert by_pidfile.stderr == f"unhealthy: pidfile {daemon.pidfile}: pid {pid} is not running\n"
    by_scan = check("haproxy", "--no-pidfile")
    assert (by_scan.returncode, by_scan.stderr) == (1, "unhealthy: no haproxy process is running\n")


def test_killed_worker_is_unhealthy(check: CheckRun, ns: Namespace, master: Haproxy) -> None:
    """SIGKILL on the only worker brings the master down too: unhealthy."""
    (worker,) = master.workers()
    master_pid = master.pids()[0]
    ns.kill(worker, signal.SIGKILL)
    wait_for(lambda: ns.state(master_pid) is None, "the master to exit")
    result = check("haproxy", "--pidfile", str(master.pidfile))
    assert result.returncode == 1
    assert f"pid {master_pid} is not running" in result.stderr
    assert check("haproxy", "--no-pidfile").returncode == 1


def test_master_without_live_worker_is_unhealthy(
    check: CheckRun, ns: Namespace, master: Haproxy
) -> None:
    """A hung master whose worker died (a zombie it does not reap) is unhealthy."""
    (worker,) = master.workers()
    master_pid = master.pids()[0]
    ns.kill(master_pid, signal.SIGSTOP)
    try:
        ns.kill(worker, signal.SIGKILL)
        wait_for(lambda: ns.state(worker) == "Z", "the worker to become a zombie")
        expected = (
            f"haproxy master pid {master_pid} has no live worker (zombie worker pid {worker})"
        )
        result = check("haproxy", "--pidfile", str(master.pidfile))
        assert result.returncode == 1
        assert result.stderr == f"unhealthy: pidfile {master.pidfile}: {expected}\n"
        by_scan = check("haproxy", "--no-pidfile")
        assert (by_scan.returncode, by_scan.stderr) == (1, f"unhealthy: {expected}\n")
    finally:
        ns.kill(master_pid, signal.SIGCONT)


def test_zombie_named_haproxy_is_unhealthy(check: CheckRun, ns: Namespace, tmp_path: Path) -> None:
    """A zombie called haproxy (killall -0 says yes) is not a live haproxy."""
    zombie_maker = ns.popen(
        "sh", "-c", f"{fake_haproxy(tmp_path)} 0 & echo $! > {tmp_path}/z.pid; exec sleep 600"
    )
    try:
        pid_file = tmp_path / "z.pid"
        pid = int(wait_for(lambda: written_pid(pid_file), "the zombie's pid"))  # type: ignore[call-overload]
        wait_for(lambda: ns.state(pid) == "Z", "the process to become a zombie")
        assert ns.run("killall", "-0", "haproxy").returncode == 0  # what keepalived ran
        by_scan = check("haproxy", "--no-pidfile")
        assert by_scan.returncode == 1
        assert by_scan.stderr == f"unhealthy: only zombie haproxy processes: pid {pid}\n"
        by_pidfile = check("haproxy", "--pidfile", str(pid_file))
        assert by_pidfile.returncode == 1
        assert f"haproxy pid {pid} is a zombie" in by_pidfile.stderr
    finally:
        zombie_maker.kill()
        zombie_maker.wait()


def test_stale_pidfile_with_reused_pid(check: CheckRun, ns: Namespace, tmp_path: Path) -> None:
    """A pidfile whose pid now belongs to another program is stale: unhealthy."""
    other = ns.popen("sh", "-c", f"echo $$ > {tmp_path}/stale.pid; exec sleep 600")
    try:
        pid_file = tmp_path / "stale.pid"
        pid = int(wait_for(lambda: written_pid(pid_file), "the pid of sleep"))  # type: ignore[call-overload]
        wait_for(lambda: ns.state(pid) == "S" and comm(ns, pid) == "sleep", "sleep to run")
        result = check("haproxy", "--pidfile", str(pid_file))
        assert result.returncode == 1
        expected = f"pid {pid} is 'sleep', not haproxy (stale pidfile)"
        assert result.stderr == f"unhealthy: pidfile {pid_file}: {expected}\n"
    finally:
        other.kill()
        other.wait()


def test_reload_with_sf_is_healthy(
    check: CheckRun, ns: Namespace, tmp_path: Path, hold: HoldServer
) -> None:
    """During `haproxy -D -sf OLD`, old process still finishing a connection: healthy."""
    proxy = Haproxy(ns, tmp_path, hold=hold).start()
    conn = long_connection(proxy.tcp_port)
    try:
        wait_for(lambda: hold.conns, "the long connection to reach the server")
        (old,) = proxy.pids()
        result = ns.run(*proxy.argv("-sf", str(old)))
        assert result.returncode == 0, result.stderr
        wait_for(lambda: proxy.pids() != [old], "the new pidfile")
        proxy.wait_ready()
        assert ns.state(old) not in (None, "Z")  # the old one is still finishing
        args = ["--socket", str(proxy.sock), "--deep"]
        assert check("haproxy", "--pidfile", str(proxy.pidfile), *args).returncode == 0
        assert check("haproxy", "--no-pidfile", *args).returncode == 0
    finally:
        conn.close()
        proxy.close()


def test_master_worker_reload_is_healthy(
    check: CheckRun, ns: Namespace, tmp_path: Path, hold: HoldServer
) -> None:
    """SIGUSR2 to the master, the old worker still finishing a connection: healthy."""
    proxy = Haproxy(ns, tmp_path, master_worker=True, hold=hold).start()
    conn = long_connection(proxy.tcp_port)
    try:
        wait_for(lambda: hold.conns, "the long connection to reach the server")
        (old,) = proxy.workers()
        ns.kill(proxy.pids()[0], signal.SIGUSR2)
        wait_for(lambda: len(proxy.workers()) == 2, "a new worker next to the old one")
        proxy.wait_ready()
        assert old in proxy.workers()
        args = ["--socket", str(proxy.sock), "--deep"]
        assert check("haproxy", "--pidfile", str(proxy.pidfile), *args).returncode == 0
        assert check("haproxy", "--no-pidfile", *args).returncode == 0
    finally:
        conn.close()
        proxy.close()


def test_default_pidfile_location(check: CheckRun, ns: Namespace, tmp_path: Path) -> None:
    """With no --pidfile, /run/haproxy.pid is used (a private /run in the namespace)."""
    assert ns.run("mount", "-t", "tmpfs", "tmpfs", "/run").returncode == 0
    proxy = Haproxy(ns, tmp_path, pidfile=Path("/run/haproxy.pid"))
    try:
        result = ns.run(*proxy.argv())
        assert result.returncode == 0, result.stderr
        proxy.wait_ready()
        pid = ns.run("cat", "/run/haproxy.pid").stdout.strip()
        ok = check("haproxy")
        assert ok.returncode == 0
        assert ns.run("kill", "-TERM", pid).returncode == 0
        wait_for(lambda: ns.state(int(pid)) is None, "haproxy to stop")
        gone = check("haproxy")
        assert gone.returncode == 1
        assert gone.stderr == f"unhealthy: pidfile /run/haproxy.pid: pid {pid} is not running\n"
    finally:
        proxy.close()


@pytest.fixture
def two_backends(ns: Namespace, tmp_path: Path) -> Iterator[Haproxy]:
    """haproxy with be_up (a live HTTP server) and be_down (a closed loopback port)."""
    proxy = Haproxy(ns, tmp_path, down_backend=True).start()
    wait_for(lambda: server_status(proxy.sock, "be_down", "dead1") == "DOWN", "be_down DOWN")
    yield proxy
    proxy.close()


def test_deep_names_the_backend_without_servers_up(check: CheckRun, two_backends: Haproxy) -> None:
    """--deep reports a backend with no server UP; --min-up makes it fail the node."""
    base = ["haproxy", "--pidfile", str(two_backends.pidfile), "--socket", str(two_backends.sock)]
    problem = "backend be_down has 0 of 1 servers UP, needs 1 (dead1 DOWN)"
    shared = check(*base, "--deep")
    assert (shared.returncode, shared.stderr) == (
        0,
        f"reported, not failed over (both nodes share it): {problem}\n",
    )
    result = check(*base, "--deep", "--min-up", "1")
    assert (result.returncode, result.stderr) == (1, f"unhealthy: {problem}\n")
    assert check(*base, "--deep", "--min-up=1", "--ignore-backend", "be_down").returncode == 0
    assert check(*base).returncode == 0  # process level only
    too_few = check(*base, "--deep", "--ignore-backend=be_down", "--min-up", "2")
    assert too_few.returncode == 1
    assert too_few.stderr == (
        "unhealthy: backend be_up has 1 of 1 servers UP, needs 2 "
        "(lower min_up, or ignore this backend)\n"
    )


def test_deep_config_file_settings(check: CheckRun, two_backends: Haproxy) -> None:
    """deep, socket and ignore_backends come from [checks.haproxy] in the config file."""
    check.config.write_text(
        "[checks.haproxy]\n"
        f'pidfile = "{two_backends.pidfile}"\n'
        f'socket = "{two_backends.sock}"\n'
        "deep = true\n"
        'ignore_backends = ["be_down"]\n'
    )
    assert check("haproxy").returncode == 0
    result = check("haproxy", "--min-up", "2")
    assert result.returncode == 1
    assert "be_up" in result.stderr
    assert check("haproxy", "--no-deep", "--min-up", "2").returncode == 0


def test_deep_closed_frontend(check: CheckRun, daemon: Haproxy) -> None:
    """--deep: a frontend that is not OPEN (disabled at run time: PAUSED) is named."""
    runtime_api(daemon.sock, "disable frontend fe_http")
    result = check(
        "haproxy", "--pidfile", str(daemon.pidfile), "--socket", str(daemon.sock), "--deep"
    )
    assert (result.returncode, result.stderr) == (1, "unhealthy: frontend fe_http is PAUSED\n")


def test_deep_socket_from_haproxy_config(check: CheckRun, daemon: Haproxy) -> None:
    """--haproxy-config: the stats socket is read from haproxy.cfg."""
    result = check(
        "haproxy", "--pidfile", str(daemon.pidfile), "--haproxy-config", str(daemon.cfg), "--deep"
    )
    assert result.returncode == 0, result.stderr


def test_deep_without_socket_is_a_config_error(
    check: CheckRun, daemon: Haproxy, tmp_path: Path
) -> None:
    """--deep with a haproxy.cfg that has no stats socket: exit 2, says what to add."""
    bare = tmp_path / "bare.cfg"
    bare.write_text("global\n    daemon\n")
    result = check(
        "haproxy", "--pidfile", str(daemon.pidfile), "--haproxy-config", str(bare), "--deep"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"ha-notify: error: {bare} has no `stats socket` line; add one or pass --socket PATH\n"
    )


def test_hanging_stats_socket_times_out(check: CheckRun, daemon: Haproxy, tmp_path: Path) -> None:
    """A stats socket that accepts and never answers: unhealthy, stats socket timed out."""
    hung = HangingSocket(tmp_path / "hung.sock")
    try:
        result = check(
            "haproxy",
            "--pidfile",
            str(daemon.pidfile),
            "--socket",
            str(hung.path),
            "--deep",
            "--timeout",  # 0.5 s was once spent listing haproxy's children on a loaded machine
            "2.5",
        )
        assert result.returncode == 1
        assert result.stderr == (f"unhealthy: stats socket timed out after 2.5 s ({hung.path})\n")
    finally:
        hung.close()


def test_missing_stats_socket(check: CheckRun, daemon: Haproxy, tmp_path: Path) -> None:
    """A stats socket path that does not exist: unhealthy (exit 1), named in the message."""
    missing = tmp_path / "nowhere.sock"
    result = check("haproxy", "--pidfile", str(daemon.pidfile), "--socket", str(missing), "--deep")
    assert (result.returncode, result.stderr) == (
        1,
        f"unhealthy: stats socket {missing} does not exist\n",
    )


def test_stats_socket_permission_denied(ns: Namespace, daemon: Haproxy, nobody_bin: Path) -> None:
    """An unprivileged user on a socket it may not open: unhealthy (exit 1), with the fix."""
    shared = Path(tempfile.mkdtemp(prefix="ha-notify-perm-", dir="/tmp"))
    try:
        shared.chmod(0o755)  # nobody may enter, not write: state tracking falls back quietly
        sock = shared / "admin.sock"
        os.link(daemon.sock, sock)  # the same haproxy socket, under a path nobody can reach
        sock.chmod(0)
        pidfile = shared / "haproxy.pid"
        shutil.copy(daemon.pidfile, pidfile)
        pidfile.chmod(0o644)
        as_nobody = CheckRun(shared, ns, exe=nobody_bin)
        args = ["haproxy", "--pidfile", str(pidfile), "--socket", str(sock), "--deep"]
        result = as_nobody(*args, user=NOBODY)
        assert result.returncode == 1
        assert result.stderr == (
            f"unhealthy: permission denied on stats socket {sock} (running as uid {NOBODY}; "
            "give this user access with `stats socket ... mode 660 group GROUP`)\n"
        )
        assert as_nobody(*args).returncode == 0  # root may: the socket itself works
    finally:
        shutil.rmtree(shared)
