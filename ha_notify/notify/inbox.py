"""The inbox: events that could not get the state lock in time, waiting to be numbered.

Under load (50 notifies at once on 2 cores) a notify may not get ``state.lock`` before its
deadline. Instead of sending an unnumbered copy directly (lost if the relay hangs), it
writes its event here, lock-free: one file per event, named by the event id, written with
temp file + fsync + rename + folder fsync. Whoever next holds the lock (a notify, the FIFO
reader, ``flush``, the watcher) first adopts every inbox event, in arrival order (process
start time, then name), as a numbered spool entry: the spool file is written first and the
inbox file removed after it, and an event whose id is already spooled or recorded is only
removed, so a kill at any point leaves it in the spool once or still here, never both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from ha_notify import aio
from ha_notify.constants import PAIR_KINDS
from ha_notify.event import Event
from ha_notify.fsutil import (
    atomic_write,
    instant,
    make_dirs,
    read_text,
    transient,
    why_unreadable,
)
from ha_notify.notify.quarantine import Quarantine
from ha_notify.notify.spool import STALE_TMP, Spool
from ha_notify.notify.store import SUPPRESSED, Settled, StateStore

log = logging.getLogger(__name__)
ADOPTED = 100  # ids of adopted events remembered per instance (state.json "adopted")
QUEUED = "queued behind the state lock; numbered and sent by the next notify/flush"
# An inbox file holds one event (a few KiB); a bigger one is damage, set aside unread.
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Queued:
    """One inbox event: the unnumbered event, when its process started, and its arguments."""

    path: Path
    event: Event
    started: float  # wall-clock time the notify process started
    argv: tuple[str, ...]

    @property
    def order(self) -> tuple[float, str]:
        return (self.started, self.path.name)


class Inbox:
    """``state_dir/inbox``: one file per event queued behind the state lock."""

    def __init__(self, state_dir: Path, quarantine: Quarantine) -> None:
        self.folder = state_dir / "inbox"
        self.quarantine = quarantine
        self.unreadable: dict[Path, str] = {}  # left in place for the next run, and why

    def put(self, event: Event) -> Path:
        """Write ``event`` (unnumbered) durably; raises OSError when even that fails."""
        make_dirs(self.folder)
        data = {
            "version": 1,
            "event": event.to_json(),
            "started": started_at(),
            "argv": sys.argv[1:],
        }
        path = self.folder / f"{event.id}.json"
        try:
            atomic_write(path, json.dumps(data, ensure_ascii=False))
        except OSError as exc:
            if not os.path.lexists(path):
                raise
            # Renamed into place; only the folder's fsync failed. It is queued: sent directly
            # as well, the next lock holder would send it a second time.
            log.error("inbox %s: folder not synced (%s); %s stays queued", self.folder, exc, path)
        return path

    def names(self) -> list[str]:
        """The inbox's event files (cheap: no file is read)."""
        try:
            return [n for n in os.listdir(self.folder) if n.endswith(".json")]
        except FileNotFoundError:
            return []

    def empty(self) -> bool:
        """Whether the inbox holds no file at all (not even a killed writer's leftover)."""
        try:
            return not os.listdir(self.folder)
        except FileNotFoundError:
            return True

    def sweep(self) -> int:
        """Remove temporary files left by writers killed mid-put (older than STALE_TMP: a
        writer lives deadline + 1 s at most); how many."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.folder):
                path = self.folder / name
                with contextlib.suppress(OSError):
                    if name.startswith(".tmp-") and time.time() - path.lstat().st_mtime > STALE_TMP:
                        path.unlink()
                        removed += 1
        if removed:
            log.warning("removed %d unfinished inbox files left by killed writers", removed)
        return removed

    def read(self, path: Path) -> Optional[Queued]:
        """The inbox event at ``path``; None if gone, unreadable for now (listed in
        ``unreadable``), or quarantined (damaged, too big, a symlink, FIFO or folder)."""
        try:
            data = json.loads(read_text(path, nofollow=True, limit=MAX_BYTES))
            if not isinstance(data, dict) or not isinstance(data.get("event"), dict):
                raise ValueError("not an inbox entry (no event object)")
            event = Event.from_json(data["event"])
            if f"{event.id}.json" != path.name:
                raise ValueError(f"its event id {event.id!r} does not match its name")
            argv = data.get("argv", [])
            if not isinstance(argv, list):
                raise ValueError("argv must be a list")
            return Queued(path, event, instant(data.get("started")), tuple(map(str, argv)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if transient(exc):
                why = why_unreadable(path, exc)
                if path not in self.unreadable:
                    log.error("inbox file %s %s", path, why)
                self.unreadable[path] = why
                return None
            self.quarantine.put(path, f"damaged inbox file: {exc}")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            self.quarantine.put(path, f"damaged inbox file: {type(exc).__name__}: {exc}")
        return None

    def entries(self) -> list[Queued]:
        """Every valid inbox event, oldest process first; damaged files are quarantined."""
        found = []
        for name in self.names():
            entry = self.read(self.folder / name)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda q: q.order)

    def remove(self, entry: Queued) -> None:
        """Drop an adopted event (its spool entry is on disk already). If it cannot go (a
        read-only folder), it stays: the next holder of the lock finds it numbered already
        and only tries to remove it again; the other events go on."""
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error(
                "inbox file %s is numbered but cannot be removed (%s); left for the next run",
                entry.path,
                exc,
            )


class Filter(Protocol):
    """A channel's filter (config.ChannelConfig): its name and the states it wants."""

    @property
    def name(self) -> str: ...

    def wants(self, state: str) -> bool: ...


