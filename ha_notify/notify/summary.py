"""The short haproxy summary a notification carries, when ``[checks.haproxy]`` is set.

It reuses the health check: process level from the pidfile or /proc, then the stats socket
for backends and their servers. Bounded in time; a failure becomes a line, never an error.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ha_notify.checks import CheckOptions, stats
from ha_notify.checks import haproxy as haproxy_check
from ha_notify.errors import CheckError

log = logging.getLogger(__name__)
TIMEOUT = 1.0  # seconds: the alert must not wait for a hung haproxy


def _backends(reply: stats.StatsReply) -> list[str]:
    servers: dict[str, list[tuple[str, str, str]]] = {}
    for row in reply.rows:
        if row.get("type") == "2":
            servers.setdefault(row.get("pxname", "?"), []).append(
                (row.get("svname", "?"), row.get("status", "?"), row.get("weight", "1"))
            )
    lines = []
    for backend, members in servers.items():
        up = sum(1 for _, status, weight in members if stats.server_up(status, weight))
        down = [f"{n} {s}" for n, s, w in members if not stats.server_up(s, w)]
        tail = f" (not UP: {', '.join(down[:5])})" if down else ""
        lines.append(f"backend {backend}: {up}/{len(members)} servers UP{tail}")
    return lines


def haproxy_summary(checks: dict[str, Any]) -> tuple[str, ...]:
    """Lines such as ``process: up`` and ``backend www: 1/1 servers UP``; () if unconfigured."""
    table = checks.get("haproxy")
    if not isinstance(table, dict):
        return ()
    deadline = time.monotonic() + TIMEOUT
    pidfile = table.get("pidfile")
    options = CheckOptions(
        name="haproxy",
        pidfile=pidfile or None,
        no_pidfile=pidfile == "",
        socket=table.get("socket"),
        haproxy_config=table.get("haproxy_config"),
        timeout=TIMEOUT,
        deadline=deadline,
    )
    try:
        result = haproxy_check.check(options)
    except Exception as exc:  # a summary must never stop an alert
        log.warning("haproxy summary failed: %s", exc)
        return (f"process: unknown ({exc})",)
    lines = [f"process: {'up' if result.healthy else 'DOWN'} ({result.reason})"]
    if not result.healthy:
        return tuple(lines)
    try:
        address = haproxy_check.socket_address(options)
    except CheckError:
        return tuple(lines)
    try:
        reply = stats.ask(address, deadline, TIMEOUT)
    except stats.StatsError as exc:
        return (*lines, f"stats: {exc}")
    return (*lines, *_backends(reply))
