"""The sd_notify socket of a ``Type=notify`` unit in a checklist node (see lab.units).

The socket stays open while the service runs, as systemd's does: READY=1 ends a start, and
a reload that the daemon announces (RELOADING=1, as haproxy's master does before it
re-executes) ends with READY=1 and a STATUS that says whether it worked. haproxy's reload is
a ``kill -USR2`` that returns at once; whether the new config loaded (a VIP it cannot bind)
shows only after it: newer haproxy says ``STATUS=Reload failed!``, 2.6 logs ``Loading
failure!`` (lab.units reads both).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Optional

ANNOUNCE = 2.0  # seconds a daemon has to say RELOADING=1 after ExecReload, if it ever does


class Notify:
    """One unit's NOTIFY_SOCKET, bound at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def _next(self, proc: subprocess.Popen[bytes], deadline: float) -> Optional[dict[str, str]]:
        """The next message as ``{KEY: value}``; None once ``proc`` died or time is up."""
        while proc.poll() is None and time.monotonic() < deadline:
            self.sock.settimeout(min(0.2, max(0.01, deadline - time.monotonic())))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            lines = data.decode("utf-8", "replace").splitlines()
            return dict(line.split("=", 1) for line in lines if "=" in line)
        return None

    def ready(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        """Whether ``proc`` said READY=1 within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(proc, deadline)
            if message is None:
                return False
            if message.get("READY") == "1":
                return True

    def drain(self) -> None:
        """Forget what was said meanwhile (STATUS updates, WATCHDOG pings)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(4096)
        except BlockingIOError:
            pass

    def reloaded(self, proc: subprocess.Popen[bytes], timeout: float) -> str:
        """After ExecReload: "" when the daemon never announced a reload or finished it
        well; else why it failed (its STATUS, or that it never said READY=1 again)."""
        announced = time.monotonic() + ANNOUNCE
        while True:
            message = self._next(proc, announced)
            if message is None:
                if proc.poll() is not None:
                    return "the service died while reloading"
                return ""  # no RELOADING=1: a daemon that reloads without saying so
            if message.get("RELOADING") == "1":
                break
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(proc, deadline)
            if message is None:
                return "it never said READY=1 after RELOADING=1"
            if message.get("READY") == "1":
                status = message.get("STATUS", "")
                return status if "fail" in status.lower() else ""

    def close(self) -> None:
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
