"""`check haproxy` against real haproxy 2.6: no blind spots, no unbounded waits.

Each test runs its own haproxy in its own pid namespace (tests/haproxy_helpers.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import check_fixtures
from tests.haproxy_helpers import (
    HAPROXY,
    NOBODY,
    CheckRun,
    Haproxy,
    Namespace,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.root

# Fixtures shared with the other haproxy check tests.
ns, check, world, down = (
    check_fixtures.ns,
    check_fixtures.check,
    check_fixtures.world,
    check_fixtures.down,
)


def hold_sessions(path: Path, count: int) -> list[socket.socket]:
    """``count`` interactive CLI sessions that stay open (an operator's socat)."""
    held = []
    for _ in range(count):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(path))
        conn.sendall(b"prompt\n")
        conn.recv(10)  # the prompt: haproxy accepted this one
        held.append(conn)
    return held


def queue(path: Path, count: int) -> list[socket.socket]:
    """``count`` connections waiting in the socket's queue, never accepted."""
    waiting = []
    for _ in range(count):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.setblocking(False)
        try:
            conn.connect(str(path))
        except BlockingIOError:
            conn.close()
            break
        waiting.append(conn)
    return waiting


def test_busy_stats_socket_is_named_and_retried(
    check: CheckRun, ns: Namespace, tmp_path: Path
) -> None:
    """Every CLI slot held by idle sessions: named as busy; freed during the wait: healthy."""
    proxy = Haproxy(ns, tmp_path).start()
    held: list[socket.socket] = []
    try:
        args = ["haproxy", "--pidfile", str(proxy.pidfile), "--socket", str(proxy.sock), "--deep"]
        held = hold_sessions(proxy.sock, 10)
        queued = check(*args, "--timeout", "0.5")
        assert queued.returncode == 1
        assert "all CLI slots in use: give the check its own `stats socket`" in queued.stderr
        assert "10 sessions open" in queued.stderr
        held += queue(proxy.sock, 50)  # the queue is full now: connect() says EAGAIN
        full = check(*args, "--timeout", "0.5")
        assert full.returncode == 1
        assert full.stderr == (
            f"unhealthy: stats socket {proxy.sock}: all CLI slots in use: give the check its "
            "own `stats socket` (its connection queue is full)\n"
        )
        late = subprocess.Popen(
            check.argv(*args, "--timeout", "60"), env=check.env(), stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: retrying(late.pid), "the check to retry the full queue")
        for conn in held:
            conn.close()
        held = []
        _, err = late.communicate(timeout=120)
        assert (late.returncode, err) == (0, "")
    finally:
        for conn in held:
            conn.close()
        proxy.close()


def retrying(nsenter_pid: int) -> bool:
    """Whether the check under ``nsenter`` is asleep between two connection attempts."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            wchan = Path(f"/proc/{entry}/wchan").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == nsenter_pid and "nanosleep" in wchan:
            return True
    return False


ENV_CONFIG = """\
global
    stats socket "${{CHECK_SOCK}}" mode 600 level user
defaults
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe_http
    mode http
    bind 127.0.0.1:{port}