def waiting(
    inbox: Inbox, spool: Spool, channels: Iterable[Filter]
) -> list[tuple[Queued, list[str]]]:
    """The inbox events not numbered yet, each with the channels it is pending for (status
    and ``ha_notify_spool_pending`` count them as pending)."""
    filters = list(channels)
    return [
        (q, [c.name for c in filters if c.wants(q.event.filter_key)])
        for q in inbox.entries()
        if not spool.holds(q.event)  # else numbered already; a killed adopter left the copy
    ]


def backlogged(waiting: int) -> str:
    """What a notify says when its event queues behind a backlog (the lock was free)."""
    return (
        f"queued behind {waiting} older events still waiting in the inbox (the state lock "
        "was free, but numbering them all would have passed the deadline); numbered and sent "
        "after them, in order, by the next notify/flush"
    )


def started_at() -> float:
    """When this command started (the process, for the console script), on the wall clock."""
    return time.time() - (time.monotonic() - aio.command_start())


def _settle(settled: Callable[[Settled, Event], Any], event: Event, s: Settled) -> Any:
    return settled(s, event)


def adopt(
    inbox: Inbox,
    store: StateStore,
    spool: Spool,
    data: dict[str, Any],
    wanted: Callable[[Event], list[str]],
    settled: Callable[[Settled, Event], Any],
    until: Optional[float] = None,
    upto: Optional[float] = None,
) -> bool:
    """Under the state lock: number inbox events in arrival order into ``data`` and the
    spool, save ``data``, then remove the inbox files. Whether none is left behind.

    Only events whose process started by ``upto`` (wall clock; None: all) are taken, and
    after ``until`` (a ``time.monotonic()`` instant) no more are started, so a backlog of
    thousands cannot hold the lock past a deadline; the next holder goes on in order.
    The spool file (one rename) comes before the inbox file goes; an event already spooled
    or listed in its instance's ``adopted`` ids (a killed adopter's work) is only removed.
    """
    inbox.sweep()
    queued = [q for q in inbox.entries() if upto is None or q.started <= upto]
    proven: list[Queued] = []  # spooled: removable whatever happens to state.json
    recorded: list[Queued] = []  # only in ``data`` (suppressed, no channel): after the save
    repaired: set[str] = set()
    seqs: dict[str, int] = {}  # pair alerts: the last number given per VIP
    for q in queued:
        if until is not None and time.monotonic() >= until and (proven or recorded):
            log.warning(
                "%d queued events left in the inbox for the next holder of the state lock "
                "(out of time)",
                len(queued) - len(proven) - len(recorded),
            )
            break
        ev = q.event
        if ev.id in data.get(ev.key, {}).get("adopted", ()) or spool.holds(ev):
            log.info("inbox event %s (%s) was numbered already; inbox copy removed", ev.id, ev.key)
            proven.append(q)
            continue
        if ev.subject in PAIR_KINDS:  # a pair alert: numbered after its VIP's newest event
            if ev.key not in seqs:
                newest = spool.latest(ev.key)
                seqs[ev.key] = newest.seq if newest is not None else 0
            seqs[ev.key] += 1
            spool.add(replace(ev, seq=seqs[ev.key]), wanted(ev))
            log.warning(
                "%s: %s alert #%d numbered from the inbox", ev.key, ev.subject, seqs[ev.key]
            )
            proven.append(q)
            continue
        entry = data.setdefault(ev.key, {})
        newest = None if ev.key in repaired else spool.latest(ev.key)
        repaired.add(ev.key)
        rec = store.apply(ev.key, entry, ev.state, q.started, newest, partial(_settle, settled, ev))
        entry["adopted"] = [*entry.get("adopted", ()), ev.id][-ADOPTED:]
        log.warning(
            "%s: %s -> %s (#%d) numbered from the inbox (queued behind the state lock by "
            "`ha-notify %s`)",
            ev.key,
            (rec.previous or "unknown").upper(),
            ev.state.upper(),
            rec.seq,
            " ".join(q.argv),
        )
        if rec.subject != SUPPRESSED:
            numbered = replace(
                ev,
                previous=rec.previous,
                seq=rec.seq,
                subject=rec.subject,
                transitions=rec.transitions,
            )
            if spool.add(numbered, wanted(numbered)):
                proven.append(q)
                continue
        recorded.append(q)
    done = len(proven) + len(recorded) == len(queued)
    if recorded:
        try:
            store.save(data)
        except OSError as exc:
            log.error("state file not written (%s); %d inbox events wait", exc, len(recorded))
            recorded = []
            done = False
    elif proven:
        with contextlib.suppress(OSError):  # a cache: the spool proves every number
            store.save(data)
    for q in proven + recorded:
        inbox.remove(q)
    return done
