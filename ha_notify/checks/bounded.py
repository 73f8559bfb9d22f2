"""Reading a small file within the check's deadline, whatever sits at its path.

Two things can hold a plain ``open``/``read`` forever: a FIFO (``open`` waits for a writer)
and a hung filesystem (NFS, FUSE: the system call itself blocks). The first is answered by an
``O_NONBLOCK`` open and an ``fstat`` that refuses anything but a regular file; the second only
by reading in a helper thread and giving up at the deadline. /proc never hangs that way, so
procfs reads stay direct, and so do reads under /run (tmpfs: memory); this module is for
the pidfile and haproxy.cfg.

A read that timed out leaves its thread blocked in the kernel. Only one such thread per path
is ever left: while it is still stuck, later reads of that path fail at once instead of
starting another (a resident caller such as the watcher would otherwise pile one up per
round). ``_thread`` is built in and already loaded: no import cost on the hot path.
"""

from __future__ import annotations

import _thread
import os
import stat
from time import monotonic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TypeVar

    T = TypeVar("T")

_stuck: dict[str, object] = {}  # path -> lock of a read still blocked in the kernel
_guard = _thread.allocate_lock()


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or directory: nothing a check should read."""


def kind(mode: int) -> str:
    """What a non-regular file is, in words: ``a FIFO``, ``a directory``..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_regular(path: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of the regular file ``path``, never waiting on a FIFO.

    Raises OSError like ``open`` does, and NotRegularFile for anything but a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path} is {kind(mode)}, not a regular file")
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def call(key: str, work: Callable[[], T], deadline: float) -> T:
    """``work()`` in a helper thread; TimeoutError if it has not returned by ``deadline``.

    ``key`` names what is read (its path): while an earlier call for the same key is still
    blocked, this one raises TimeoutError at once.
    """
    with _guard:
        if key in _stuck:
            raise TimeoutError(f"an earlier read of {key} is still blocked")
    done = _thread.allocate_lock()
    done.acquire()
    box: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            box.append((True, work()))
        except BaseException as exc:  # handed back to the caller below
            box.append((False, exc))
        finally:
            done.release()
            with _guard:
                _stuck.pop(key, None)

    _thread.start_new_thread(run, ())
    left = deadline - monotonic()
    if not done.acquire(timeout=max(left, 0.0)):
        with _guard:
            if not box:  # still blocked: remember it, so no second thread joins it
                _stuck[key] = done
        if not box:
            raise TimeoutError(f"reading {key} took longer than --timeout")
    ok, value = box[0]
    if ok:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    raise value


# tmpfs on every systemd (and FHS 3) system: memory, which never hangs like NFS or FUSE can.
# Reading there needs no helper thread (100 us saved per run, where pidfiles usually live).
MEMORY_FOLDERS = ("/run/", "/var/run/", "/dev/shm/")
# Filesystems whose reads cannot block on a server or a user-space daemon.
LOCAL_TYPES = frozenset(
    [
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "f2fs",
        "jfs",
        "reiserfs",
        "zfs",
        "tmpfs",
        "ramfs",
        "overlay",
        "squashfs",
        "vfat",
        "devtmpfs",
        "proc",
        "sysfs",
    ]
)
MOUNTS_TTL = 60.0  # seconds a resident caller (the watcher) trusts its copy of the mount table
_mounts: list[tuple[float, list[tuple[str, str]]]] = []


def _mount_table() -> list[tuple[str, str]]:
    """(mount point, filesystem type), longest mount point first; read at most once a minute."""
    now = monotonic()
    if _mounts and now - _mounts[0][0] < MOUNTS_TTL:
        return _mounts[0][1]
    table = []
    for line in read_regular("/proc/self/mountinfo", 1 << 20).decode(errors="replace").splitlines():
        fields = line.split()
        if " - " in line and len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            table.append((point, line.split(" - ", 1)[1].split()[0]))
    table.sort(key=lambda row: len(row[0]), reverse=True)
    _mounts[:] = [(now, table)]
    return table


def on_local_filesystem(path: str) -> bool:
    """Whether ``path`` (absolute, no symlink at its end) lies on a filesystem that never hangs."""
    if not path.startswith("/") or "/../" in path or path.endswith("/.."):
        return False
    try:
        table = _mount_table()
    except OSError:
        return False
    for point, fstype in table:
        if path == point or path.startswith(point.rstrip("/") + "/"):
            return fstype in LOCAL_TYPES
    return False


def read_file(path: str, limit: int, deadline: float) -> bytes:
    """:func:`read_regular` bounded by ``deadline`` (a hung filesystem included).

    On memory folders and local filesystems the read is direct (a resident watcher must not
    start a thread every round); elsewhere (NFS, FUSE, a symlink that may lead there) it runs in
    a helper thread abandoned at the deadline.
    """
    if path.startswith(MEMORY_FOLDERS) and ".." not in path:
        return read_regular(path, limit)
    if on_local_filesystem(path):
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            link = True  # let the bounded path raise the real error
        if not link:
            return read_regular(path, limit)
    return call(path, lambda: read_regular(path, limit), deadline)
