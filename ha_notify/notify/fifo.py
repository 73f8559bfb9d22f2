"""``ha-notify fifo``: keepalived's notify FIFO, read in order, forever.

A reader thread drains the FIFO into a queue so keepalived never blocks on a slow SMTP
server; the main thread records and spools each line in FIFO order, then delivers. On SIGTERM
keepalived is about to write its final STOP lines (it signals the FIFO script first), so the
reader keeps going for a short grace period before it exits. A lock makes a new reader (after
a reload) wait for the old one instead of sharing the FIFO with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import signal
import stat
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Callable, Optional

from ha_notify.config import Config
from ha_notify.errors import ExitCode, SpoolError, UsageError
from ha_notify.event import FifoSignal, parse_fifo_line, parse_fifo_signal
from ha_notify.fsutil import locked, make_dirs
from ha_notify.notify.engine import Notifier, StateChange

log = logging.getLogger(__name__)
GRACE = 2.0  # seconds to keep reading after SIGTERM once the FIFO is quiet
GRACE_MAX = 5.0  # and never longer than this
IDLE = 10.0  # seconds between housekeeping runs (flapping, due retries) when quiet
MAX_LINE = 4096
WAKE = "\0wake"  # put on the queue by the signal handler; never a FIFO line


def open_fifo(path: Path) -> int:
    """Open (creating if needed) the FIFO read-write: we never see EOF when a writer leaves."""
    try:
        try:
            st = path.stat()
        except FileNotFoundError:
            os.mkfifo(path, 0o600)
            st = path.stat()
        if not stat.S_ISFIFO(st.st_mode):
            raise UsageError(f"{path} is not a FIFO (keepalived's notify_fifo creates one)")
        return os.open(path, os.O_RDWR)
    except OSError as exc:
        raise UsageError(f"notify FIFO {path}: {exc.strerror or exc}") from exc


def _reader(fd: int, lines: queue.Queue[str]) -> None:
    buffer = b""
    discarding = False  # inside an over-long line: drop bytes up to its end
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:
            log.error("reading the notify FIFO failed: %s", exc)
            return
        if not chunk:  # cannot happen with O_RDWR, but never spin
            time.sleep(0.1)
            continue
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            if discarding:  # the tail of an over-long line, never a line of its own
                discarding = False
            elif len(raw) > MAX_LINE:
                log.error("notify FIFO line longer than %d bytes; skipped", MAX_LINE)
            else:
                lines.put(raw.decode("utf-8", errors="replace"))
        if len(buffer) > MAX_LINE:
            if not discarding:
                log.error("notify FIFO line longer than %d bytes; skipped", MAX_LINE)
            discarding = True
            buffer = b""


_said: dict[str, float] = {}  # instance -> when the split brain was last logged
SAY_EVERY = 60.0  # keepalived repeats the line once per advert: log it once a minute


def log_split_brain(signal: FifoSignal) -> None:
    """The default split-brain hook: say it in syslog (the watcher raises the alert)."""
    now = time.monotonic()
    if now - _said.get(signal.name, -SAY_EVERY) < SAY_EVERY:
        return
    _said[signal.name] = now
    log.warning(
        "split brain: keepalived reports %s %s %s (priority %s): another node is MASTER too; "
        "check that VRRP (IP protocol 112) passes between the nodes",
        signal.kind,
        signal.name,
        signal.signal,
        "-" if signal.priority is None else signal.priority,
    )


class FifoServer:
    def __init__(
        self,
        path: Path,
        config: Config,
        on_signal: Callable[[FifoSignal], None] = log_split_brain,
    ) -> None:
        self.path = path
        self.config = config
        self.on_signal = on_signal
        self.notifier = Notifier(config)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stop_at: Optional[float] = None

    def _on_term(self, signum: int, frame: Optional[FrameType]) -> None:
        del frame
        if self.stop_at is None:
            log.info("signal %d: reading final lines for up to %gs", signum, GRACE_MAX)
            self.stop_at = time.monotonic() + GRACE_MAX
            self.lines.put(WAKE)  # the main loop may be waiting on the queue

    def handle(self, line: str) -> set[tuple[str, str]]:
        """Record one line; the (channel, instance) groups it spooled deliveries for."""
        try:
            parsed = parse_fifo_line(line)
        except UsageError as exc:
            log.warning("%s; skipped", exc)
            return set()
        if parsed is None:
            signal_line = parse_fifo_signal(line)
            if signal_line is not None:
                self.on_signal(signal_line)
            elif line.strip():
                log.info("notify FIFO: ignored %r", line.strip()[:120])
            return set()
        req = StateChange(parsed.state, parsed.name, parsed.kind, parsed.priority)
        try:
            mine, notes, _ = self.notifier.record(req, self.deadline())
        except SpoolError as exc:
            notes = tuple(self.notifier.send_without_spool(req, exc, self.deadline()).lines())
            mine = []
        for note in notes:
            log.warning("%s", note)
        return {d.group for d in mine}

    def deadline(self) -> float:
        """This round's deadline: [general] deadline from now, or the end of the grace after
        SIGTERM, whichever comes first."""
        deadline = time.monotonic() + self.config.general.deadline
        return deadline if self.stop_at is None else min(deadline, self.stop_at)

    def deliver(self, mine: set[tuple[str, str]]) -> None:
        """Send what was just spooled (and what is due) within the deadline, or, after
        SIGTERM, within what is left of the grace: the rest stays pending."""
        # A SIGTERM during delivery cancels it (the rest stays spooled) and starts the grace.
        self.notifier.deliver(mine, self.deadline(), lambda sig: self._on_term(sig, None))

    def record_rest(self) -> None:
        """Before exiting: record and spool every line already read, whatever the relay did."""
        left = [line for line in self._drain(0.0) if line != WAKE]
        for line in left:
            self.handle(line)
        if left:
            log.info("recorded %d final FIFO lines; they stay spooled for the next run", len(left))

    def serve(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_term)
        fd = open_fifo(self.path)
        threading.Thread(target=_reader, args=(fd, self.lines), daemon=True).start()
        log.info("reading keepalived notify FIFO %s", self.path)
        last_housekeeping = time.monotonic()
        while True:
            if self.stop_at is None:
                timeout = IDLE
            else:
                timeout = max(0.0, min(GRACE, self.stop_at - time.monotonic()))
            raw = self._drain(timeout)
            batch = [line for line in raw if line != WAKE]
            mine: set[tuple[str, str]] = set()
            for line in batch:
                mine |= self.handle(line)
            now = time.monotonic()
            if mine or now - last_housekeeping >= IDLE:
                last_housekeeping = now
                try:
                    self.notifier.adopt(self.deadline())
                    self.notifier.settle_flapping(self.deadline())
                except (SpoolError, OSError) as exc:
                    log.error("flapping check failed: %s", exc)
                self.deliver(mine)
            # After SIGTERM: go on until the FIFO has been quiet for GRACE, or GRACE_MAX passed.
            if self.stop_at is not None and (not raw or time.monotonic() >= self.stop_at):
                self.record_rest()
                return ExitCode.OK

    def _drain(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` for a line, then take every line already waiting."""
        try:
            batch = [self.lines.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                batch.append(self.lines.get_nowait())
            except queue.Empty:
                return batch


def serve(path: Path, config: Config) -> int:
    """Run the FIFO reader until SIGTERM (plus grace); one reader per FIFO at a time."""
    lock_dir = config.general.state_dir
    try:
        make_dirs(lock_dir)
    except OSError as exc:
        raise SpoolError(f"state_dir {lock_dir}: cannot create it: {exc.strerror}") from exc
    digest = hashlib.sha1(str(path.absolute()).encode()).hexdigest()[:12]
    with locked(lock_dir / f"fifo-{digest}.lock") as _:
        return FifoServer(path, config).serve()
