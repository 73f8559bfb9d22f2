"""Reading processes straight from /proc, the way ``killall`` does, with no psutil.

Every read uses ``os.open``/``os.read`` (no buffered file objects): a scan of 3,000
processes is 3,000 tiny reads, and the per-read overhead is what the scan costs.
"""

from __future__ import annotations

import os
from time import monotonic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

PROC = "/proc"
COMM_LEN = 15  # the kernel keeps TASK_COMM_LEN - 1 bytes of a process name in comm

# /proc/PID/stat state letters of a process that will never run again.
DEAD_STATES = frozenset("ZXx")


class Proc:
    """One process as /proc/PID/stat shows it."""

    __slots__ = ("comm", "pid", "ppid", "state")

    def __init__(self, pid: int, comm: str, state: str, ppid: int) -> None:
        self.pid = pid
        self.comm = comm
        self.state = state
        self.ppid = ppid

    @property
    def alive(self) -> bool:
        """True unless the process is a zombie (or being reaped)."""
        return self.state not in DEAD_STATES

    def __repr__(self) -> str:
        return f"Proc(pid={self.pid}, comm={self.comm!r}, state={self.state!r}, ppid={self.ppid})"


def _read(path: str, size: int = 4096) -> Optional[bytes]:
    """Contents of a small /proc file, or None when the process is gone or hidden."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat(pid: int) -> Optional[Proc]:
    """The process ``pid``, or None if there is no such process."""
    data = _read(f"{PROC}/{pid}/stat")
    if not data:
        return None
    # "PID (COMM) S PPID ...": COMM may hold spaces and parentheses, so split at the last ")".
    left = data.find(b"(")
    right = data.rfind(b")")
    if left < 0 or right < left:
        return None
    fields = data[right + 2 :].split(None, 2)
    if len(fields) < 2:
        return None
    comm = data[left + 1 : right].decode("utf-8", "replace")
    return Proc(pid, comm, fields[0].decode("ascii", "replace"), int(fields[1]))


def cmdline(pid: int) -> list[str]:
    """The argument vector of ``pid`` (empty for a zombie, a kernel thread or a gone pid)."""
    data = _read(f"{PROC}/{pid}/cmdline", 65536)
    if not data:
        return []
    return data.rstrip(b"\0").decode("utf-8", "replace").split("\0")


def matches(proc: Proc, name: str) -> bool:
    """Whether ``proc`` is called ``name``, with killall's rule for names the kernel cut."""
    if len(name) < COMM_LEN:
        return proc.comm == name
    if proc.comm != name[:COMM_LEN]:
        return False
    argv = cmdline(proc.pid)
    return bool(argv) and os.path.basename(argv[0]) == name


def children(pid: int) -> Optional[list[Proc]]:
    """Direct children of ``pid`` from /proc/PID/task/TID/children.

    None when the kernel does not offer that file (``CONFIG_PROC_CHILDREN`` off); the caller
    then falls back to a scan.
    """
    try:
        tids = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return []
    found: list[Proc] = []
    for tid in tids:
        data = _read(f"{PROC}/{pid}/task/{tid}/children", 65536)
        if data is None:
            if not os.path.exists(f"{PROC}/{pid}/task/{tid}/children"):
                return None
            continue
        for child in data.split():
            proc = stat(int(child))
            if proc is not None:
                found.append(proc)
    return found


def scan(name: str, deadline: Optional[float] = None) -> list[Proc]:
    """Every process called ``name`` (zombies included), found by reading each comm.

    Reading ``comm`` first and ``stat`` only for a match keeps the scan about as cheap as
    killall's. Raises TimeoutError when ``deadline`` (a ``time.monotonic()`` value) passes.
    """
    want = name[:COMM_LEN].encode() + b"\n"
    own = os.getpid()
    found: list[Proc] = []
    for count, entry in enumerate(os.listdir(PROC)):
        if not entry.isdigit():
            continue
        if deadline is not None and count % 256 == 0 and monotonic() > deadline:
            raise TimeoutError("the /proc scan took longer than --timeout")
        if _read(f"{PROC}/{entry}/comm", 64) != want:
            continue
        pid = int(entry)
        if pid == own:
            continue
        proc = stat(pid)
        if proc is not None and matches(proc, name):
            found.append(proc)
    return found


def read_pidfile(path: str) -> list[int]:
    """Pids listed in a pidfile (one per line, as haproxy writes them).

    Raises FileNotFoundError / PermissionError like ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    pids: list[int] = []
    for word in data.split():
        if word.isdigit() and int(word) > 0:
            pids.append(int(word))
    return pids
