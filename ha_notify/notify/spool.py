"""The spool: one file per event, holding every channel's delivery, written before any send.

Layout under ``state_dir/spool``: ``pending/`` (events with a channel still to deliver),
``dead/`` (events whose remaining deliveries were given up on, loudly), ``done/`` (the last
fully delivered event per instance: where the sequence number continues from), ``locks/``
(one flock per channel and instance, so a delivery is sent by one process at a time, in
sequence order, and one per instance for updating its event files), ``quarantine/``.

One event is one file, written in one rename: a kill at any moment leaves it on disk for
all of its channels or for none. Per channel it records the status (``pending``, ``sent``,
``dead``, ``dropped``), attempts and backoff, and for email which recipients already have it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

from ha_notify.errors import SpoolError
from ha_notify.event import Event
from ha_notify.fsutil import atomic_write, locked, make_dirs, read_text, transient, why_unreadable
from ha_notify.notify.delivery import DEAD, PENDING, SENT, Delivery, EventFile, Leg, parse
from ha_notify.notify.quarantine import Quarantine
from ha_notify.notify.waits import Waits

log = logging.getLogger(__name__)
BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_MAX = 3600.0
STALE_TMP = 3600.0  # a temporary file this old was left by a killed writer


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def backoff(attempts: int, retry_after: Optional[float] = None) -> float:
    """Seconds to wait after ``attempts`` failures: exponential, capped, with jitter."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** max(0, attempts - 1))
    delay *= random.uniform(0.8, 1.2)
    return float(max(delay, retry_after or 0.0))


