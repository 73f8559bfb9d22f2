"""The state store: last state and sequence number per instance, and flapping detection."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from ha_notify.errors import SpoolError
from ha_notify.event import FLAPPING, TRANSITION, Transition
from ha_notify.fsutil import atomic_write, locked, make_dirs

log = logging.getLogger(__name__)
SUPPRESSED = "suppressed"  # recorded, summarised later; no message of its own
HISTORY = 200
T = TypeVar("T")


@dataclass(frozen=True)
class Recorded:
    """What the store says about a new state: previous, sequence number, what to send."""

    previous: Optional[str]
    seq: int
    subject: str
    transitions: tuple[Transition, ...] = ()


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


class StateStore:
    """``state.json`` under ``state_dir``, read and written under one flock."""

    def __init__(self, state_dir: Path, flap_threshold: int = 5, flap_window: float = 120.0):
        self.dir = state_dir
        self.file = state_dir / "state.json"
        self.lock = state_dir / "state.lock"
        self.flap_threshold = flap_threshold
        self.flap_window = flap_window

    def _ensure(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise SpoolError(f"state_dir {self.dir} is not a directory")
        try:
            make_dirs(self.dir)
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot create it: {exc.strerror}") from exc

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, OSError) as exc:
            # A damaged store must not block alerts: start over, loudly.
            log.error("state file %s is unreadable (%s); starting a new one", self.file, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write(self.file, json.dumps(data, ensure_ascii=False, sort_keys=True))

    def snapshot(self) -> dict[str, Any]:
        """Everything known per instance key (for ``status``)."""
        return self._read()

    def record(
        self,
        key: str,
        state: str,
        then: Callable[[Recorded], T],
        now: Optional[float] = None,
        timeout: Optional[float] = None,
        floor: Callable[[str], int] = lambda key: 0,
    ) -> tuple[Recorded, T]:
        """Record ``state`` for ``key`` and run ``then`` (spooling) under the same lock.

        Deciding the sequence number and spooling the event happen atomically, so a
        delivery with a higher sequence number is never on disk before a lower one. An
        instance the store does not know (first event, or a lost state file) continues after
        ``floor(key)``, the highest number still in the spool, so it cannot jump the queue.
        """
        now = time.time() if now is None else now
        self._ensure()
        try:
            with locked(self.lock, timeout) as got:
                if not got:
                    raise SpoolError(
                        f"state_dir {self.dir}: {self.lock.name} is held by another "
                        f"process (waited {timeout:g}s)"
                    )
                data = self._read()
                entry = data.setdefault(key, {})
                previous = entry.get("state")
                seq = int(entry["seq"] if "seq" in entry else floor(key)) + 1
                row = {"state": state, "previous": previous, "seq": seq, "ts": now}
                history = [r for r in entry.get("history", []) if now - r["ts"] <= self.flap_window]
                history.append(row)
                entry.update(state=state, seq=seq, since=now, history=history[-HISTORY:])
                if entry.get("flapping_since") is not None:
                    entry.setdefault("flap_rows", []).append(row)
                    result = Recorded(previous, seq, SUPPRESSED)
                elif len(history) > self.flap_threshold:
                    entry["flapping_since"] = now
                    entry["flap_rows"] = []
                    result = Recorded(previous, seq, FLAPPING, _transitions(history))
                else:
                    result = Recorded(previous, seq, TRANSITION)
                spooled = then(result)
                self._write(data)
                return result, spooled
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot record state: {exc}") from exc

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
        try:
            with locked(self.lock, timeout) as got:
                if not got:
                    return settled  # someone else holds the store; the next run settles
                data = self._read()
                for key, entry in data.items():
                    if entry.get("flapping_since") is None:
                        continue
                    if now - float(entry.get("since", now)) < self.flap_window:
                        continue
                    rows = entry.pop("flap_rows", [])
                    entry["flapping_since"] = None
                    entry["seq"] = int(entry.get("seq", 0)) + 1
                    quiet = Settled(key, entry["state"], entry["seq"], _transitions(rows))
                    settled.append(then(quiet))
                if settled:
                    self._write(data)
        except OSError as exc:
            raise SpoolError(f"state_dir {self.dir}: cannot settle flapping: {exc}") from exc
        return settled
