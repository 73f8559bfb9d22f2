"""One error root for the package; only the CLI turns these into exit codes."""

from __future__ import annotations

import enum
from typing import Optional

from ha_notify.constants import EXIT_FAILED, EXIT_OK, EXIT_USAGE


class ExitCode(enum.IntEnum):
    """Exit codes of every command (the README's and the Commands page's table)."""

    OK = EXIT_OK
    FAILED = EXIT_FAILED
    USAGE = EXIT_USAGE


class HaNotifyError(Exception):
    """Root of every error ha-notify raises on purpose."""


class UsageError(HaNotifyError, ValueError):
    """A command-line argument is wrong (unknown state, bad number)."""


class ConfigError(HaNotifyError, ValueError):
    """The configuration is wrong; the message names file, key and what is expected."""


class TemplateError(HaNotifyError):
    """A template could not be rendered."""


class SpoolError(HaNotifyError, OSError):
    """The spool under state_dir cannot be written or read."""


class LockBusy(SpoolError):
    """Another process held the state lock for longer than this run could wait."""


class Backlog(LockBusy):
    """The state lock was had, but older events queued in the inbox could not all be
    numbered in time: this event must queue behind them (``waiting``: how many there are)."""

    def __init__(self, message: str, waiting: int) -> None:
        super().__init__(message)
        self.waiting = waiting


class ChannelError(HaNotifyError):
    """One delivery through one channel failed.

    ``retryable`` is False for mistakes that a retry cannot fix (bad token, refused
    recipient); ``retry_after`` carries a server's hint in seconds (HTTP 429).
    """

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class PartialDelivery(ChannelError):
    """Some recipients accepted the message and some refused it.

    ``sent`` accepted (never sent to again), ``retry`` refused for now (4xx: greylisting, a
    full mailbox) and ``dead`` refused for good (5xx), each recipient with the server's words.
    """

    def __init__(
        self,
        message: str,
        *,
        sent: tuple[str, ...] = (),
        retry: Optional[dict[str, str]] = None,
        dead: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(message, retryable=bool(retry))
        self.sent = sent
        self.retry = dict(retry or {})
        self.dead = dict(dead or {})


class ChannelTimeoutError(ChannelError, TimeoutError):
    """A channel did not answer in time."""


class CheckError(HaNotifyError):
    """A health check could not run as configured (not: the service is unhealthy)."""


def exit_code(exc: BaseException) -> ExitCode:
    """The one mapping from an error to an exit code, shared by every entry point.

    Usage and configuration mistakes are 2 (nothing was sent, the message says what to fix);
    everything else -- a spool that cannot be written, a template, a channel, an OS error --
    is 1.
    """
    if isinstance(exc, (UsageError, ConfigError, CheckError)):
        return ExitCode.USAGE
    return ExitCode.FAILED


class ProbeError(HaNotifyError, OSError):
    """A network probe (ARP, TCP) could not run at all (not: it got no answer)."""
