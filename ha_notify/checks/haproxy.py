"""``ha-notify check haproxy``: process level always, runtime API with ``--deep``.

Process level (see :mod:`ha_notify.checks.process`): a live haproxy, found by pidfile or by
name; a master-worker master (``-W``/``-Ws``, the ``master-worker`` keyword in its
configuration, or haproxy children) needs a live worker; a reload (``-sf``, or a
master-worker reload whose old workers are still finishing) leaves at least one live process
and so never reads as unhealthy.

Deep (see :mod:`ha_notify.checks.stats`): ``show info`` answers and haproxy is not stopping
(unless a newer haproxy is already running: a reload), every frontend is OPEN. Those are
causes local to this node. Backend servers are shared by both nodes of the pair: a backend
with no server UP is reported in ``CheckResult.notes`` but fails the node only when the
operator asks for it with ``min_up`` (``--min-up N``); failing both nodes at once would turn
one site's outage into an outage of every site.

:func:`check` is what a resident caller (the watcher) runs each round: no process-wide side
effects, no file descriptor left open, one runtime-API connection per call;
:func:`options_from_table` builds its options from ``[checks.haproxy]``.
"""

from __future__ import annotations

import os
from time import monotonic

from ha_notify.checks import CheckOptions, CheckResult, process, procfs, summarize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Callable, Optional

    from ha_notify.checks.procfs import Proc

NAME = "haproxy"
MASTER_FLAGS = ("-W", "-Ws")
DEFAULT_CONFIG = "/etc/haproxy/haproxy.cfg"
REPORTED_MIN_UP = 1  # what a backend is reported against when min_up is not set


def check(options: CheckOptions) -> CheckResult:
    """The ``haproxy`` check: verdict, one-line reason, and shared problems in ``notes``."""
    if options.args:
        from ha_notify.errors import CheckError

        raise CheckError(f"check haproxy takes no arguments, got {' '.join(options.args)!r}")
    result, pids = process.locate(NAME, options, MASTER_FLAGS, master_keyword(options))
    if not result.healthy or not options.deep:
        return result
    return _deep(options, result, pids)


def options_from_table(
    table: Mapping[str, object], *, deadline: Optional[float] = None
) -> CheckOptions:
    """Check options from a validated ``[checks.haproxy]`` table, as ``check haproxy`` merges them.

    ``deadline`` defaults to now + the table's ``timeout`` (2 s). Build a new one per round.
    """
    from ha_notify.checks.settings import CheckSettings

    conf = CheckSettings(dict(table))
    timeout = conf.timeout or 2.0
    return CheckOptions(
        name=NAME,
        pidfile=conf.pidfile or None,
        no_pidfile=conf.pidfile == "",
        socket=conf.socket,
        haproxy_config=conf.haproxy_config,
        deep=bool(conf.deep),
        timeout=timeout,
        deadline=monotonic() + timeout if deadline is None else deadline,
        min_up=conf.min_up if conf.min_up is not None else REPORTED_MIN_UP,
        backends_fail=bool(conf.min_up),
        ignore_backends=frozenset(conf.ignore_backends),
    )


def config_paths(options: CheckOptions, proc: Optional[Proc] = None) -> list[str]:
    """haproxy.cfg as the check finds it (the watcher's not_serving probe reads its binds)."""
    return _config_paths(options, proc)


