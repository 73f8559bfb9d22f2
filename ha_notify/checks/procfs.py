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
    """Whether ``proc`` is called ``name``, exactly as psmisc's ``killall`` decides.

    A ``comm`` shorter than 15 characters, or a ``name`` shorter than 15, must equal ``name``.
    A 15-character ``comm`` may be cut: killall then looks through the command line for the
    first argument whose base name starts with ``comm`` (skipping an interpreter such as
    ``sh``); if there is one, ``name`` must equal that base name, else (the argument vector
    was rewritten) ``name``'s first 15 characters must equal ``comm``.
    """
    if len(proc.comm) != COMM_LEN or len(name) < COMM_LEN:
        return proc.comm == name
    long_name = full_name(proc)
    if long_name is not None:
        return name == long_name
    return name[:COMM_LEN] == proc.comm


def full_name(proc: Proc) -> Optional[str]:
    """killall's "long name" of a process whose comm was cut, or None if argv has none."""
    for arg in cmdline(proc.pid):
        if not arg:
            return None
        base = arg.rsplit("/", 1)[-1]
        if base[:COMM_LEN] == proc.comm:
            return base
    return None


def children(pid: int, deadline: Optional[float] = None) -> Optional[list[Proc]]:
    """Direct children of ``pid`` from /proc/PID/task/TID/children.

    None when the kernel does not offer that file (``CONFIG_PROC_CHILDREN`` off); the caller
    then falls back to a scan. Raises TimeoutError when ``deadline`` passes.
    """
    try:
        tids = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return []
    found: list[Proc] = []
    for tid in tids:
        _in_time(deadline, "listing the children of a master")
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


def _in_time(deadline: Optional[float], what: str) -> None:
    if deadline is not None and monotonic() > deadline:
        raise TimeoutError(f"{what} took longer than --timeout")


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
        if count % 256 == 0:
            _in_time(deadline, "the /proc scan")
        if _read(f"{PROC}/{entry}/comm", 64) != want:
            continue
        pid = int(entry)
        if pid == own:
            continue
        proc = stat(pid)
        if proc is not None and matches(proc, name):
            found.append(proc)
    return found


def read_pidfile(path: str, deadline: Optional[float] = None) -> list[int]:
    """Pids listed in a pidfile (one per line, as haproxy writes them).

    Raises FileNotFoundError / PermissionError like ``open`` does, NotRegularFile for a FIFO
    or anything else that is not a regular file, and TimeoutError when reading it (a hung
    filesystem) outlasts ``deadline``.
    """
    from ha_notify.checks import bounded

    if deadline is None:
        data = bounded.read_regular(path, 4096)
    else:
        data = bounded.read_file(path, 4096, deadline)
    pids: list[int] = []
    for word in data.split():
        if word.isdigit() and int(word) > 0:
            pids.append(int(word))
    return pids


def exists(pid: int) -> bool:
    """Whether a process ``pid`` exists, even one /proc hides from us (``kill(pid, 0)``)."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, it is just not ours
    except OSError:
        return False
    return True


def proc_hiding() -> Optional[tuple[str, Optional[int]]]:
    """/proc's ``hidepid=`` option and ``gid=`` (the group exempt from it), or None.

    Reads /proc/self/mountinfo, where the last /proc mount is the one on top (a container's
    over the host's); None when it hides nothing (no option, or ``hidepid=0``).
    """
    data = _read(f"{PROC}/self/mountinfo", 1 << 20) or b""
    options: list[str] = []
    for line in data.decode("utf-8", "replace").splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and fields[4] == PROC and right.split():
            options = right.split()[-1].split(",")
    hide = next((o for o in options if o.startswith("hidepid=")), None)
    if hide is None or hide in ("hidepid=0", "hidepid=off"):
        return None
    gid = next((o[4:] for o in options if o.startswith("gid=")), "")
    return hide, int(gid) if gid.isdigit() else None


def hidden_from(uid: int, gids: tuple[int, ...]) -> Optional[str]:
    """The ``hidepid=`` option when it hides other users' processes from this user, or None."""
    hiding = proc_hiding()
    if hiding is None or uid == 0:
        return None
    option, exempt = hiding
    return None if exempt is not None and exempt in gids else option


def hidepid() -> Optional[str]:
    """:func:`hidden_from` for this process (called on the unhealthy path only)."""
    return hidden_from(os.geteuid(), (os.getegid(), *os.getgroups()))