"""


def test_stats_socket_from_an_environment_variable(
    check: CheckRun, ns: Namespace, world: Path, nobody_bin: Path
) -> None:
    """`stats socket "${CHECK_SOCK}"`: from the check's environment, else haproxy's, else named."""
    cfg = world / "env.cfg"
    cfg.write_text(ENV_CONFIG.format(port=free_port()))
    cfg.chmod(0o644)
    sock, pidfile = world / "env.sock", world / "env.pid"
    env = dict(os.environ, CHECK_SOCK=str(sock))
    started = ns.run(HAPROXY, "-D", "-f", str(cfg), "-p", str(pidfile), env=env)
    assert started.returncode == 0, started.stderr
    wait_for(sock.exists, "the stats socket")
    args = ["haproxy", "--pidfile", str(pidfile), "--haproxy-config", str(cfg), "--deep"]
    assert "CHECK_SOCK" not in os.environ
    from_haproxy = check(*args)  # root reads /proc/PID/environ
    assert (from_haproxy.returncode, from_haproxy.stderr) == (0, "")
    os.environ["CHECK_SOCK"] = str(sock)
    try:
        assert check(*args).returncode == 0
    finally:
        del os.environ["CHECK_SOCK"]
    pidfile.chmod(0o644)
    as_nobody = CheckRun(world, ns, exe=nobody_bin)
    unset = as_nobody(*args, user=NOBODY)
    assert unset.returncode == 2
    assert unset.stderr == (
        f"ha-notify: error: {cfg}: the stats socket names $CHECK_SOCK, which is set neither in "
        "the check's environment nor (readably) in haproxy's; set CHECK_SOCK for the check or "
        "pass --socket PATH\n"
    )


def test_master_worker_zombie_worker_without_w_flag(
    check: CheckRun, ns: Namespace, tmp_path: Path
) -> None:
    """`master-worker` in haproxy.cfg, no -W: a master whose worker is a zombie is unhealthy."""
    proxy = Haproxy(ns, tmp_path, master_worker=True)
    started = ns.run(HAPROXY, "-D", "-f", str(proxy.cfg), "-p", str(proxy.pidfile))
    assert started.returncode == 0, started.stderr
    proxy.wait_ready()
    try:
        master = proxy.pids()[0]
        (worker,) = proxy.workers()
        args = ["haproxy", "--pidfile", str(proxy.pidfile)]
        assert "-W" not in ns.run("cat", f"/proc/{master}/cmdline").stdout.split("\0")
        assert check(*args).returncode == 0
        ns.kill(master, signal.SIGSTOP)
        try:
            ns.kill(worker, signal.SIGKILL)
            wait_for(lambda: ns.state(worker) == "Z", "the worker to become a zombie")
            expected = (
                f"haproxy master pid {master} has no live worker (zombie worker pid {worker})"
            )
            zombie = check(*args)
            assert (zombie.returncode, zombie.stderr) == (
                1,
                f"unhealthy: pidfile {proxy.pidfile}: {expected}\n",
            )
            by_scan = check("haproxy", "--no-pidfile")
            assert (by_scan.returncode, by_scan.stderr) == (1, f"unhealthy: {expected}\n")
        finally:
            ns.kill(master, signal.SIGCONT)
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("keyword", "environ", "user", "healthy"),
    [
        ("master-worker", "", NOBODY, False),  # haproxy's environment unreadable: the keyword
        ("daemon", "", NOBODY, True),
        ("daemon", "HAPROXY_MWORKER=1", 0, False),  # readable: haproxy's own mark decides
        ("master-worker", "HAPROXY_X=1", 0, True),
    ],
)
def test_master_by_config_keyword_or_environment(
    ns: Namespace,
    world: Path,
    nobody_bin: Path,
    keyword: str,
    environ: str,
    user: int,
    healthy: bool,
) -> None:
    """A lone haproxy is a master (with no worker) by its -f config's keyword or its environment."""
    cfg = world / "lone.cfg"
    cfg.write_text(f"global\n    {keyword}\n")
    cfg.chmod(0o644)
    lone = world / "haproxy"
    shutil.copy(os.path.realpath("/usr/bin/python3"), lone)  # comm: haproxy
    code = "import time; time.sleep(600)"
    proc = ns.popen("env", environ or "X=1", str(lone), "-c", code, "-f", str(cfg))
    try:
        pid = int(wait_for(lambda: lone_pid(ns), "the lone haproxy"))  # type: ignore[call-overload]
        check = CheckRun(world, ns, exe=nobody_bin)
        result = check("haproxy", "--no-pidfile", user=user or None)
        if healthy:
            assert (result.returncode, result.stderr) == (0, "")
        else:
            assert (result.returncode, result.stderr) == (
                1,
                f"unhealthy: haproxy master pid {pid} has no live worker\n",
            )
    finally:
        proc.kill()
        proc.wait()


