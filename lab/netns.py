"""Network namespaces for the lab: create, enter, sweep and remove them.

Every namespace is named ``halab-<run id>-<role>``. A run registers itself in
``/run/halab/<run id>.pid`` *before* it creates anything, so a later run can tell a leftover
(its owner is dead) from a namespace that another lab or test run is using right now.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

PREFIX = "halab-"
REGISTRY = Path("/run/halab")
TMP_ROOT = Path("/tmp")
KEEPALIVED_RUN = Path("/run/keepalived")
_NAME = re.compile(r"^halab-([0-9a-f]{6})-[a-z0-9]+$")
_FOLDER = re.compile(r"^halab-([0-9a-f]{6})-")
CLONE_NEWNET = 0x40000000
KEPT = "KEPT"  # a run folder holding this file was kept (--keep): no sweep removes it


class LabError(Exception):
    """The lab could not do what it needs; the message says what and why."""


class Unsupported(LabError):
    """This machine cannot run the lab (not root, no namespaces, a tool missing)."""


def run(cmd: list[str], *, check: bool = True, timeout: float = 30.0) -> str:
    """Run a short command; return its stdout, raise LabError with its stderr on failure."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(cmd)}: no answer within {timeout:g}s") from exc
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def ns_cmd(ns: str, cmd: list[str]) -> list[str]:
    """The command line that runs ``cmd`` inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *cmd]


def _proc_start_time(pid: int) -> Optional[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(rid: str) -> bool:
    try:
        pid_text, start = (REGISTRY / f"{rid}.pid").read_text().split()
    except (OSError, ValueError):
        return False
    return _proc_start_time(int(pid_text)) == start


def register(rid: str) -> None:
    """Record that this process owns run ``rid`` (pid and start time, against pid reuse)."""
    REGISTRY.mkdir(mode=0o755, exist_ok=True)
    pid = os.getpid()
    (REGISTRY / f"{rid}.pid").write_text(f"{pid} {_proc_start_time(pid)}\n")


def unregister(rid: str) -> None:
    (REGISTRY / f"{rid}.pid").unlink(missing_ok=True)


def list_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def kill_namespace_processes(ns: str, grace: float = 2.0) -> None:
    """SIGTERM every process in ``ns``, then SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in run(["ip", "netns", "pids", ns], check=False).split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not run(["ip", "netns", "pids", ns], check=False).split():
                return
            time.sleep(0.05)


def delete_namespace(ns: str) -> None:
    kill_namespace_processes(ns)
    run(["ip", "netns", "del", ns], check=False)


def sweep() -> list[str]:
    """Remove what dead lab runs left behind: namespaces, temp folders, registry entries."""
    removed: list[str] = []
    for ns in list_namespaces():
        m = _NAME.match(ns)
        if m and not _owner_alive(m.group(1)):
            delete_namespace(ns)
            removed.append(ns)
    # Temp folders, and keepalived --namespace's pid folders in /run/keepalived/<namespace>/
    # (removed by keepalived only when it exits cleanly).
    for folder in (*TMP_ROOT.glob(f"{PREFIX}*"), *KEEPALIVED_RUN.glob(f"{PREFIX}*")):
        m = _FOLDER.match(folder.name)
        if (folder / KEPT).exists():
            continue  # a --keep run's folder: the operator removes it
        if m and not _owner_alive(m.group(1)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    if REGISTRY.is_dir():
        for entry in REGISTRY.glob("*.pid"):
            if not _owner_alive(entry.stem):
                entry.unlink(missing_ok=True)
    return removed


def create_namespace(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def probe_support(rid: str) -> None:
    """Raise Unsupported unless this process can create a network namespace."""
    if os.geteuid() != 0:
        raise Unsupported("the lab needs root (network namespaces, keepalived, port 80)")
    for tool in ("ip", "haproxy", "keepalived", "unshare", "runuser", "useradd"):
        if shutil.which(tool) is None:
            raise Unsupported(f"{tool} is not installed (scripts/lab.sh installs what is missing)")
    probe = f"{PREFIX}{rid}-probe"
    try:
        run(["ip", "netns", "add", probe])
    except LabError as exc:
        raise Unsupported(f"network namespaces are unavailable here: {exc}") from exc
    run(["ip", "netns", "del", probe], check=False)


def addresses(ns: str, ifname: str) -> list[str]:
    """IPv4 addresses on ``ifname`` inside ``ns``."""
    out = run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", ifname], check=False)
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for the lab's children: SIGTERM them if the lab dies (even SIGKILL)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class SocketFactory:
    """Makes TCP sockets inside a namespace: one worker thread lives there (setns is per
    thread), so the lab process itself can be a client without leaving the root namespace."""

    def __init__(self, ns: str) -> None:
        self._pool = ThreadPoolExecutor(
            1, thread_name_prefix=f"in-{ns}", initializer=_enter, initargs=(ns,)
        )
        self._lock = threading.Lock()

    def tcp(self) -> socket.socket:
        with self._lock:
            return self._pool.submit(socket.socket, socket.AF_INET, socket.SOCK_STREAM).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
