"""Remembering the last result of each check, so syslog hears only about changes.

One small file per check invocation (check name and arguments) in the run directory holds
``1`` or ``0`` and the reason of an unhealthy result. A healthy run that was healthy before
reads one file and writes nothing. When the run directory cannot be used, nothing is
tracked and every unhealthy result goes to syslog (healthy ones never do).
"""

from __future__ import annotations

import os

from ha_notify.checks.files import write_replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional

    from ha_notify.checks import CheckResult

MAX_NAME = 200
SYSLOG_ENV = "HA_NOTIFY_SYSLOG"


def state_path(run_dir: str, argv: list[str]) -> str:
    """The state file of one invocation, e.g. ``check-haproxy_--deep.state``."""
    safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in "_".join(argv))
    return os.path.join(run_dir, f"check-{safe[:MAX_NAME]}.state")


def _encode(result: CheckResult) -> bytes:
    # A healthy reason changes on every restart (it names pids): only the verdict counts.
    text = "1\n" if result.healthy else f"0 {result.reason}\n"
    return text.encode("utf-8", "replace")


def changed(path: str, result: CheckResult) -> Optional[bool]:
    """Record ``result``; True if it differs from the last one, None if untracked."""
    new = _encode(result)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        old = b""
    except OSError:
        return None
    else:
        try:
            old = os.read(fd, 8192)
        except OSError:
            old = b""
        finally:
            os.close(fd)
    if old == new:
        return False
    return True if write_replace(path, new, 0o644) else None


def syslog_line(message: str, healthy: bool) -> None:
    """One line to syslog: ident ha-notify, facility daemon.

    ``$HA_NOTIFY_SYSLOG`` (shared with the notify commands) is "off" to disable syslog or
    the path of another syslog socket (tests); otherwise the C library's syslog() is used.
    """
    address = os.environ.get(SYSLOG_ENV)
    if address == "off":
        return
    import syslog

    severity = syslog.LOG_INFO if healthy else syslog.LOG_WARNING
    if not address:
        syslog.openlog("ha-notify", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(severity, message)
        syslog.closelog()
        return
    import contextlib
    import socket

    line = f"<{syslog.LOG_DAEMON | severity}>ha-notify[{os.getpid()}]: {message}"
    # No syslog listening there: the result itself is still on stderr.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(line.encode("utf-8", "replace"), address)


def record(
    run_dir: str,
    argv: list[str],
    result: CheckResult,
    emit: Optional[Callable[[str, bool], None]] = None,
) -> None:
    """Log ``result`` to syslog if it changed since the previous run of the same check."""
    was = changed(state_path(run_dir, argv), result)
    if was is False or (was is None and result.healthy):
        return
    verdict = "healthy" if result.healthy else "unhealthy"
    (emit or syslog_line)(f"check {' '.join(argv)}: {verdict}: {result.reason}", result.healthy)
