"""Sending what the spool holds: in order per channel and instance, never twice, on time.

Channels run concurrently; within one (channel, instance) group deliveries go out one by
one in sequence order under a flock, and a failure stops the group so that an older state
is never delivered after a newer one.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Union

from ha_notify import aio
from ha_notify.channels import Channel
from ha_notify.errors import ChannelError, ConfigError, PartialDelivery
from ha_notify.fsutil import open_lock
from ha_notify.notify.delivery import Delivery
from ha_notify.notify.redact import error_text
from ha_notify.notify.spool import Spool

log = logging.getLogger(__name__)
Built = Union[Channel, ConfigError]  # a channel, or why it could not be built


@dataclass
class Outcome:
    """What happened to deliveries during one run; ``errors`` is keyed by delivery path."""

    sent: list[Delivery] = field(default_factory=list)
    retrying: list[Delivery] = field(default_factory=list)
    dead: list[Delivery] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # Delivery.id -> last error


async def _lock(spool: Spool, group: tuple[str, str]) -> int:
    """Wait (cancellably) for the group's flock; returns the fd that holds it."""
    fd = open_lock(spool.lock_path(group))
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                await asyncio.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise


async def _send_one(spool: Spool, channel: Channel, d: Delivery, out: Outcome) -> bool:
    """Try one delivery; True if the group may go on to the next one. Once the channel has
    handed the message over, the deadline lets the send end and its outcome be recorded
    (aio.delivering): cut in between, it would be sent again."""
    with aio.delivering():
        return await _attempt(spool, channel, d, out)


async def _attempt(spool: Spool, channel: Channel, d: Delivery, out: Outcome) -> bool:
    skip = (*d.leg.sent_to, *d.leg.dead_to)
    try:
        if skip and getattr(channel, "partial", False):
            await channel.send(d.event, skip=skip)  # type: ignore[call-arg]
        else:
            await channel.send(d.event)
    except PartialDelivery as exc:
        why = error_text(channel, exc)
        out.errors[d.id] = why
        if exc.retryable:
            log.warning("channel %s: %s; will retry those (event %s)", d.channel, why, d.event.id)
            spool.failed(d, why, sent_to=exc.sent, dead_to=exc.dead)
            out.retrying.append(d)
            return False
        spool.bury(d, why, sent_to=exc.sent, dead_to=exc.dead)
        out.dead.append(d)
        return True
    except ChannelError as exc:
        why = error_text(channel, exc)
        out.errors[d.id] = why
        if not exc.retryable:
            spool.bury(d, why)
            out.dead.append(d)
            return True
        log.warning("channel %s: %s; will retry (event %s)", d.channel, why, d.event.id)
        if exc.retry_after is not None:
            spool.waits.set(d.channel, exc.retry_after, why)
        spool.failed(d, why, exc.retry_after)
        out.retrying.append(d)
        return False
    except asyncio.CancelledError:
        why = "deadline reached while sending"
        if aio.was_handed_over():  # the server may have it: the retry may be a duplicate
            why += " (the server had the message but did not answer in time; if it kept it, "
            why += "the retry arrives twice, with the same Message-ID / event_id)"
            log.warning("channel %s, event %s: %s", d.channel, d.event.id, why)
        out.errors[d.id] = why
        spool.failed(d, why)
        out.retrying.append(d)
        raise
    except Exception as exc:  # a plugin bug must not lose the event: keep it and retry
        log.exception("channel %s crashed on event %s", d.channel, d.event.id)
        why = f"{type(exc).__name__}: {error_text(channel, exc)}"
        out.errors[d.id] = why
        spool.failed(d, why)
        out.retrying.append(d)
        return False
    partial = getattr(channel, "partial", False)
    spool.done(d, tuple(r for r in getattr(channel, "to", ()) if r not in skip) if partial else ())
    out.sent.append(d)
    log.info(
        "delivered %s %s via %s (event %s, #%d)",
        d.event.key,
        d.event.state.upper(),
        d.channel,
        d.event.id,
        d.event.seq,
    )
    return True


