"""What a notify tells the operator: the verdict per delivery and the fix for a state_dir."""

from __future__ import annotations

import errno
import sys
from typing import Optional

from ha_notify.errors import ConfigError, ExitCode
from ha_notify.notify.delivery import Delivery
from ha_notify.notify.dispatch import Built, Outcome


def verdict(
    mine: list[Delivery], outcome: Outcome, channels: dict[str, Built], remaining: float
) -> ExitCode:
    """0 when each of this event's deliveries was sent or safely spooled, else 1."""
    sent = {d.id for d in outcome.sent}
    dead = {d.id for d in outcome.dead}
    failed = False
    for d in mine:
        channel = channels.get(d.channel)
        if d.id in dead:
            failed = True
            why = outcome.errors.get(d.id, "gave up")
            print(f"ha-notify: NOT delivered via {d.channel}: {why}", file=sys.stderr)
        elif isinstance(channel, ConfigError):
            failed = True  # a person must fix the config; the event waits in the spool
            print(
                f"ha-notify: NOT delivered via {d.channel}, kept pending until its config "
                f"is fixed (then: ha-notify flush): {channel}",
                file=sys.stderr,
            )
        elif d.id not in sent:
            why = outcome.errors.get(d.id, "waiting behind an older undelivered state")
            if d.id not in outcome.errors and remaining <= 0:
                why = "deadline reached before it could be tried"
            print(f"ha-notify: spooled for retry via {d.channel}: {why}", file=sys.stderr)
    return ExitCode.FAILED if failed else ExitCode.OK


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
