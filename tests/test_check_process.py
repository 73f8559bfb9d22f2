"""`ha-notify check process NAME`: pidfile first, else an exact /proc name scan."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.haproxy_helpers import CheckRun, wait_for


@pytest.fixture
def daemon_copy(tmp_path: Path) -> Path:
    """A copy of sleep under a name no other process on the machine has."""
    path = tmp_path / f"hn{uuid.uuid4().hex[:10]}"
    shutil.copy("/bin/sleep", path)
    return path


@pytest.fixture
def running(daemon_copy: Path) -> Iterator[subprocess.Popen[bytes]]:
    """That copy, running."""
    proc = subprocess.Popen([str(daemon_copy), "600"])
    wait_for(lambda: Path(f"/proc/{proc.pid}/comm").read_text() == daemon_copy.name + "\n", "exec")
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def check(tmp_path: Path) -> CheckRun:
    """Runs `ha-notify check` in a fresh interpreter with a test config and run dir."""
    return CheckRun(tmp_path)


def test_running_process_is_healthy(check: CheckRun, daemon_copy: Path, running: object) -> None:
    """A live process with that exact name is found by the scan."""
    result = check("process", daemon_copy.name)
    assert (result.returncode, result.stderr) == (0, "")


def test_missing_process_is_unhealthy(check: CheckRun, daemon_copy: Path) -> None:
    """No process with that name: exit 1 and one line saying so."""
    result = check("process", daemon_copy.name)
    assert result.returncode == 1
    assert result.stderr == f"unhealthy: no {daemon_copy.name} process is running\n"


def test_prefix_is_not_a_match(check: CheckRun, daemon_copy: Path, running: object) -> None:
    """The name must match exactly, like killall: a prefix does not count."""
    assert check("process", daemon_copy.name[:-1]).returncode == 1


def test_zombie_is_unhealthy(check: CheckRun, daemon_copy: Path) -> None:
    """A zombie with that name is not a live process."""
    proc = subprocess.Popen([str(daemon_copy), "0"])
    try:
        wait_for(lambda: Path(f"/proc/{proc.pid}/stat").read_text().split()[2] == "Z", "zombie")
        result = check("process", daemon_copy.name)
        assert result.returncode == 1
        assert result.stderr == (
            f"unhealthy: only zombie {daemon_copy.name} processes: pid {proc.pid}\n"
        )
    finally:
        proc.wait()


def test_pidfile_of_live_process(
    check: CheckRun, daemon_copy: Path, running: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """--pidfile naming the live process is healthy."""
    pidfile = tmp_path / "d.pid"
    pidfile.write_text(f"{running.pid}\n")
    assert check("process", daemon_copy.name, "--pidfile", str(pidfile)).returncode == 0


def test_stale_pidfile(check: CheckRun, daemon_copy: Path, running: object, tmp_path: Path) -> None:
    """A pidfile naming another program is stale even if the daemon runs elsewhere."""
    pidfile = tmp_path / "d.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    result = check("process", daemon_copy.name, "--pidfile", str(pidfile))
    assert result.returncode == 1
    assert "(stale pidfile)" in result.stderr
    assert f"pid {os.getpid()} is " in result.stderr


def test_missing_pidfile(check: CheckRun, daemon_copy: Path, tmp_path: Path) -> None:
    """An explicit pidfile that does not exist: unhealthy, named."""
    result = check("process", daemon_copy.name, "--pidfile", str(tmp_path / "no.pid"))
    assert result.returncode == 1
    assert f"pidfile {tmp_path / 'no.pid'} does not exist" in result.stderr


def test_empty_pidfile_falls_back_to_scan(
    check: CheckRun, daemon_copy: Path, running: object, tmp_path: Path
) -> None:
    """An empty pidfile (being rewritten during a reload) falls back to the scan."""
    pidfile = tmp_path / "d.pid"
    pidfile.write_text("")
    assert check("process", daemon_copy.name, "--pidfile", str(pidfile)).returncode == 0


def test_pidfile_from_config(
    check: CheckRun, daemon_copy: Path, running: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """[checks.process.NAME] pidfile is used when no --pidfile is given."""
    pidfile = tmp_path / "d.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    check.config.write_text(f'[checks.process.{daemon_copy.name}]\npidfile = "{pidfile}"\n')
    assert check("process", daemon_copy.name).returncode == 1
    assert check("process", daemon_copy.name, "--no-pidfile").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "check process needs exactly one process name"),
        (("a", "b"), "check process needs exactly one process name"),
        (("x", "--socket", "/s"), "check process: unknown option --socket"),
    ],
)
def test_process_usage_errors(check: CheckRun, args: tuple[str, ...], message: str) -> None:
    """Wrong arguments to check process exit 2 with a message."""
    result = check("process", *args)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(("length", "rewritten"), [(15, True), (16, False), (16, True), (14, True)])
def test_names_match_exactly_like_killall(
    check: CheckRun, tmp_path: Path, length: int, rewritten: bool
) -> None:
    """For names around the kernel's 15-character cut, the check agrees with killall -0."""
    name = f"hn{uuid.uuid4().hex}"[:length]
    program = tmp_path / name
    shutil.copy("/bin/sleep", program)
    argv0 = "worker: serving" if rewritten else str(program)
    proc = subprocess.Popen(["bash", "-c", f'exec -a "{argv0}" {program} 600'])
    try:
        wait_for(lambda: Path(f"/proc/{proc.pid}/comm").read_text() == name[:15] + "\n", "exec")
        candidates = {name, name[:15], name[:15] + "x", name[:14], name + "y"}
        verdicts = {}
        for candidate in sorted(candidates):
            killall = subprocess.run(["killall", "-0", candidate], capture_output=True)
            ours = check("process", candidate, "--no-pidfile")
            verdicts[candidate] = (killall.returncode, ours.returncode)
        assert all(theirs == ours for theirs, ours in verdicts.values()), verdicts
        assert verdicts[name] == (0, 0)
    finally:
        proc.kill()
        proc.wait()
