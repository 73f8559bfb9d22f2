"""Crash-safe file writes, folders and advisory locks shared by the state store and the spool.

Ownership: keepalived runs ha-notify as its script user, and an operator sometimes runs it by
hand as root. Everything root creates here takes the owner of the folder it is created in,
so a manual run never leaves files that the script user cannot open.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

# OSErrors that say "not now", not "this file is bad" (EACCES: a chmod/chown in flight, or
# a file the operator must fix): the file stays where it is for the next run.
TRANSIENT = frozenset(
    {errno.EIO, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EINTR, errno.EAGAIN}
    | {errno.EACCES, errno.EPERM}
)


def transient(exc: OSError) -> bool:
    """Whether reading a file failed for a reason that may pass (see TRANSIENT)."""
    return exc.errno in TRANSIENT


def why_unreadable(path: Path, exc: OSError) -> str:
    """What to tell the operator about a file that cannot be read now (a transient error):
    left in place, and for EACCES whose it is and the chown that fixes it."""
    why = f"cannot be read now ({exc.strerror or exc}); left in place for the next run"
    if isinstance(exc, PermissionError):
        owner = "?"
        with contextlib.suppress(OSError):
            owner = str(path.lstat().st_uid)
        why += f" (owner uid {owner}: chown it to state_dir's owner, keepalived's script_user)"
    return why


def instant(value: object) -> float:
    """A stored time (seconds since the epoch): finite and not negative, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a time in seconds, found {value!r:.40}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a finite time >= 0, found {value!r}")
    return float(value)


def _adopt(target: Union[int, str, Path], folder: Path) -> None:
    """As root, give ``target`` (a path or an open fd) the owner of ``folder``."""
    if os.geteuid() != 0:
        return
    st = os.stat(folder)
    if st.st_uid == 0 and st.st_gid == 0:
        return
    if isinstance(target, int):
        os.fchown(target, st.st_uid, st.st_gid)
    else:
        os.chown(target, st.st_uid, st.st_gid)


def make_dirs(*folders: Path) -> None:
    """Create private folders (0700 whatever the umask), each owned like its parent."""
    for folder in folders:
        missing = []
        at = folder
        while not at.exists():
            missing.append(at)
            at = at.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new.mkdir(mode=0o700)
                os.chmod(new, 0o700)
                _adopt(new, new.parent)


def open_lock(path: Path) -> int:
    """Open (creating, owned like its folder) a lock file; the caller flocks and closes it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _adopt(fd, path.parent)
    except OSError:
        os.close(fd)
        raise
    return fd


def atomic_write(path: Path, text: str, durable: bool = True) -> None:
    """Write, fsync, rename, fsync the folder: a reader sees the old file or the new one.

    ``durable=False`` skips both fsyncs (still atomic for readers, but a power loss may
    bring back the old content): for bookkeeping that may be lost, such as a retry count,
    where waiting for the disk would push a run past its deadline.
    """
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        _adopt(fd, path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_text(path: Path, nofollow: bool = False, limit: Optional[int] = None) -> str:
    """The text of a regular file; a FIFO, device or folder in its place raises OSError at
    once instead of blocking the reader (a foreign file in state_dir must not hang a run).
    ``nofollow``: a symlink raises OSError (ELOOP); ``limit``: a file of more bytes raises
    OSError (EFBIG) before any is read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if limit is not None and st.st_size > limit:
            raise OSError(errno.EFBIG, f"{st.st_size} bytes, more than {limit} (too big)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path, timeout: Optional[float] = None) -> Iterator[bool]:
    """Hold an exclusive flock on ``path``; yields False if not had within ``timeout``.

    ``timeout=None`` waits as long as it takes; the lock dies with the process, so a killed
    holder never leaves it behind.
    """
    fd = open_lock(path)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            got = True
        else:
            end = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        got = False
                        break
                    time.sleep(0.01)
        yield got
    finally:
        os.close(fd)
