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
from dataclasses import dataclass, field
from typing import Union

from ha_notify.channels import Channel
from ha_notify.errors import ChannelError, ConfigError
from ha_notify.fsutil import open_lock
from ha_notify.spool import Delivery, Spool

log = logging.getLogger(__name__)
Built = Union[Channel, ConfigError]  # a channel, or why it could not be built


@dataclass
class Outcome:
    """What happened to deliveries during one run; ``errors`` is keyed by delivery path."""

    sent: list[Delivery] = field(default_factory=list)
    retrying: list[Delivery] = field(default_factory=list)
    dead: list[Delivery] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # delivery path -> last error


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
    """Try one delivery; True if the group may go on to the next one."""
    try:
        await channel.send(d.event)
    except ChannelError as exc:
        out.errors[str(d.path)] = str(exc)
        if not exc.retryable:
            spool.bury(d, str(exc))
            out.dead.append(d)
            return True
        log.warning("channel %s: %s; will retry (event %s)", d.channel, exc, d.event.id)
        spool.failed(d, str(exc), exc.retry_after)
        out.retrying.append(d)
        return False
    except asyncio.CancelledError:
        out.errors[str(d.path)] = "deadline reached while sending"
        spool.failed(d, "deadline reached while sending")
        out.retrying.append(d)
        raise
    except Exception as exc:  # a plugin bug must not lose the event: keep it and retry
        log.exception("channel %s crashed on event %s", d.channel, d.event.id)
        out.errors[str(d.path)] = f"{type(exc).__name__}: {exc}"
        spool.failed(d, f"{type(exc).__name__}: {exc}")
        out.retrying.append(d)
        return False
    spool.done(d)
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


async def _group(
    spool: Spool, group: tuple[str, str], channels: dict[str, Built], due_only: bool, out: Outcome
) -> None:
    fd = await _lock(spool, group)
    try:
        tried: set[str] = set()
        while True:
            # Re-read under the lock: another process may have sent or added deliveries.
            pending = [d for d in spool.groups().get(group, []) if d.event.id not in tried]
            if not pending:
                return
            for d in pending:
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
                    out.errors[str(d.path)] = str(channel)
                    out.retrying.append(d)
                    return
                if not await _send_one(spool, channel, d, out):
                    return
    finally:
        os.close(fd)


async def flush(
    spool: Spool,
    channels: dict[str, Built],
    out: Outcome,
    *,
    due_only: bool = False,
) -> Outcome:
    """Deliver the pending deliveries of every group, concurrently, recording into ``out``.

    ``out`` is filled as deliveries finish, so it still tells the truth when the deadline
    cancels the flush half-way.
    """
    groups = list(spool.groups())
    await asyncio.gather(*(_group(spool, g, channels, due_only, out) for g in groups))
    return out


async def send_direct(channels: dict[str, Built], deliveries: list[Delivery]) -> Outcome:
    """No spool (state_dir unwritable): try each channel once, concurrently, keep nothing."""
    out = Outcome()

    async def one(d: Delivery) -> None:
        channel = channels.get(d.channel)
        if channel is None or isinstance(channel, ConfigError):
            out.errors[d.channel] = str(channel)
            out.dead.append(d)
            return
        try:
            await channel.send(d.event)
            out.sent.append(d)
        except Exception as exc:
            out.errors[d.channel] = str(exc)
            out.dead.append(d)

    await asyncio.gather(*(one(d) for d in deliveries))
    return out
