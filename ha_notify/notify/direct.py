"""Sends that bypass the spool, and what a cut run says: the direct send of an event that
could not be spooled (nothing of it is on disk), the test message, and the truthful message
after a run cut by the deadline or a signal (a grace may have finished every delivery)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Optional

from ha_notify.errors import ConfigError, SpoolError
from ha_notify.event import TEST
from ha_notify.notify import dispatch
from ha_notify.notify.delivery import Delivery
from ha_notify.notify.dispatch import Outcome
from ha_notify.notify.redact import error_text
from ha_notify.notify.report import FAILED, SENT, ChannelResult, NotifyReport, state_dir_fix

if TYPE_CHECKING:
    from ha_notify.notify.engine import Notifier, StateChange

log = logging.getLogger(__name__)


def send_without_spool(
    n: Notifier, req: StateChange, exc: SpoolError, deadline: Optional[float] = None
) -> NotifyReport:
    """The event could not be spooled (nothing of it is on disk): say so, and still try
    every channel once, directly. Nothing is retried and nothing is sent twice."""
    log.error("%s; trying each channel once without the spool (no retry possible)", exc)
    note = f"{exc}; {state_dir_fix(exc)}. Nothing was spooled"
    # Unnumbered (#0): a number is only ever given under the state lock, with the spool.
    event = dataclasses.replace(n.preview(req), seq=0)
    targets = [Delivery(n.spool.pending, c, event, time.time()) for c in n.wanted(event)]
    outcome = Outcome()
    if targets:
        note += "; tried each channel once, directly (no retry)"
        n.run(dispatch.send_direct(n.channels, targets, outcome), None, deadline)
    results = [ChannelResult(d.channel, SENT) for d in outcome.sent]
    for d in outcome.dead:
        results.append(ChannelResult(d.channel, FAILED, f": {outcome.errors.get(d.id, '')}"))
    ended = {d.id for d in outcome.sent + outcome.dead}
    for d in targets:
        if d.id not in ended:
            why = f": stopped by {n.cut_by} before it was sent (this alert is LOST)"
            results.append(ChannelResult(d.channel, FAILED, why))
            log.error("%s %s NOT sent via %s%s", event.key, event.state.upper(), d.channel, why)
    return NotifyReport(tuple(results), (note + ".",), spooled=False)


def stopped(n: Notifier, outcome: Outcome, groups: Optional[set[tuple[str, str]]]) -> None:
    """After a cut run: say what really is left (a grace may have finished it all)."""
    left = [d for d in n.spool.list_pending() if groups is None or d.group in groups]
    if left:
        log.warning(
            "stopped by %s with %d deliveries not done (sent in this run: %d); they stay "
            "spooled for the next run",
            n.cut_by,
            len(left),
            len(outcome.sent),
        )
    else:
        log.info(
            "stopped by %s after every delivery had ended (sent in this run: %d)",
            n.cut_by,
            len(outcome.sent),
        )


def test(
    n: Notifier, channel: Optional[str], deadline: Optional[float] = None
) -> tuple[ChannelResult, ...]:
    """Send a marked test message through one channel or all: sent or failed (and why)
    per channel."""
    from ha_notify.notify.engine import StateChange

    names = [n.config.channel(channel).name] if channel else list(n.channels)
    event = n.make_event(StateChange("master", n.config.general.instance), subject=TEST)
    errors: dict[str, str] = {}

    async def one(name: str) -> None:
        ch = n.channels[name]
        if isinstance(ch, ConfigError):
            errors[name] = str(ch)
            return
        try:
            await ch.send(event)
            errors[name] = ""
        except Exception as exc:
            errors[name] = error_text(ch, exc)

    async def every() -> None:
        await asyncio.gather(*(one(c) for c in names))

    n.run(every(), None, deadline)
    return tuple(
        ChannelResult(c, SENT)
        if errors.get(c) == ""
        else ChannelResult(c, FAILED, errors.get(c, "deadline reached"))
        for c in names
    )
