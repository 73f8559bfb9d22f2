"""What a notify did, as data: a result per channel, notes, and the fix for a state_dir.

The engine returns a :class:`NotifyReport`; only the CLI prints it and turns it into an exit
code.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Optional

from ha_notify.errors import ConfigError
from ha_notify.notify.delivery import Delivery
from ha_notify.notify.dispatch import Built, Outcome

SENT = "sent"
SPOOLED = "spooled"  # not sent yet; retried later (flush, timer): still exit 0
FAILED = "failed"  # given up, or held until a person fixes the channel's config


@dataclass(frozen=True)
class ChannelResult:
    """What became of one channel's delivery in this run, and why."""

    channel: str
    status: str
    why: str = ""


@dataclass(frozen=True)
class NotifyReport:
    """What one notify did: a result per channel and notes for the operator (the CLI prints
    them; the FIFO reader and the watcher log them)."""

    results: tuple[ChannelResult, ...] = ()
    notes: tuple[str, ...] = ()
    spooled: bool = True  # False: the spool was unusable, nothing is retried

    @property
    def failed(self) -> bool:
        """Something was neither delivered nor safely spooled (exit code 1)."""
        return not self.spooled or any(r.status == FAILED for r in self.results)

    def lines(self) -> list[str]:
        """The operator's lines, in order: notes, then each channel not plainly sent."""
        out = list(self.notes)
        for r in self.results:
            if r.status == SENT and not self.spooled:
                out.append(f"delivered via {r.channel} (unspooled)")
            elif r.status == FAILED:
                out.append(f"NOT delivered via {r.channel}{r.why}")
            elif r.status == SPOOLED:
                out.append(f"spooled for retry via {r.channel}: {r.why}")
        return out


def verdict(
    mine: list[Delivery], outcome: Outcome, channels: dict[str, Built], remaining: float
) -> tuple[ChannelResult, ...]:
    """Each of this event's deliveries: sent, safely spooled, or failed (and why)."""
    sent = {d.id for d in outcome.sent}
    dead = {d.id for d in outcome.dead}
    results = []
    for d in mine:
        channel = channels.get(d.channel)
        if d.id in dead:
            why = outcome.errors.get(d.id, "gave up")
            results.append(ChannelResult(d.channel, FAILED, f": {why}"))
        elif isinstance(channel, ConfigError):
            # A person must fix the config; the event waits in the spool.
            why = f", kept pending until its config is fixed (then: ha-notify flush): {channel}"
            results.append(ChannelResult(d.channel, FAILED, why))
        elif d.id not in sent:
            why = outcome.errors.get(d.id, "waiting behind an older undelivered state")
            if d.id not in outcome.errors and remaining <= 0:
                why = "deadline reached before it could be tried"
            results.append(ChannelResult(d.channel, SPOOLED, why))
        else:
            results.append(ChannelResult(d.channel, SENT))
    return tuple(results)


def state_dir_fix(exc: BaseException) -> str:
    """What to do about an unusable state_dir, from the first OS error behind ``exc``."""
    cause: Optional[BaseException] = exc
    while cause is not None and not getattr(cause, "errno", None):
        cause = cause.__cause__
    if "is held by another process" in str(exc):
        return "another ha-notify holds the state lock (stuck or slow disk?)"
    code = getattr(cause, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free space on state_dir's filesystem"
    if code == errno.EROFS:
        return "state_dir is on a read-only filesystem: point state_dir elsewhere"
    return "fix state_dir permissions"
