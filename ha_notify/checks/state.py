"""Remembering the last result of each check, so syslog hears only about changes.

One small file per check invocation (check name and arguments) in the run directory holds
``1`` or ``0`` and a digest of what an operator would be told (the unhealthy reason, the
shared problems in ``notes``), so a change is seen whatever the reasons' length. A healthy
run that was healthy before reads one file and writes nothing. When the run directory cannot
be used, nothing is tracked and every unhealthy result goes to syslog (healthy ones never do,
unless they carry notes).
"""

from __future__ import annotations

import os

from ha_notify.checks.files import write_replace
from ha_notify.constants import SYSLOG_ENV

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional

    from ha_notify.checks import CheckResult

MAX_NAME = 200
MAX_LINE = 2000  # characters of one syslog line; reasons are summarised well below this


def state_path(run_dir: str, argv: list[str]) -> str:
    """The state file of one invocation, e.g. ``check-haproxy_--deep.state``."""
    safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in "_".join(argv))
    return os.path.join(run_dir, f"check-{safe[:MAX_NAME]}.state")


def _encode(result: CheckResult) -> bytes:
    """``1``/``0`` and a digest of the reason (unhealthy only) and the notes.

    A healthy reason changes on every restart (it names pids): only the verdict and the
    notes count then. The digest (CRC-32 and Adler-32 and the length) fits any reason in a
    few bytes: comparing it never depends on how long the reason is.
    """
    text = "" if result.healthy else result.reason
    if result.notes:
        text += "\0" + "\0".join(result.notes)
    if not text:
        return b"1\n" if result.healthy else b"0\n"
    import zlib  # built in, 60 us: only when there is something to digest

    data = text.encode("utf-8", "replace")
    digest = f"{len(data)}-{zlib.crc32(data):08x}-{zlib.adler32(data):08x}"
    return f"{'1' if result.healthy else '0'} {digest}\n".encode()


def changed(path: str, result: CheckResult, text: str = "") -> Optional[bool]:
    """Record ``result``; True if it differs from the last one, None if untracked.

    Only the first line (verdict and digest) is compared; ``text``, the line syslog heard,
    is kept after it for ``ha-notify status``.
    """
    new = _encode(result)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        old = b""
    except OSError:
        return None
    else:
        try:
            old = os.read(fd, 128)
        except OSError:
            old = b""
        finally:
            os.close(fd)
    if old.split(b"\n", 1)[0] + b"\n" == new:
        return False
    data = new + text.encode("utf-8", "replace") + b"\n" if text else new
    return True if write_replace(path, data, 0o644) else None


def last_results(run_dir: str) -> list[tuple[str, bool, str]]:
    """Each check's last result from the run directory: (state file, healthy, its line)."""
    try:
        names = sorted(n for n in os.listdir(run_dir) if n.startswith("check-"))
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".state"):
            continue
        try:
            with open(os.path.join(run_dir, name), "rb") as handle:
                head, _, text = handle.read(MAX_LINE * 4 + 256).partition(b"\n")
        except OSError:
            continue
        found.append((name, head[:1] == b"1", text.decode("utf-8", "replace").strip()))
    return found


def line(argv: list[str], result: CheckResult) -> str:
    """What syslog hears: verdict, reason and shared problems, at most MAX_LINE characters."""
    verdict = "healthy" if result.healthy else "unhealthy"
    text = f"check {' '.join(argv)}: {verdict}: {result.reason}"
    if result.notes:
        from ha_notify.checks import shared_line

        text += f"; {shared_line(result.notes)}"
    if len(text) > MAX_LINE:
        cut = len(text) - MAX_LINE
        text = f"{text[:MAX_LINE]}... ({cut} more characters)"
    return text


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
    text = line(argv, result) if not result.healthy or result.notes else ""
    was = changed(state_path(run_dir, argv), result, text)
    if was is False or (was is None and result.healthy and not result.notes):
        return
    (emit or syslog_line)(text or line(argv, result), result.healthy)
