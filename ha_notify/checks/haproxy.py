"""``ha-notify check haproxy``: process level always, runtime API with ``--deep``.

Process level (see :mod:`ha_notify.checks.process`): a live haproxy, found by pidfile or by
name; a master-worker master (``-W``/``-Ws``, Debian's systemd unit) needs a live worker; a
reload (``-sf``, or a master-worker reload whose old workers are still finishing) leaves at
least one live process and so never reads as unhealthy.

Deep (see :mod:`ha_notify.checks.stats`): ``show info`` answers and haproxy is not stopping
(unless a newer haproxy is already running: a reload), every frontend is OPEN, and every
backend that has servers has at least ``min_up`` of them UP, ignored backends aside.
"""

from __future__ import annotations

import os

from ha_notify.checks import CheckOptions, CheckResult, process, procfs

NAME = "haproxy"
MASTER_FLAGS = ("-W", "-Ws")
DEFAULT_CONFIG = "/etc/haproxy/haproxy.cfg"


def check(options: CheckOptions) -> CheckResult:
    """The ``haproxy`` check."""
    if options.args:
        from ha_notify.errors import CheckError

        raise CheckError(f"check haproxy takes no arguments, got {' '.join(options.args)!r}")
    result = process.assess(NAME, options, MASTER_FLAGS)
    if not result.healthy or not options.deep:
        return result
    return _deep(options, result)


def socket_address(options: CheckOptions) -> str:
    """The stats socket: ``--socket``/config, else the one in haproxy.cfg."""
    from ha_notify.errors import CheckError

    if options.socket:
        return options.socket
    path = options.haproxy_config
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    if path is None:
        raise CheckError(
            "--deep needs the stats socket: pass --socket PATH or --haproxy-config FILE "
            "(or set socket/haproxy_config in [checks.haproxy])"
        )
    from ha_notify.checks.stats import socket_from_config

    try:
        return socket_from_config(path)
    except OSError as exc:
        raise CheckError(f"cannot read haproxy config {path}: {exc.strerror or exc}") from exc
    except LookupError as exc:
        raise CheckError(f"{exc}; add one or pass --socket PATH") from exc


def _deep(options: CheckOptions, alive: CheckResult) -> CheckResult:
    from ha_notify.checks import stats

    address = socket_address(options)
    try:
        reply = stats.ask(address, options.deadline, options.timeout)
    except stats.StatsError as exc:
        return CheckResult(False, str(exc))
    found = stats.problems(reply, options.min_up, options.ignore_backends)
    pid = reply.info.get("Pid", "?")
    if reply.info.get("Stopping", "0") not in ("0", ""):
        if _newer_haproxy(pid):
            return CheckResult(True, f"{alive.reason}; reload in progress (pid {pid} stopping)")
        found.insert(0, f"haproxy pid {pid} is stopping")
    if found:
        return CheckResult(False, "; ".join(found))
    frontends = sum(1 for row in reply.rows if row.get("svname") == "FRONTEND")
    backends = sum(1 for row in reply.rows if row.get("svname") == "BACKEND")
    return CheckResult(
        True, f"{alive.reason}; runtime API OK ({frontends} frontends, {backends} backends)"
    )


def _newer_haproxy(stopping_pid: str) -> bool:
    """Whether another live haproxy (not the stopping one nor its master) is running."""
    me = procfs.stat(int(stopping_pid)) if stopping_pid.isdigit() else None
    skip = {me.pid, me.ppid} if me is not None else set()
    return any(p.alive and p.pid not in skip for p in procfs.scan(NAME))
