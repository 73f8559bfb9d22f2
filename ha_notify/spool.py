"""The spool: one file per (event, channel) delivery, written before any channel is tried.

Layout under ``state_dir/spool``: ``pending/`` (waiting or being retried), ``dead/`` (given up
on, loudly: too old or not retryable), ``locks/`` (one flock per channel and instance, so a
delivery is sent by one process at a time, in sequence order).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from ha_notify.errors import SpoolError
from ha_notify.event import Event
from ha_notify.fsutil import atomic_write, make_dirs

log = logging.getLogger(__name__)
BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_MAX = 3600.0


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def backoff(attempts: int, retry_after: Optional[float] = None) -> float:
    """Seconds to wait after ``attempts`` failures: exponential, capped, with jitter."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** max(0, attempts - 1))
    delay *= random.uniform(0.8, 1.2)
    return float(max(delay, retry_after or 0.0))


@dataclass(frozen=True)
class Delivery:
    """One event to be sent through one channel."""

    path: Path
    channel: str
    event: Event
    created: float
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""

    @property
    def group(self) -> tuple[str, str]:
        return (self.channel, self.event.key)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "event": self.event.to_json(),
            "created": self.created,
            "attempts": self.attempts,
            "next_attempt": self.next_attempt,
            "last_error": self.last_error,
        }


class Spool:
    def __init__(self, state_dir: Path, max_age: float = 86400.0) -> None:
        self.root = state_dir / "spool"
        self.pending = self.root / "pending"
        self.dead = self.root / "dead"
        self.locks = self.root / "locks"
        self.max_age = max_age

    def ensure(self) -> None:
        try:
            make_dirs(self.pending, self.dead, self.locks)
        except OSError as exc:
            raise SpoolError(f"spool {self.root}: cannot create it: {exc.strerror}") from exc

    def add(self, event: Event, channels: list[str]) -> list[Delivery]:
        """Write one delivery per channel (write, fsync, rename) and return them."""
        self.ensure()
        now = time.time()
        made = []
        try:
            for channel in channels:
                path = self.pending / f"{event.id}-{_digest(channel)}.json"
                delivery = Delivery(path, channel, event, created=now)
                atomic_write(path, json.dumps(delivery.to_json(), ensure_ascii=False))
                made.append(delivery)
        except OSError as exc:
            raise SpoolError(f"spool {self.pending}: cannot write: {exc}") from exc
        return made

    def read(self, path: Path) -> Optional[Delivery]:
        """The delivery at ``path``, or None if it is gone (sent by someone else) or damaged."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Delivery(
                path=path,
                channel=data["channel"],
                event=Event.from_json(data["event"]),
                created=float(data["created"]),
                attempts=int(data.get("attempts", 0)),
                next_attempt=float(data.get("next_attempt", 0.0)),
                last_error=str(data.get("last_error", "")),
            )
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise SpoolError(
                f"spool file {path}: permission denied; run ha-notify as the user that owns "
                "state_dir (keepalived's script_user)"
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spool file %s is damaged (%s); moved to %s", path, exc, self.dead)
            self._move(path, self.dead / path.name)
            return None

    def _list(self, folder: Path) -> list[Delivery]:
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SpoolError(f"spool {folder}: cannot read it: {exc.strerror or exc}") from exc
        found = (self.read(folder / n) for n in names)
        return [d for d in found if d is not None]

    def list_pending(self) -> list[Delivery]:
        return self._list(self.pending)

    def list_dead(self) -> list[Delivery]:
        return self._list(self.dead)

    def groups(self) -> dict[tuple[str, str], list[Delivery]]:
        """Pending deliveries per (channel, instance), oldest sequence number first."""
        out: dict[tuple[str, str], list[Delivery]] = {}
        for d in self.list_pending():
            out.setdefault(d.group, []).append(d)
        for items in out.values():
            items.sort(key=lambda d: (d.event.seq, d.created))
        return out

    def max_seq(self, key: str) -> int:
        """The highest sequence number of ``key`` still pending or dead (0 if none)."""
        found = [d.event.seq for d in self.list_pending() + self.list_dead() if d.event.key == key]
        return max(found, default=0)

    def lock_path(self, group: tuple[str, str]) -> Path:
        return self.locks / f"{_digest(group[0] + chr(0) + group[1])}.lock"

    def done(self, delivery: Delivery) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(delivery.path)

    def failed(self, delivery: Delivery, error: str, retry_after: Optional[float] = None) -> None:
        attempts = delivery.attempts + 1
        updated = replace(
            delivery,
            attempts=attempts,
            next_attempt=time.time() + backoff(attempts, retry_after),
            last_error=error,
        )
        atomic_write(delivery.path, json.dumps(updated.to_json(), ensure_ascii=False))

    def expired(self, delivery: Delivery, now: Optional[float] = None) -> bool:
        return ((now or time.time()) - delivery.created) > self.max_age

    def bury(self, delivery: Delivery, reason: str) -> None:
        """Move to dead/ and say so loudly: the operator must see what was not delivered."""
        self.ensure()
        updated = replace(delivery, last_error=reason)
        target = self.dead / delivery.path.name
        atomic_write(target, json.dumps(updated.to_json(), ensure_ascii=False))
        self.done(delivery)
        log.error(
            "GAVE UP on %s via channel %s (%s -> %s, event %s): %s; kept in %s "
            "(`ha-notify flush --retry-dead` tries again)",
            delivery.event.key,
            delivery.channel,
            delivery.event.previous or "?",
            delivery.event.state,
            delivery.event.id,
            reason,
            target,
        )

    def revive(self) -> int:
        """Move every dead delivery back to pending with a fresh age and no attempts."""
        count = 0
        for d in self.list_dead():
            fresh = replace(d, path=self.pending / d.path.name, created=time.time(), attempts=0)
            atomic_write(fresh.path, json.dumps(fresh.to_json(), ensure_ascii=False))
            os.unlink(d.path)
            count += 1
        return count

    def _move(self, source: Path, target: Path) -> None:
        try:
            make_dirs(target.parent)
            os.replace(source, target)
        except OSError as exc:
            log.error("cannot move %s to %s: %s", source, target, exc)