def _hold(spool: Spool, waiting: list[Delivery], out: Outcome) -> bool:
    """True (and noted for each of ``waiting``) when the channel asked every process to
    wait (rate limited): nobody on this node calls it before then."""
    wait = spool.waits.get(waiting[0].channel)
    if wait is None:
        return False
    left = wait.until - time.time()
    for d in waiting:
        out.errors[d.id] = f"channel asked to wait {left:.0f}s more ({wait.reason})"
        out.retrying.append(d)
    return True


async def _group(
    spool: Spool,
    group: tuple[str, str],
    channels: dict[str, Built],
    due_only: bool,
    out: Outcome,
) -> None:
    fd = await _lock(spool, group)
    try:
        tried: set[str] = set()
        while True:
            # Re-read under the lock: another process may have sent or added deliveries.
            pending = [d for d in spool.groups().get(group, []) if d.event.id not in tried]
            if not pending:
                return
            for i, d in enumerate(pending):
                tried.add(d.event.id)
                now = time.time()
                if spool.expired(d, now):
                    spool.bury(d, f"not delivered within max_age ({spool.max_age:g}s)")
                    out.dead.append(d)
                    continue
                if due_only and d.next_attempt > now:
                    return
                channel = channels.get(d.channel)
                if channel is None:
                    spool.bury(d, f"channel {d.channel!r} is no longer configured")
                    out.dead.append(d)
                    continue
                if isinstance(channel, ConfigError):
                    spool.failed(d, str(channel))
                    out.errors[d.id] = str(channel)
                    out.retrying.append(d)
                    return
                if _hold(spool, pending[i:], out) or not await _send_one(spool, channel, d, out):
                    return
    finally:
        os.close(fd)


async def flush(
    spool: Spool,
    channels: dict[str, Built],
    out: Outcome,
    *,
    due_only: bool = False,
    mine: Collection[tuple[str, str]] = (),
) -> Outcome:
    """Deliver the pending deliveries of every group, concurrently, recording into ``out``.

    With ``due_only``, a group goes only when its oldest delivery is due, except the groups
    in ``mine`` (a notify's own new event, and what is queued before it, goes at once). A
    channel that asked to wait (rate limited) is not called at all until then.
    ``out`` is filled as deliveries finish, so it still tells the truth when the deadline
    cancels the flush half-way.
    """
    spool.refile()
    now = time.time()
    groups = [
        g
        for g, items in spool.groups().items()
        if not (due_only and g not in mine and _waiting(spool, items[0], now))
    ]
    await asyncio.gather(
        *(_group(spool, g, channels, due_only and g not in mine, out) for g in groups)
    )
    return out


def _waiting(spool: Spool, oldest: Delivery, now: float) -> bool:
    """True when a due-only pass would stop at the group's oldest delivery (backoff not over,
    not expired): such a group is left alone without taking its lock and re-reading the
    spool, or every notify would read the whole backlog once per waiting group."""
    return oldest.next_attempt > now and not spool.expired(oldest, now)


async def send_direct(channels: dict[str, Built], deliveries: list[Delivery], out: Outcome) -> None:
    """No spool (state_dir unwritable): try each channel once, concurrently, keep nothing;
    ``out`` is filled as each ends, so it tells the truth when a signal cuts the rest."""

    async def one(d: Delivery) -> None:
        channel = channels.get(d.channel)
        if channel is None or isinstance(channel, ConfigError):
            out.errors[d.id] = str(channel)
            out.dead.append(d)
            return
        try:
            await channel.send(d.event)
            out.sent.append(d)
        except Exception as exc:
            out.errors[d.id] = error_text(channel, exc)
            out.dead.append(d)

    await asyncio.gather(*(one(d) for d in deliveries))
