"""What ends the watcher's wait between rounds early: a signal, or a haproxy process dying.

Signals (SIGTERM, SIGINT, SIGHUP) are noted by a handler and wake the wait through Python's
wakeup fd; the loop acts on them between rounds, never in the middle of one. haproxy's
processes named in its pidfile are followed with pidfds (Linux >= 5.3): when one exits the
next round starts at once instead of up to ``interval`` later, which is most of the time from
a crash to the track file saying 1. Each process wakes the loop once; without pidfds (older
kernels, no pidfile) the loop simply waits for the interval.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from types import FrameType
from typing import Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
MAX_PIDS = 64  # a pidfile of a daemon-mode haproxy with nbproc; never more fds than this


class Waker:
    """Signals noted for the loop, and pidfds of the processes in ``pidfile``."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self.pidfile: Optional[str] = None
        self.fds: dict[int, int] = {}  # pid -> pidfd
        self.fired: set[int] = set()  # pids that already woke us: never followed again
        self.fresh = True  # the pidfile must be read again

    def install(self) -> None:
        signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        for sig in SIGNALS:
            signal.signal(sig, self._note)

    def _note(self, signum: int, frame: Optional[FrameType]) -> None:
        """Note a signal once: one reload covers every SIGHUP that came before it, so a
        storm of them queues one reload, never a backlog that SIGTERM would wait behind."""
        del frame
        if signum not in self.pending:
            self.pending.append(signum)

    def follow(self, pidfile: Optional[str]) -> None:
        """Open pidfds for the pids in ``pidfile``, when none is followed yet or one exited
        (a master-worker reload keeps the master's pid; a daemon-mode reload ends the old
        pids, which wakes us and brings us here again)."""
        if pidfile != self.pidfile:
            self.pidfile, self.fresh = pidfile, True
        if self.pidfile is None or not hasattr(os, "pidfd_open"):
            return
        if self.fds and not self.fresh:
            return
        self.fresh = False
        try:
            with open(self.pidfile, "rb") as handle:
                words = handle.read(4096).split()
        except OSError:
            words = []
        pids = {int(w) for w in words[:MAX_PIDS] if w.isdigit()}
        for pid in set(self.fds) - pids:
            os.close(self.fds.pop(pid))
        for pid in pids - set(self.fds) - self.fired:
            with contextlib.suppress(OSError):
                self.fds[pid] = os.pidfd_open(pid)

    def wait(self, timeout: float) -> Optional[int]:
        """Wait up to ``timeout``; the signal that came, if any (None: time, or a death)."""
        if not self.pending:
            ready, _, _ = select.select([self._read, *self.fds.values()], [], [], max(0.0, timeout))
            for fd in ready:
                if fd is self._read:
                    with contextlib.suppress(OSError):
                        self._read.recv(512)
                    continue
                pid = next(p for p, f in self.fds.items() if f == fd)
                os.close(self.fds.pop(pid))
                self.fired.add(pid)
                self.fresh = True
        if len(self.fired) > 4 * MAX_PIDS:  # pids are reused eventually: forget old ones
            self.fired = set(list(self.fired)[-MAX_PIDS:])
        for stop in (signal.SIGTERM, signal.SIGINT):  # stopping comes before any reload
            if stop in self.pending:
                self.pending.remove(stop)
                return stop
        return self.pending.pop(0) if self.pending else None
