"""This machine's side of delivery: syslog reachable, and the flush timer that retries.

Without ``/dev/log`` every line keepalived's scripts log (a GAVE UP line included) is lost;
without ``ha-notify-flush.timer`` a delivery that failed once waits for the next failover.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Optional

from ha_notify.config import Config
from ha_notify.constants import SYSLOG_ENV
from ha_notify.doctor import Finding, fail, ok, warn

TIMER = "ha-notify-flush.timer"
SERVICE = "ha-notify-flush.service"
UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)
SYSLOG_FIX = (
    "start the syslog service (systemctl start systemd-journald.socket, or apt install rsyslog)"
)


def syslog_finding() -> Finding:
    """Whether a syslog daemon answers on the socket ha-notify logs to."""
    address = os.environ.get(SYSLOG_ENV, "/dev/log")
    if address == "off":
        return warn(
            "syslog", f"{SYSLOG_ENV}=off: ha-notify logs nothing to syslog", f"unset {SYSLOG_ENV}"
        )
    if not os.path.exists(address):
        return fail(
            "syslog",
            f"{address} does not exist: every line keepalived's scripts log (GAVE UP lines "
            "included) is lost",
            SYSLOG_FIX,
        )
    why = _connect(address)
    if why is not None:
        return fail("syslog", f"{address}: {why}: the lines ha-notify logs are lost", SYSLOG_FIX)
    return ok("syslog", f"{address} accepts log lines")


def _connect(address: str) -> Optional[str]:
    last: Optional[OSError] = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_UNIX, kind) as sock:
            try:
                sock.connect(address)
                return None
            except OSError as exc:
                last = exc
                if exc.errno != errno.EPROTOTYPE:
                    break
    assert last is not None
    if last.errno == errno.ECONNREFUSED:
        return "nothing listens on it"
    return last.strerror or str(last)


def timer_finding(config: Optional[Config], dirs: Optional[tuple[Path, ...]] = None) -> Finding:
    """Whether ha-notify-flush.timer (and its service) is installed and enabled."""
    dirs = UNIT_DIRS if dirs is None else dirs
    if config is not None and not config.channels:
        return ok(TIMER, "no channel configured: nothing to retry")
    install = f"ha-notify example systemd (copy {SERVICE} and {TIMER} to /etc/systemd/system)"
    for unit in (SERVICE, TIMER):
        if not any((d / unit).exists() for d in dirs):
            return fail(
                TIMER,
                f"{unit} is not installed: a delivery that failed once waits for the next failover",
                f"{install}, then systemctl enable --now {TIMER}",
            )
    wants = [p for d in dirs if d.is_dir() for p in d.glob(f"*.wants/{TIMER}")]
    if not wants:
        return fail(
            TIMER,
            "installed but not enabled: pending deliveries are not retried after a reboot",
            f"systemctl enable --now {TIMER}",
        )
    return ok(TIMER, f"enabled ({wants[0].parent.name})")