def lone_pid(ns: Namespace) -> int:
    """The namespace pid of the process called haproxy once it runs python's code."""
    found = ns.run(
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do "
        '[ "$(cat $p/comm 2>/dev/null)" = haproxy ] && echo ${p#/proc/}; done',
    )
    pids = found.stdout.split()
    return int(pids[0]) if pids else 0


def test_fifo_pidfile_and_config_do_not_hold_the_check(
    check: CheckRun, down: Haproxy, tmp_path: Path
) -> None:
    """A FIFO at the pidfile or haproxy.cfg path: a prompt answer naming it, not a hang."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    pid = check("haproxy", "--pidfile", str(fifo), "--timeout", "30")
    assert (pid.returncode, pid.stderr) == (
        1,
        f"unhealthy: pidfile {fifo} is a FIFO, not a regular file: point --pidfile at the file "
        "haproxy writes (its -p option)\n",
    )
    cfg = check(
        "haproxy",
        "--pidfile",
        str(down.pidfile),
        "--haproxy-config",
        str(fifo),
        "--deep",
        "--timeout",
        "30",
    )
    assert (cfg.returncode, cfg.stderr) == (
        2,
        f"ha-notify: error: cannot read haproxy config {fifo}: {fifo} is a FIFO, not a regular "
        "file\n",
    )
    own = check("haproxy", "--config", str(fifo), "--timeout", "30")
    assert (own.returncode, own.stderr) == (
        2,
        f"ha-notify: error: {fifo}: is a FIFO; expected the TOML config file\n",
    )
    assert time.monotonic() - start < 25  # far below --timeout: nothing waited on the FIFO


def test_hidepid_is_named_with_its_fix(
    ns: Namespace, down: Haproxy, world: Path, nobody_bin: Path
) -> None:
    """/proc hidepid=2: the scan says haproxy is hidden and how to fix it; a pidfile works."""
    remount = ns.run("mount", "-o", "remount,hidepid=2", "/proc")
    assert remount.returncode == 0, remount.stderr
    pidfile = world / "haproxy.pid"
    shutil.copy(down.pidfile, pidfile)
    pidfile.chmod(0o644)
    as_nobody = CheckRun(world, ns, exe=nobody_bin)
    hidden = as_nobody("haproxy", "--no-pidfile", user=NOBODY)
    assert hidden.returncode == 1
    assert re.fullmatch(
        r"unhealthy: no haproxy process is visible: /proc is mounted with hidepid=(2|invisible), "
        rf"which hides other users' processes from uid {NOBODY}; add gid=GROUP \(a group of this "
        r"user\) to /proc's mount options, or give the check a pidfile this user can read "
        r"\(--pidfile\)\n",
        hidden.stderr,
    ), hidden.stderr
    by_pidfile = as_nobody("haproxy", "--pidfile", str(pidfile), user=NOBODY)
    assert by_pidfile.returncode == 0, by_pidfile.stderr
    assert by_pidfile.stderr == ""
    conf = world / "keepalived.conf"
    conf.write_text(
        "global_defs {\n    enable_script_security\n    script_user nobody\n}\n"
        f'vrrp_script chk {{\n    script "{nobody_bin} check haproxy --pidfile {pidfile}"\n}}\n'
    )
    doctor = subprocess.run(
        ns.command(
            sys.executable, "-m", "ha_notify", "doctor", "--keepalived-config", str(conf), "--json"
        ),
        capture_output=True,
        text=True,
        env=as_nobody.env(),
        timeout=120,
    )
    (finding,) = [f for f in json.loads(doctor.stdout) if f["check"] == "proc visibility"]
    assert finding["status"] == "warn"
    assert "nobody cannot see haproxy's processes" in finding["detail"]
    assert "gid=nogroup" in finding["fix"] and "--pidfile" in finding["fix"]