def _config_paths(options: CheckOptions, proc: Optional[Proc] = None) -> list[str]:
    """haproxy.cfg: ``--haproxy-config``, else the process's own ``-f``, else the default."""
    from ha_notify.checks import haproxy_cfg

    if options.haproxy_config:
        return [options.haproxy_config]
    if proc is not None:
        found = haproxy_cfg.config_paths(procfs.cmdline(proc.pid))
        if found:
            cwd = f"{procfs.PROC}/{proc.pid}/cwd"
            return [p if p.startswith("/") else os.path.join(cwd, p) for p in found]
    return [DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else []


def master_keyword(options: CheckOptions) -> Callable[[Proc], bool]:
    """Whether a lone haproxy runs in master-worker mode by its configuration's keyword.

    A master-worker master has ``HAPROXY_MWORKER=1`` in its environment; when we may read
    that, it is the answer (one /proc read). Otherwise the ``master-worker`` keyword of the
    configuration it was started with decides.
    """

    def is_master(proc: Proc) -> bool:
        environ = procfs._read(f"{procfs.PROC}/{proc.pid}/environ", 1 << 20)
        if environ:  # readable (root, or haproxy's own user): haproxy marks its master there
            return b"\0HAPROXY_MWORKER=1\0" in b"\0" + environ
        from ha_notify.checks import haproxy_cfg

        try:
            return haproxy_cfg.master_worker(_config_paths(options, proc), options.deadline)
        except (OSError, TimeoutError):
            return False  # unreadable: judged as a plain haproxy, as before

    return is_master


def socket_address(options: CheckOptions, pids: tuple[int, ...] = ()) -> str:
    """The stats socket: ``--socket``/config, else the one in haproxy.cfg.

    ``$VAR`` in haproxy.cfg is expanded from our environment, else from the environment of
    the running haproxy ``pids``.
    """
    from ha_notify.checks import haproxy_cfg
    from ha_notify.errors import CheckError

    if options.socket:
        return options.socket
    proc = procfs.stat(pids[0]) if pids else None
    paths = _config_paths(options, proc)
    if not paths:
        raise CheckError(
            "--deep needs the stats socket: pass --socket PATH or --haproxy-config FILE "
            "(or set socket/haproxy_config in [checks.haproxy])"
        )
    where = " ".join(paths)
    env = _Environment(pids)
    try:
        return haproxy_cfg.stats_socket(paths, options.deadline, env)
    except haproxy_cfg.Unset as exc:
        raise CheckError(
            f"{where}: the stats socket names ${exc.name}, which is set neither in the check's "
            f"environment nor (readably) in haproxy's; set {exc.name} for the check or pass "
            "--socket PATH"
        ) from exc
    except TimeoutError as exc:
        raise CheckError(f"reading haproxy config {where} took longer than --timeout") from exc
    except OSError as exc:
        raise CheckError(f"cannot read haproxy config {where}: {exc.strerror or exc}") from exc
    except LookupError as exc:
        message = f"{where} has no `stats socket` line; add one or pass --socket PATH"
        raise CheckError(message) from exc


class _Environment(dict):  # type: ignore[type-arg]
    """``os.environ``, then (read only when needed) the running haproxy's environment."""

    def __init__(self, pids: tuple[int, ...]) -> None:
        super().__init__(os.environ)
        self.pids = pids
        self.loaded = False

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:  # type: ignore[override]
        if key not in self and not self.loaded:
            from ha_notify.checks import haproxy_cfg

            self.loaded = True
            for pid in self.pids:
                for name, value in haproxy_cfg.process_environ(pid).items():
                    self.setdefault(name, value)
        return super().get(key, default)


def _deep(options: CheckOptions, alive: CheckResult, pids: list[int]) -> CheckResult:
    from ha_notify.checks import stats

    address = socket_address(options, tuple(pids))
    try:
        reply = stats.ask(address, options.deadline, options.timeout)
    except stats.StatsError as exc:
        return CheckResult(False, str(exc))
    local = stats.frontend_problems(reply)
    shared = stats.backend_problems(reply, options.min_up, options.ignore_backends)
    pid = reply.info.get("Pid", "?")
    if reply.info.get("Stopping", "0") not in ("0", ""):
        if _newer_haproxy(pid, options.deadline):
            return CheckResult(True, f"{alive.reason}; reload in progress (pid {pid} stopping)")
        local.insert(0, f"haproxy pid {pid} is stopping")
    if options.backends_fail:
        local += shared
        shared = []
    if local:
        return CheckResult(False, summarize(local), tuple(shared))
    frontends = sum(1 for row in reply.rows if row.get("svname") == "FRONTEND")
    backends = sum(1 for row in reply.rows if row.get("svname") == "BACKEND")
    reason = f"{alive.reason}; runtime API OK ({frontends} frontends, {backends} backends)"
    return CheckResult(True, reason, tuple(shared))


def _newer_haproxy(stopping_pid: str, deadline: float) -> bool:
    """Whether another live haproxy (not the stopping one nor its master) is running."""
    me = procfs.stat(int(stopping_pid)) if stopping_pid.isdigit() else None
    skip = {me.pid, me.ppid} if me is not None else set()
    return any(p.alive and p.pid not in skip for p in procfs.scan(NAME, deadline))
