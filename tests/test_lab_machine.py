"""A checklist node (lab.machine) is a fresh machine that leaves nothing on this one: what a
step writes to /etc, /var, /opt, /usr/local, /run or /dev, and the node's sysctls, stay in
the node; /usr is read-only there; halting it ends every process it started."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import netns
from lab.machine import Machine

HOST_DEVLOG = os.path.lexists("/dev/log")  # before any node binds its own
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)")


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    """One booted node in a network namespace of its own."""
    ns = f"hntest-{secrets.token_hex(3)}"
    netns.create_namespace(ns)
    node = Machine("lbtest", 1, ns, tmp_path / "lbtest")
    try:
        node.boot({"ca_file": ""})
        yield node
    finally:
        node.halt()
        netns.delete_namespace(ns)


def test_what_a_node_writes_stays_in_the_node(machine: Machine) -> None:
    """Files in the overlaid folders, /dev/log, a user, and ip_nonlocal_bind stay in the node;
    writing to /usr fails there instead of changing this machine."""
    mark = f"lab-leak-{secrets.token_hex(4)}"
    root_bind = Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text()
    script = "\n".join(
        [f"touch /{top}/{mark}" for top in ("etc", "var", "opt", "usr/local", "run")]
        + [
            "test -S /dev/log",
            f"useradd --system --no-create-home {mark[:20]}",
            "sysctl -qw net.ipv4.ip_nonlocal_bind=1",
            f"! touch /usr/{mark} 2>/dev/null",
        ]
    )
    done = machine.shell(script)
    assert done.returncode == 0, done.stderr
    for top in ("etc", "var", "opt", "usr/local", "run", "usr"):
        assert not Path(f"/{top}/{mark}").exists()
    assert mark[:20] not in Path("/etc/passwd").read_text()
    assert Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text() == root_bind
    assert os.path.lexists("/dev/log") == HOST_DEVLOG


def _with(mark: str) -> list[str]:
    """Pids (as this machine sees them) whose command line holds ``mark``."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if mark.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def test_halting_a_node_ends_its_processes(machine: Machine) -> None:
    """A daemon the node's shell leaves running (setsid, detached) ends with the node."""
    mark = f"lab-orphan-{secrets.token_hex(4)}"
    done = machine.shell(f"setsid sh -c 'sleep 600; : {mark}' </dev/null >/dev/null 2>&1 &")
    assert done.returncode == 0, done.stderr
    assert _with(mark)
    machine.halt()
    assert _with(mark) == []


BOOT_AND_HOLD = """
import sys
from pathlib import Path
from lab.machine import Machine
node = Machine("lbkill", 1, sys.argv[1], Path(sys.argv[2]))
node.boot({"ca_file": ""})
node.shell("setsid sh -c 'sleep 600; : %s' </dev/null >/dev/null 2>&1 &")
print(node.pid, flush=True)
sys.stdin.read()
"""


def test_a_node_dies_with_a_sigkilled_lab(tmp_path: Path) -> None:
    """SIGKILL the lab: its nodes shut down by themselves (unshare ignores the SIGTERM it
    gets, so they used to run on, haproxy, keepalived and all, until a later lab's sweep)."""
    mark = f"lab-orphan-{secrets.token_hex(4)}"
    ns = f"hntest-{secrets.token_hex(3)}"
    netns.create_namespace(ns)
    try:
        with subprocess.Popen(
            [sys.executable, "-c", BOOT_AND_HOLD % mark, ns, str(tmp_path / "lbkill")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        ) as lab:
            assert lab.stdout is not None
            init = int(lab.stdout.readline())
            assert _with(mark)
            lab.kill()
        while Path(f"/proc/{init}").exists() or _with(mark):
            time.sleep(0.1)  # awaiting the node's shutdown (no wall-clock limit)
    finally:
        netns.delete_namespace(ns)
