"""keepalived's notify FIFO read by the watcher (``[watch] fifo``), instead of ``ha-notify fifo``.

The line handling is :mod:`ha_notify.notify.fifo`'s (open, split, parse, record and spool each state
change in FIFO order); what differs is where delivery happens: the watcher's main thread must
write the track file every round whatever an SMTP server does, so after a batch of lines is
spooled a ``ha-notify flush`` child delivers it (a fork per keepalived event, never per round).
The raw lines (``MASTER_RX_LOWER_PRI`` included) are also handed to the round's probes.
The same lock as ``ha-notify fifo`` makes the two never read one FIFO at the same time.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import queue
import subprocess
import sys
import threading
from pathlib import Path

from ha_notify.config import Config
from ha_notify.errors import HaNotifyError
from ha_notify.fsutil import locked, make_dirs
from ha_notify.notify import fifo

log = logging.getLogger(__name__)
KEEP = 1000  # raw lines kept for probes between two rounds


class FifoFeed:
    """A thread that records FIFO lines as they come and delivers them through ``flush``."""

    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.server = fifo.FifoServer(path, config)
        self.config_path = config.path
        self.lines: queue.Queue[str] = queue.Queue()
        self.raw: collections.deque[str] = collections.deque(maxlen=KEEP)
        self.ready = threading.Event()  # set once the FIFO is open (tests wait for it)

    def reconfigure(self, config: Config) -> None:
        """After SIGHUP: new channels and state_dir for the lines that follow."""
        self.server = fifo.FifoServer(self.path, config)
        self.config_path = config.path

    def start(self, state_dir: Path) -> None:
        threading.Thread(target=self._serve, args=(state_dir,), name="fifo", daemon=True).start()

    def take(self) -> tuple[str, ...]:
        """The raw lines read since the last call."""
        taken = []
        while self.raw:
            taken.append(self.raw.popleft())
        return tuple(taken)

    def _serve(self, state_dir: Path) -> None:
        # Same lock file as `ha-notify fifo` (ha_notify.fifo.serve): one reader per FIFO.
        digest = hashlib.sha1(str(self.path.absolute()).encode()).hexdigest()[:12]
        try:
            make_dirs(state_dir)
            with locked(state_dir / f"fifo-{digest}.lock"):
                fd = fifo.open_fifo(self.path)
                reader = threading.Thread(target=fifo._reader, args=(fd, self.lines), daemon=True)
                reader.start()
                log.info("reading keepalived notify FIFO %s", self.path)
                self.ready.set()
                while True:
                    self._batch([self.lines.get()])
        except (HaNotifyError, OSError) as exc:
            log.error("notify FIFO %s: %s; VRRP states come from state.json", self.path, exc)

    def _batch(self, batch: list[str]) -> None:
        while True:
            try:
                batch.append(self.lines.get_nowait())
            except queue.Empty:
                break
        self.raw.extend(batch)
        spooled = [self.server.handle(line) for line in batch]
        if any(spooled):
            self.deliver()

    def deliver(self) -> None:
        """Send what is spooled in a child, so a hung channel never stalls the watcher."""
        argv = [sys.executable, "-m", "ha_notify", "flush"]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        try:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
        except OSError as exc:
            log.error("cannot start ha-notify flush: %s; the systemd timer retries", exc)
