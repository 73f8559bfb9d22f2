"""Files the watcher rewrites every round: keepalived's ``track_file`` and the metrics file.

A reader sees the old content or the new one, never a mix: the content goes to a temp file in
the same folder, then ``rename`` replaces the target (keepalived's inotify then reads it). No
fsync: both files describe *now* and are rewritten next round (``/run`` is tmpfs anyway).
A folder that is full, read-only or gone is logged once when the trouble starts and once when
it ends, never every round; the write is retried every round. When the file cannot be replaced
but the old one has the new content's length (the track file's "0"/"1"), the new value is
written over it in place: a full /run must not leave a stale "healthy" for keepalived.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)
HEALTHY, UNHEALTHY = b"0\n", b"1\n"
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW


class AtomicFile:
    """One file replaced whole each round; :meth:`write` never raises for an OS error."""

    def __init__(self, path: Path, what: str, mode: int = 0o644) -> None:
        self.path = path
        self.what = what
        self.mode = mode
        self.tmp = path.parent / f".{path.name}.tmp"
        self.trouble = ""  # the error of the current episode, "" when writes succeed
        self.failures = 0
        umask = process_umask()
        # fchmod only when the umask would take bits off ``mode``: one syscall less a round.
        self.chmod = umask is None or bool(mode & umask)

    def write(self, data: bytes) -> bool:
        """Replace the file with ``data``; False (logged once per episode) when it failed."""
        try:
            self._write(data)
        except OSError as exc:
            self.failures += 1
            message = exc.strerror or str(exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message += " (free space in that file system)"
            elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                message += f" (the watcher runs as uid {os.geteuid()}; make the folder writable)"
            if self._overwrite(data):
                message += "; the value was written over the old file in place"
            if message != self.trouble:
                log.error("cannot write %s %s: %s; retrying", self.what, self.path, message)
                self.trouble = message
            return message.endswith(" in place")
        if self.trouble:
            what, failures = self.what, self.failures
            log.warning("%s %s written again (after %d failed rounds)", what, self.path, failures)
            self.trouble = ""
            self.failures = 0
        return True

    def _write(self, data: bytes) -> None:
        try:
            fd = os.open(self.tmp, FLAGS, self.mode)
        except FileNotFoundError:
            # The folder is gone (a tmpfs /run after boot, an operator's rm): make it again.
            os.makedirs(self.path.parent, mode=0o755, exist_ok=True)
            fd = os.open(self.tmp, FLAGS, self.mode)
        try:
            if self.chmod:  # whatever the umask: keepalived and node_exporter read it
                os.fchmod(fd, self.mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.close(fd)
            _unlink(self.tmp)
            raise
        os.close(fd)
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            _unlink(self.tmp)
            raise

    def _overwrite(self, data: bytes) -> bool:
        """Write ``data`` over the existing file, in place, when it has the same length (no
        new block needed: it works on a full file system); True if it was."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size != len(data):
                return False
            return os.pwrite(fd, data, 0) == len(data)
        except OSError:
            return False
        finally:
            os.close(fd)


def process_umask() -> Optional[int]:
    """The umask, read without changing it (``os.umask`` sets it, racing other threads);
    None when ``/proc/self/status`` does not say (Linux < 4.7)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class TrackFile(AtomicFile):
    """keepalived's ``track_file``: ``0`` healthy, ``1`` not (weight 0: non-zero is FAULT)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "track_file")

    def publish(self, healthy: bool) -> bool:
        return self.write(HEALTHY if healthy else UNHEALTHY)
