"""Delivery of what the watcher spooled, in a ``ha-notify flush`` child, never in a round.

A pair alert is spooled in-process (write, fsync, rename: milliseconds); sending it may take
up to ``[general] deadline`` against a slow SMTP server, which the watcher's rounds must never
wait for. :meth:`Flusher.kick` starts a child when none runs; a kick while one runs asks for
one more run after it (what it spooled meanwhile may have missed the running one), so a burst
of alerts costs at most two children, never one per alert.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


class Flusher:
    """Runs ``ha-notify flush --config PATH`` children one at a time, on demand."""

    def __init__(self, config_path: Optional[Path]) -> None:
        self.argv = [sys.executable, "-m", "ha_notify", "flush"]
        if config_path is not None:
            self.argv += ["--config", str(config_path)]
        self._lock = threading.Lock()
        self._wanted = False
        self._running = False
        self.runs = 0  # children started so far (tests and the log read it)
        self.idle = threading.Event()  # set while no child runs
        self.idle.set()

    def kick(self) -> None:
        """Deliver what is spooled now, in the background."""
        with self._lock:
            self._wanted = True
            if self._running:
                return
            self._running = True
            self.idle.clear()
        threading.Thread(target=self._run, name="flush", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._wanted:
                    self._running = False
                    self.idle.set()
                    return
                self._wanted = False
                self.runs += 1
            try:
                done = subprocess.run(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    check=False,
                )
            except OSError as exc:
                log.error("cannot start ha-notify flush: %s; the systemd timer retries", exc)
                continue
            if done.returncode not in (0, 1):
                log.error("ha-notify flush exited %d; the systemd timer retries", done.returncode)
