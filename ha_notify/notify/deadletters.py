"""Dead letters one by one: their ids, newest first, and dropping or retrying one.

A dead letter is one channel's delivery of one event that ha-notify gave up on. Its id is
the event id's first 12 hex digits and the channel (``3fa9c81d2e4b:mail``); any unique
prefix of it selects it (``3fa9``, or ``3fa9:mail`` when the event has several).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Optional

from ha_notify.errors import UsageError
from ha_notify.notify.delivery import DROPPED, Delivery
from ha_notify.notify.spool import Spool

ID_DIGITS = 12


def ref(d: Delivery) -> str:
    """The id an operator types: ``<event id prefix>:<channel>``."""
    return f"{d.event.id[:ID_DIGITS]}:{d.channel}"


def when(d: Delivery) -> float:
    """When the delivery last failed or was given up (its spooling time if never tried)."""
    return d.leg.last_try or d.created


def newest_first(deliveries: list[Delivery]) -> list[Delivery]:
    return sorted(deliveries, key=when, reverse=True)


def ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h" if s < 172800 else f"{s // 86400}d"


def clock(moment: float) -> str:
    """A local time an operator reads: ISO 8601 to the second, with the UTC offset."""
    return datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")


def next_try(d: Delivery, now: Optional[float] = None) -> str:
    """``due now`` or ``at 2026-12-01T12:03:04+00:00 (in 2m)``."""
    now = time.time() if now is None else now
    if d.next_attempt <= now:
        return "due now"
    return f"at {clock(d.next_attempt)} (in {ago(d.next_attempt - now)})"


def describe(d: Delivery, now: Optional[float] = None) -> str:
    """One line per dead letter: id, instance, state, when, and why."""
    now = time.time() if now is None else now
    e = d.event
    return (
        f"{ref(d)}  {e.key} #{e.seq} {e.state.upper()}, given up {ago(now - when(d))} ago"
        f" after {d.attempts} attempt(s): {d.last_error or 'no error recorded'}"
    )


def select(spool: Spool, wanted: str) -> list[Delivery]:
    """The dead letters ``wanted`` names (an id or a unique prefix); UsageError otherwise."""
    text = wanted.strip().lower()
    event_part, _, channel = text.partition(":")
    dead = newest_first(spool.list_dead())
    found = [
        d
        for d in dead
        if event_part
        and d.event.id.lower().startswith(event_part)
        and (not channel or d.channel.lower().startswith(channel))
    ]
    if not found:
        known = ", ".join(ref(d) for d in dead[:5]) or "none"
        raise UsageError(f"no dead letter has the id {wanted!r} (dead letters: {known})")
    if len(found) > 1 and len({(d.event.id, d.channel) for d in found}) > 1:
        listed = ", ".join(ref(d) for d in found[:5])
        raise UsageError(
            f"{wanted!r} names {len(found)} dead letters ({listed}): give more of the id"
        )
    return found


def drop(spool: Spool, wanted: str) -> Delivery:
    """Forget one dead letter for good; the event's sequence number stays used."""
    (d,) = select(spool, wanted)[:1]
    spool.update(d, lambda leg: replace(leg, status=DROPPED))
    return d


def retry(spool: Spool, wanted: Optional[str]) -> str:
    """Move one dead letter (or all of them) back to pending; what was moved, in words."""
    now = time.time()
    chosen = newest_first(spool.list_dead()) if wanted is None else select(spool, wanted)
    if not chosen:
        return "no dead letter to retry"
    count = spool.revive({d.id for d in chosen} if wanted is not None else None)
    if wanted is not None:
        return f"retrying {ref(chosen[0])} ({chosen[0].event.key} #{chosen[0].event.seq})"
    oldest, newest = now - when(chosen[-1]), now - when(chosen[0])
    return (
        f"retrying {count} dead letter(s), given up between {ago(newest)} and {ago(oldest)} ago "
        "(old alerts are sent as they were; `flush --drop-dead ID` forgets one instead)"
    )