class Spool:
    def __init__(self, state_dir: Path, max_age: float = 86400.0) -> None:
        self.root = state_dir / "spool"
        self.pending = self.root / "pending"
        self.dead = self.root / "dead"
        self.done_dir = self.root / "done"
        self.locks = self.root / "locks"
        self.quarantine = Quarantine(self.root / "quarantine")
        self.waits = Waits(self.root / "waits")
        self.max_age = max_age
        self.unreadable: dict[Path, str] = {}  # left in place for the next run, and why

    def ensure(self) -> None:
        try:
            make_dirs(self.pending, self.dead, self.done_dir, self.locks)
        except OSError as exc:
            raise SpoolError(f"spool {self.root}: cannot create it: {exc.strerror}") from exc

    def add(self, event: Event, channels: list[str]) -> list[Delivery]:
        """Write the event with one pending leg per channel, in one rename; its deliveries."""
        if not channels:
            return []
        self.ensure()
        entry = EventFile(self.pending / f"{event.id}.json", event, time.time(), {})
        entry = replace(entry, legs={name: Leg() for name in channels})
        try:
            atomic_write(entry.path, json.dumps(entry.to_json(), ensure_ascii=False))
        except OSError as exc:
            if not os.path.lexists(entry.path):
                raise SpoolError(f"spool {self.pending}: cannot write: {exc}") from exc
            # Renamed into place; only the folder's fsync failed. It is spooled: failing
            # here would send it directly, and the next run would send the spooled copy too.
            log.error("spool %s: folder not synced (%s); %s is spooled", self.pending, exc,
                      entry.path)  # fmt: skip
        return entry.deliveries()

    def read(self, path: Path) -> Optional[EventFile]:
        """The event file at ``path``; None if gone (finished elsewhere) or quarantined."""
        try:
            return parse(path, json.loads(read_text(path)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if not transient(exc):
                self.quarantine.put(path, f"damaged spool file: {type(exc).__name__}: {exc}")
                return None
            why = why_unreadable(path, exc)
            if path not in self.unreadable:
                log.error("spool file %s %s", path, why)
            self.unreadable[path] = why
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            self.quarantine.put(path, f"damaged spool file: {type(exc).__name__}: {exc}")
        return None

    def scan(self, folder: Path) -> list[EventFile]:
        """Every event file in ``folder``; damaged or foreign files are quarantined."""
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SpoolError(f"spool {folder}: cannot read it: {exc.strerror or exc}") from exc
        found = []
        for name in names:
            path = folder / name
            if name.startswith(".tmp-"):  # a write in progress, or a killed writer's leftover
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > STALE_TMP:
                        path.unlink()
                continue
            if not name.endswith(".json") or not path.is_file():
                self.quarantine.put(path, "not a spool file (foreign name or type)")
                continue
            entry = self.read(path)
            if entry is not None:
                found.append(entry)
        return found

    def list_pending(self) -> list[Delivery]:
        return [d for e in self.scan(self.pending) for d in e.deliveries()]

    def refile(self) -> None:
        """File away events in pending/ with nothing left to send (a writer killed between
        its last update and the move)."""
        for entry in self.scan(self.pending):
            if all(leg.status != PENDING for leg in entry.legs.values()):
                with locked(self.locks / f"event-{digest(entry.event.key)}.lock"):
                    fresh = self.read(entry.path)
                    if fresh is not None:
                        self._file(fresh)

    def list_dead(self) -> list[Delivery]:
        folders = (self.pending, self.dead)
        return [d for f in folders for e in self.scan(f) for d in e.deliveries(DEAD)]

    def groups(self) -> dict[tuple[str, str], list[Delivery]]:
        """Pending deliveries per (channel, instance), oldest sequence number first."""
        out: dict[tuple[str, str], list[Delivery]] = {}
        for d in self.list_pending():
            out.setdefault(d.group, []).append(d)
        for items in out.values():
            items.sort(key=lambda d: (d.event.seq, d.created))
        return out

    def latest(self, key: str) -> Optional[Event]:
        """The newest event of ``key`` the spool knows (pending, dead or last delivered)."""
        found = [e.event for f in (self.pending, self.dead) for e in self.scan(f)]
        last = self.read(self._done_path(key)) if self.done_dir.is_dir() else None
        if last is not None:
            found.append(last.event)
        mine = [e for e in found if e.key == key]
        return max(mine, key=lambda e: e.seq, default=None)

    def holds(self, event: Event) -> bool:
        """Whether the event with ``event``'s id is in the spool (pending, dead, or the last
        delivered of its instance)."""
        name = f"{event.id}.json"
        if (self.pending / name).exists() or (self.dead / name).exists():
            return True
        done = self._done_path(event.key)
        last = self.read(done) if done.exists() else None
        return last is not None and last.event.id == event.id

    def counts(self) -> dict[str, Any]:
        """Pending and dead deliveries per channel, and the quarantined files (for metrics)."""
        pending: dict[str, int] = {}
        dead: dict[str, int] = {}
        for folder in (self.pending, self.dead):
            for entry in self.scan(folder):
                for name, leg in entry.legs.items():
                    if leg.status == PENDING:
                        pending[name] = pending.get(name, 0) + 1
                    elif leg.status == DEAD:
                        dead[name] = dead.get(name, 0) + 1
        return {
            "pending": pending,
            "dead": dead,
            "quarantined": len(self.quarantine.list()),
            "unreadable": len(self.unreadable),
        }

    def lock_path(self, group: tuple[str, str]) -> Path:
        return self.locks / f"{digest(group[0] + chr(0) + group[1])}.lock"

    def _done_path(self, key: str) -> Path:
        return self.done_dir / f"{digest(key)}.json"

    def update(self, d: Delivery, change: Callable[[Leg], Leg]) -> None:
        """Change one leg of ``d``'s event file under its instance's lock, then file it:
        still pending, all given up (to dead/), or all delivered (to done/).

        A last delivery is filed with one rename and no new write (it works on a full
        disk). When the file cannot be updated the leg stays pending: at worst it is sent
        again with the same ids, the one documented duplicate.
        """
        try:
            self.ensure()
            with locked(self.locks / f"event-{digest(d.event.key)}.lock"):
                entry = self.read(d.path)
                if entry is None or d.channel not in entry.legs:
                    return
                legs = dict(entry.legs)
                legs[d.channel] = change(legs[d.channel])
                updated = replace(entry, legs=legs)
                old, new = entry.legs[d.channel], legs[d.channel]
                # Only a retry count or an error changed: not worth waiting for the disk.
                durable = (old.status, old.sent_to, old.dead_to) != (
                    new.status,
                    new.sent_to,
                    new.dead_to,
                )
                if any(leg.status != SENT for leg in legs.values()):
                    text = json.dumps(updated.to_json(), ensure_ascii=False)
                    atomic_write(entry.path, text, durable)
                self._file(updated)
        except OSError as exc:
            log.error(
                "spool file %s (channel %s) could not be updated: %s; it stays pending and "
                "may be sent again with the same ids",
                d.path,
                d.channel,
                exc,
            )

    def _file(self, entry: EventFile) -> None:
        """Move an event with no pending leg out of pending/: to dead/ if a leg was given up,
        else to done/ (only the newest delivered event per instance is kept)."""
        statuses = {leg.status for leg in entry.legs.values()}
        if PENDING in statuses:
            return
        if DEAD in statuses:
            os.replace(entry.path, self.dead / entry.path.name)
            return
        done = self._done_path(entry.event.key)
        last = self.read(done) if done.exists() else None
        if last is not None and last.event.seq > entry.event.seq:
            os.unlink(entry.path)
        else:
            os.replace(entry.path, done)

    def done(self, d: Delivery, sent_to: tuple[str, ...] = ()) -> None:
        self.update(d, lambda leg: replace(leg, status=SENT, sent_to=leg.sent_to + sent_to))

    def failed(
        self,
        d: Delivery,
        error: str,
        retry_after: Optional[float] = None,
        sent_to: tuple[str, ...] = (),
        dead_to: Optional[dict[str, str]] = None,
    ) -> None:
        def change(leg: Leg) -> Leg:
            attempts = leg.attempts + 1
            return replace(
                leg,
                attempts=attempts,
                next_attempt=time.time() + backoff(attempts, retry_after),
                last_error=error,
                last_try=time.time(),
                sent_to=leg.sent_to + sent_to,
                dead_to={**leg.dead_to, **(dead_to or {})},
            )

        self.update(d, change)

    def expired(self, delivery: Delivery, now: Optional[float] = None) -> bool:
        return ((now or time.time()) - delivery.created) > self.max_age

    def bury(
        self,
        d: Delivery,
        reason: str,
        sent_to: tuple[str, ...] = (),
        dead_to: Optional[dict[str, str]] = None,
    ) -> None:
        """Give up on one leg and say so loudly: the operator must see what was not delivered."""

        def change(leg: Leg) -> Leg:
            dead = {**leg.dead_to, **(dead_to or {})}
            return replace(
                leg,
                status=DEAD,
                last_error=reason,
                sent_to=leg.sent_to + sent_to,
                dead_to=dead,
                last_try=time.time(),
            )

        self.update(d, change)
        log.error(
            "GAVE UP on %s via channel %s (%s -> %s, event %s): %s "
            "(`ha-notify flush --retry-dead` tries again)",
            d.event.key,
            d.channel,
            d.event.previous or "?",
            d.event.state,
            d.event.id,
            reason,
        )

    def revive(self, only: Optional[set[str]] = None) -> int:
        """Dead legs (those whose delivery id is in ``only``, if given) go back to pending,
        fresh; recipients that accepted stay served.

        Under the event's lock the file is read again (a concurrent flush may have sent a
        leg since the scan) and moved to pending/ with one rename before it is rewritten,
        so a kill at any point never leaves it in both folders (to be revived twice).
        """

        def wanted(path: Path, name: str, leg: Leg) -> bool:
            return leg.status == DEAD and (only is None or f"{path.name}:{name}" in only)

        count = 0
        for folder in (self.pending, self.dead):
            for entry in self.scan(folder):
                if not any(wanted(entry.path, n, leg) for n, leg in entry.legs.items()):
                    continue
                with locked(self.locks / f"event-{digest(entry.event.key)}.lock"):
                    fresh = self.read(entry.path)
                    if fresh is None:  # moved meanwhile: dead/ is scanned after pending/
                        continue
                    dead = [n for n, leg in fresh.legs.items() if wanted(fresh.path, n, leg)]
                    if not dead:
                        continue
                    target = self.pending / entry.path.name
                    if fresh.path != target:
                        os.replace(fresh.path, target)
                    legs = dict(fresh.legs)
                    for name in dead:
                        legs[name] = replace(legs[name], status=PENDING, attempts=0, dead_to={})
                    revived = replace(fresh, path=target, legs=legs, created=time.time())
                    atomic_write(target, json.dumps(revived.to_json(), ensure_ascii=False))
                count += len(dead)
        return count
