"""The state store: last state and sequence number per instance, and flapping detection.

``state.json`` is a cache of what the spool proves: the event file is written first (one
rename), ``state.json`` after it. A kill in between, a lost or damaged store, or a store that
cannot be written (full disk) is repaired from the spool's newest event for the instance, so
a sequence number is never reused and "previous" never lies.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from ha_notify.errors import Backlog, LockBusy, SpoolError
from ha_notify.event import FLAPPING, TRANSITION, Event, Transition
from ha_notify.fsutil import atomic_write, instant, locked, make_dirs, read_text
from ha_notify.notify.quarantine import Quarantine

log = logging.getLogger(__name__)
SUPPRESSED = "suppressed"  # recorded, summarised later; no message of its own
HISTORY = 200
T = TypeVar("T")
Adopter = Callable[[dict[str, Any], Optional[float], Optional[float]], bool]


@dataclass(frozen=True)
class Recorded:
    """What the store says about a new state: previous, sequence number, what to send."""

    previous: Optional[str]
    seq: int
    subject: str
    transitions: tuple[Transition, ...] = ()
    warning: str = ""  # set when state.json could not be written (the spool holds the truth)


@dataclass(frozen=True)
class Settled:
    """An instance whose flapping has stopped: its final state and what happened meanwhile."""

    key: str
    state: str
    seq: int
    transitions: tuple[Transition, ...]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat()


def _transitions(rows: list[dict[str, Any]]) -> tuple[Transition, ...]:
    return tuple(Transition(r["state"], r.get("previous"), r["seq"], _iso(r["ts"])) for r in rows)


def _row(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("state"), str)
        and isinstance(row.get("seq"), int)
        and _time(row.get("ts"))
    )


def _time(value: Any) -> bool:
    try:
        instant(value)
    except ValueError:
        return False
    return True


def check_entry(entry: Any) -> str:
    """Why ``entry`` is not a valid store entry ("" if it is)."""
    if not isinstance(entry, dict):
        return f"expected an object, found {type(entry).__name__}"
    checks: tuple[tuple[str, Callable[[Any], bool]], ...] = (
        ("state", lambda v: v is None or isinstance(v, str)),
        ("seq", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
        ("since", _time),
        ("flapping_since", lambda v: v is None or _time(v)),
        ("history", lambda v: isinstance(v, list) and all(_row(r) for r in v)),
        ("flap_rows", lambda v: isinstance(v, list) and all(_row(r) for r in v)),
        ("adopted", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)),
    )
    for name, ok in checks:
        if name in entry and not ok(entry[name]):
            return f"{name} has the wrong type ({entry[name]!r:.40})"
    return ""


class StateStore:
    """``state.json`` under ``state_dir``, read and written under one flock."""

    def __init__(self, state_dir: Path, flap_threshold: int = 5, flap_window: float = 120.0):
        self.dir = state_dir
        self.file = state_dir / "state.json"
        self.lock = state_dir / "state.lock"
        self.flap_threshold = flap_threshold
        self.flap_window = flap_window
        self.quarantine = Quarantine(state_dir / "spool" / "quarantine")
        # Called first under the lock with the entries read: numbers what waits in the inbox
        # (see inbox.py; set by the Notifier) and saves the store itself. Arguments: the
        # entries, when to stop (monotonic), the newest process start to take (wall clock);
        # returns whether nothing of that was left behind.
        self.adopter: Optional[Adopter] = None

    def _busy(self, timeout: Optional[float]) -> LockBusy:
        return LockBusy(
            f"state_dir {self.dir}: {self.lock.name} is held by another process "
            f"(waited {timeout or 0:g}s)"
        )

    def _behind(self) -> Backlog:
        folder = self.dir / "inbox"
        try:
            waiting = sum(1 for n in os.listdir(folder) if n.endswith(".json"))
        except OSError:
            waiting = 0
        return Backlog(
            f"state_dir {self.dir}: {waiting} older events queued in {folder} are not "
            "numbered yet (out of time), so this one must wait behind them",
            waiting,
        )

    def _held(
        self, until: Optional[float] = None, upto: Optional[float] = None
    ) -> tuple[dict[str, Any], bool]:
        """Under the lock: the entries after the inbox's events were numbered (those started
        by ``upto``, until ``until``), and whether none of those is left."""
        data = self._read(repair=True)
        done = True
        if self.adopter is not None:
            done = self.adopter(data, until, upto)
        return data, done

    @staticmethod
    def _end(timeout: Optional[float]) -> Optional[float]:
        """When a lock wait of ``timeout`` started now ends (monotonic; None: never)."""
        return None if timeout is None else time.monotonic() + timeout

    def _ensure(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise SpoolError(f"state_dir {self.dir} is not a directory")
        try:
            make_dirs(self.dir)
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot create it: {exc.strerror}") from exc

    def _read(self, repair: bool = False) -> dict[str, Any]:
        """Every valid entry; damage is logged (and, under the lock, set aside) never raised."""
        try:
            data = json.loads(read_text(self.file))
        except FileNotFoundError:
            return {}
        except (ValueError, OSError, RecursionError) as exc:
            data, why = None, f"unreadable ({exc})"
        else:
            why = "" if isinstance(data, dict) else f"not an object ({type(data).__name__})"
        if why:
            # A damaged store must not block alerts: start over, loudly, from the spool.
            log.error("state file %s is %s; starting a new one from the spool", self.file, why)
            if repair:
                self.quarantine.put(self.file, f"damaged state file: {why}")
            return {}
        assert isinstance(data, dict)
        good = {}
        for key, entry in data.items():
            problem = check_entry(entry)
            if problem:
                log.error(
                    "state file %s: entry %s is damaged (%s); reset: its sequence continues "
                    "from the spool",
                    self.file,
                    key,
                    problem,
                )
            else:
                good[key] = entry
        return good

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write(self.file, json.dumps(data, ensure_ascii=False, sort_keys=True))

    def snapshot(self) -> dict[str, Any]:
        """Everything known per instance key (for ``status`` and metrics)."""
        return self._read()

    def _history(self, entry: dict[str, Any], now: float) -> list[dict[str, Any]]:
        return [r for r in entry.get("history", []) if now - r["ts"] <= self.flap_window]

    def _quiet(self, entry: dict[str, Any], now: float) -> bool:
        """Flapping, and no change for a whole window: time for the "stable again" summary."""
        if entry.get("flapping_since") is None:
            return False
        return now - float(entry.get("since", now)) >= self.flap_window

    def decide(self, entry: dict[str, Any], state: str, now: float) -> str:
        """What a new ``state`` becomes: a transition, the flapping summary, or suppressed.

        Settling comes first: after a quiet window the instance is no longer flapping, so the
        first change after it is delivered at once. A repeat of the same state is no change.
        """
        flapping = entry.get("flapping_since") is not None and not self._quiet(entry, now)
        repeat = entry.get("state") == state
        if flapping:
            return SUPPRESSED
        if not repeat and len(self._history(entry, now)) + 1 > self.flap_threshold:
            return FLAPPING
        return TRANSITION

    def record(
        self,
        key: str,
        state: str,
        then: Callable[[Recorded], T],
        now: Optional[float] = None,
        timeout: Optional[float] = None,
        latest: Callable[[str], Optional[Event]] = lambda key: None,
        on_settled: Optional[Callable[[Settled], Any]] = None,
        upto: Optional[float] = None,
    ) -> tuple[Recorded, T]:
        """Record ``state`` for ``key`` and run ``then`` (spooling) under the same lock.

        The sequence number and previous state continue from whichever is newer: the store
        or ``latest(key)``, the spool's newest event for the instance. ``then`` writes the
        event before the store is written, so a kill in between is repaired next time.
        Inbox events are numbered first; with ``upto`` (when this change's process started,
        wall clock) those of processes started later come after it. LockBusy if older inbox
        events could not all be numbered in time (this one must then queue behind them).
        """
        now = time.time() if now is None else now
        self._ensure()
        end = self._end(timeout)
        try:
            with locked(self.lock, timeout) as got:
                if not got:
                    raise self._busy(timeout)
                data, done = self._held(end, upto)
                if not done:
                    raise self._behind()
                entry = data.setdefault(key, {})
                result = self.apply(key, entry, state, now, latest(key), on_settled)
                spooled = then(result)
                if upto is not None and self.adopter is not None:
                    try:  # later arrivals, after this event (which is spooled: never raise)
                        self.adopter(data, end, None)
                    except (SpoolError, OSError) as exc:
                        log.error("queued events left in the inbox: %s", exc)
                try:
                    self._write(data)
                except OSError as exc:
                    warning = (
                        f"state file {self.file} could not be written ({exc}); the event is "
                        "spooled and the next run takes its state from the spool"
                    )
                    log.error("%s", warning)
                    result = Recorded(result.previous, result.seq, result.subject, (), warning)
                return result, spooled
        except LockBusy:
            raise
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot record state: {exc}") from exc

    def numbered(
        self,
        key: str,
        then: Callable[[int], T],
        latest: Callable[[str], Optional[Event]],
        timeout: Optional[float] = None,
    ) -> T:
        """Run ``then(seq)`` under the store's lock, ``seq`` following ``latest(key)``: for
        events that are not state changes (pair alerts), so a number is never given twice."""
        self._ensure()
        end = self._end(timeout)
        try:
            with locked(self.lock, timeout) as got:
                if not got:
                    raise self._busy(timeout)
                if not self._held(end)[1]:
                    raise self._behind()
                newest = latest(key)
                return then((newest.seq if newest is not None else 0) + 1)
        except LockBusy:
            raise
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot number {key}: {exc}") from exc

    def adopt(self, timeout: Optional[float] = None) -> bool:
        """Take the lock only to number what waits in the inbox; False if the lock was busy
        (its holder numbers them)."""
        self._ensure()
        end = self._end(timeout)
        try:
            with locked(self.lock, timeout) as got:
                if got:
                    self._held(end)
                return got
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot number queued events: {exc}") from exc

    def save(self, data: dict[str, Any]) -> None:
        """Write ``data`` (under the lock); raises OSError."""
        self._write(data)

    def apply(
        self,
        key: str,
        entry: dict[str, Any],
        state: str,
        now: float,
        newest: Optional[Event],
        on_settled: Optional[Callable[[Settled], Any]] = None,
    ) -> Recorded:
        """Under the lock: ``state`` applied to ``entry`` (repaired from the spool's
        ``newest`` event, settled first if its flapping has ended)."""
        self._repair(key, entry, newest)
        if self._quiet(entry, now):
            quiet = self._settle_entry(key, entry)
            if on_settled is not None:
                on_settled(quiet)
        return self._apply(entry, state, now)

    def _repair(self, key: str, entry: dict[str, Any], newest: Optional[Event]) -> None:
        if newest is None or newest.seq <= int(entry.get("seq", 0)):
            return
        if "seq" in entry:
            log.warning(
                "%s: the store says #%s but the spool holds #%d (%s): continuing from the spool",
                key,
                entry["seq"],
                newest.seq,
                newest.state,
            )
        entry.update(state=newest.state, seq=newest.seq)

    def _apply(self, entry: dict[str, Any], state: str, now: float) -> Recorded:
        subject = self.decide(entry, state, now)
        previous = entry.get("state")
        seq = int(entry.get("seq", 0)) + 1
        row = {"state": state, "previous": previous, "seq": seq, "ts": now}
        history = self._history(entry, now)
        if previous != state:
            history.append(row)
        entry.update(state=state, seq=seq, history=history[-HISTORY:])
        if previous != state or "since" not in entry:
            entry["since"] = now
        if subject == SUPPRESSED:
            entry.setdefault("flap_rows", []).append(row)
            return Recorded(previous, seq, SUPPRESSED)
        if subject == FLAPPING:
            entry["flapping_since"] = now
            entry["flap_rows"] = []
            return Recorded(previous, seq, FLAPPING, _transitions(history))
        return Recorded(previous, seq, TRANSITION)

    def _settle_entry(self, key: str, entry: dict[str, Any]) -> Settled:
        rows = entry.pop("flap_rows", [])
        entry["flapping_since"] = None
        entry["seq"] = int(entry.get("seq", 0)) + 1
        entry["history"] = []
        return Settled(key, entry["state"], entry["seq"], _transitions(rows))

    def any_flapping(self) -> bool:
        """Whether any instance is flapping now (a lock-free read: a hint, not a decision)."""
        return any(e.get("flapping_since") is not None for e in self._read().values())

    def settle(
        self,
        then: Callable[[Settled], T],
        now: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> list[T]:
        """End flapping for instances quiet for a whole window; ``then`` spools each summary."""
        now = time.time() if now is None else now
        if not self.file.exists():
            return []
        settled: list[T] = []
        end = self._end(timeout)
        try:
            with locked(self.lock, timeout) as got:
                if not got:
                    return settled  # someone else holds the store; the next run settles
                data = self._held(end)[0]
                for key, entry in data.items():
                    if self._quiet(entry, now):
                        settled.append(then(self._settle_entry(key, entry)))
                if settled:
                    self._write(data)
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot settle flapping: {exc}") from exc
        return settled
