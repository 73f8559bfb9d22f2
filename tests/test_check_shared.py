"""`check haproxy` against real haproxy 2.6: what the pair shares is reported, not failed over.

Each test runs its own haproxy in its own pid namespace (tests/haproxy_helpers.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests import check_fixtures
from tests.haproxy_helpers import (
    REPO,
    CheckRun,
    Haproxy,
    Namespace,
    free_port,
    runtime_api,
    server_status,
    wait_for,
)

pytestmark = pytest.mark.root
SHARED = "reported, not failed over (both nodes share it): "

# Fixtures and helpers shared with the other haproxy check tests.
ns, check, world, down = (
    check_fixtures.ns,
    check_fixtures.check,
    check_fixtures.world,
    check_fixtures.down,
)
syslog_lines = check_fixtures.syslog_lines


def test_shared_backend_down_is_reported_not_failed(
    check: CheckRun, down: Haproxy, tmp_path: Path
) -> None:
    """A backend down (on both nodes) keeps the check healthy, said on stderr and syslog once."""
    args = ["haproxy", "--pidfile", str(down.pidfile), "--socket", str(down.sock), "--deep"]
    problem = "backend be_down has 0 of 1 servers UP, needs 1 (dead1 DOWN)"
    lines = syslog_lines(check, tmp_path, 3, *args)
    (line,) = lines
    assert line.startswith("<30>ha-notify[")  # daemon.info: healthy
    assert f": healthy: haproxy pid {down.pids()[0]} is running; runtime API OK" in line
    assert line.endswith(f"; {SHARED}{problem}")
    result = check(*args)
    assert (result.returncode, result.stderr) == (0, f"{SHARED}{problem}\n")
    check.config.write_text(f'[general]\nstate_dir = "{tmp_path / "state"}"\n')
    status = subprocess.run(
        [sys.executable, "-m", "ha_notify", "status"],
        capture_output=True,
        text=True,
        env=check.env(),
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert f"  healthy   check haproxy --pidfile {down.pidfile}" in status.stdout
    assert status.stdout.rstrip().endswith(f"{SHARED}{problem}")
    check.config.write_text("[checks.haproxy]\nmin_up = 1\n")  # the operator asks for it
    failed = check(*args)
    assert (failed.returncode, failed.stderr) == (1, f"unhealthy: {problem}\n")


def reference_check_lines() -> list[str]:
    """Every `ha-notify check haproxy` command of contrib/keepalived, the README and docs/."""
    found = []
    for conf in sorted((REPO / "contrib" / "keepalived").glob("*.conf")):
        found += re.findall(r'script "(\S*ha-notify check haproxy[^"]*)"', conf.read_text())
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        text = page.read_text()
        found += re.findall(r'script "(\S*ha-notify check haproxy[^"]*)"', text)
        found += re.findall(r"^\$ (ha-notify check haproxy.*?)(?:\s+#.*)?$", text, re.M)
    return found


def test_every_example_uses_the_dedicated_check_socket() -> None:
    """Examples that name a socket name the check's own, which haproxy.cfg defines."""
    lines = reference_check_lines()
    assert len(lines) >= 5
    sockets = {w for line in lines for w in re.findall(r"--socket[ =](\S+)", line)}
    assert sockets == {"/run/haproxy/check.sock"}
    cfg = (REPO / "contrib" / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*stats socket /run/haproxy/check\.sock .*level user", cfg, re.M)
    assert "--min-up" not in "".join(
        re.findall(
            r'script "([^"]*)"', (REPO / "contrib/keepalived/keepalived-node1.conf").read_text()
        )
    )


def test_reference_check_lines_stay_healthy_with_a_shared_backend_down(
    ns: Namespace, tmp_path: Path, check: CheckRun
) -> None:
    """The contrib and README check lines, run verbatim: healthy while be_down is DOWN."""
    assert ns.run("mount", "-t", "tmpfs", "tmpfs", "/run").returncode == 0
    assert ns.run("mkdir", "-p", "/run/haproxy").returncode == 0
    proxy = Haproxy(
        ns, tmp_path, master_worker=True, down_backend=True, pidfile=Path("/run/haproxy.pid")
    )
    proxy.sock = Path("/run/haproxy/check.sock")
    text = proxy.cfg.read_text().replace(str(tmp_path / "haproxy.sock"), str(proxy.sock))
    proxy.cfg.write_text(text)
    assert ns.run("mount", "--bind", str(proxy.cfg), "/etc/haproxy/haproxy.cfg").returncode == 0
    try:
        result = ns.run(*proxy.argv())
        assert result.returncode == 0, result.stderr

        inside = Path(f"/proc/{ns.pid}/root/run/haproxy/check.sock")  # the namespace's /run
        wait_for(lambda: server_status(inside, "be_down", "dead1") == "DOWN", "be_down DOWN")
        for line in reference_check_lines():
            if "--min-up" in line:  # an operator's explicit choice to fail on backends
                continue
            argv = shlex.split(line)
            assert argv[0].endswith("ha-notify") and argv[1] == "check"
            result = check(*argv[2:])
            assert result.returncode == 0, (line, result.stderr)
            if "--deep" in argv:
                assert result.stderr.startswith(SHARED + "backend be_down"), line
    finally:
        proxy.close()


def test_weight_zero_and_drain_judged_alike(check: CheckRun, ns: Namespace, tmp_path: Path) -> None:
    """All servers at weight 0 or in DRAIN: haproxy shows the BACKEND DOWN, and so does the check."""
    proxy = Haproxy(ns, tmp_path).start()
    try:
        args = ["haproxy", "--pidfile", str(proxy.pidfile), "--socket", str(proxy.sock), "--deep"]
        runtime_api(proxy.sock, "set weight be_up/web1 0")
        weight = check(*args, "--min-up", "1")
        assert (weight.returncode, weight.stderr) == (
            1,
            "unhealthy: backend be_up has 0 of 1 servers UP, needs 1 (web1 UP weight 0)\n",
        )
        runtime_api(proxy.sock, "set weight be_up/web1 1")
        assert check(*args, "--min-up", "1").returncode == 0
        runtime_api(proxy.sock, "set server be_up/web1 state drain")
        drain = check(*args, "--min-up", "1")
        assert (drain.returncode, drain.stderr) == (
            1,
            "unhealthy: backend be_up has 0 of 1 servers UP, needs 1 (web1 DRAIN)\n",
        )
        assert check(*args).returncode == 0  # reported only, by default
    finally:
        proxy.close()


MANY = """\
backend b{i}
    mode http
    server s{i} 127.0.0.1:{port} check inter 100ms rise 1 fall 1
"""


def test_two_hundred_backends_down_one_bounded_line_once(
    check: CheckRun, ns: Namespace, tmp_path: Path
) -> None:
    """200 backends down: a summarised line (`and 195 more`), logged once for three runs."""
    proxy = Haproxy(ns, tmp_path)
    port = free_port()
    extra = "".join(MANY.format(i=i, port=port) for i in range(200))
    proxy.cfg.write_text(proxy.cfg.read_text() + extra)
    try:
        proxy.start()
        wait_for(lambda: server_status(proxy.sock, "b199", "s199") == "DOWN", "b199 DOWN")
        args = [
            "haproxy",
            "--pidfile",
            str(proxy.pidfile),
            "--socket",
            str(proxy.sock),
            "--deep",
            "--min-up",
            "1",
        ]
        (line,) = syslog_lines(check, tmp_path, 3, *args)
        assert line.endswith("; and 195 more")
        assert len(line) < 1000
        result = check(*args)
        assert result.returncode == 1
        assert result.stderr.count("backend b") == 5
    finally:
        proxy.close()


IN_PROCESS = """
import json, os, sys, threading
from ha_notify.checks import haproxy
table = json.loads(sys.argv[1])
fds = len(os.listdir("/proc/self/fd"))
threads = threading.active_count()
results = []
for _ in range(50):
    result = haproxy.check(haproxy.options_from_table(table))
    results.append([result.healthy, result.reason, list(result.notes)])
failing = haproxy.check(haproxy.options_from_table(dict(table, min_up=1)))
print(json.dumps({
    "leaked_fds": len(os.listdir("/proc/self/fd")) - fds,
    "threads": threading.active_count() - threads,
    "verdicts": sorted({r[0] for r in results}),
    "notes": results[-1][2],
    "failing": [failing.healthy, failing.reason],
}))
"""


def test_in_process_rounds_for_the_watcher(ns: Namespace, down: Haproxy, tmp_path: Path) -> None:
    """check(options_from_table(...)) 50 times: one connection a round, no fd or thread left."""
    table = {"pidfile": str(down.pidfile), "socket": str(down.sock), "deep": True}
    trace = tmp_path / "connect.trace"
    run = ns.run(
        *("strace", "-f", "-e", "trace=connect", "-o", str(trace)),
        *(sys.executable, "-c", IN_PROCESS, json.dumps(table)),
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    connects = [ln for ln in trace.read_text().splitlines() if str(down.sock) in ln]
    assert len(connects) == 50 + 1  # the rounds and the failing one: one connection each
    assert (report["leaked_fds"], report["threads"]) == (0, 0)
    assert report["verdicts"] == [True]
    assert report["notes"] == ["backend be_down has 0 of 1 servers UP, needs 1 (dead1 DOWN)"]
    assert report["failing"] == [False, report["notes"][0]]
