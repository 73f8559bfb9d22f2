"""``ha-notify check process NAME``: is a live (not zombie) process called NAME running?

The process-level logic shared with the haproxy check: a pidfile first (the configured one,
else the usual locations), verified against /proc (alive, not a zombie, really NAME: a pidfile
whose pid was reused by another program is stale), and only when no pidfile exists an exact
name scan of /proc like killall's. ``master_flags`` adds master-worker awareness: a process
started with one of those flags is a master, and a master without a live worker of the same
name is unhealthy; a worker (same name, parent is a live master) never counts on its own.
"""

from __future__ import annotations

from ha_notify.checks import CheckOptions, CheckResult, procfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ha_notify.checks.procfs import Proc


def default_pidfiles(name: str) -> tuple[str, ...]:
    """Where daemons usually keep their pidfile, in the order they are tried."""
    return (f"/run/{name}.pid", f"/var/run/{name}.pid", f"/run/{name}/{name}.pid")


def check(options: CheckOptions) -> CheckResult:
    """The ``process`` check: ``options.args`` is ``(NAME,)``."""
    if len(options.args) != 1 or not options.args[0] or "/" in options.args[0]:
        from ha_notify.errors import CheckError

        raise CheckError("check process needs exactly one process name, e.g. `nginx`")
    return assess(options.args[0], options)


def assess(name: str, options: CheckOptions, master_flags: Iterable[str] = ()) -> CheckResult:
    """Process-level health of ``name``: pidfile first, else a /proc scan."""
    flags = frozenset(master_flags)
    if options.no_pidfile:
        pidfiles: tuple[tuple[str, bool], ...] = ()
    elif options.pidfile:
        pidfiles = ((options.pidfile, True),)
    else:
        pidfiles = tuple((path, False) for path in default_pidfiles(name))
    note = ""
    for path, explicit in pidfiles:
        try:
            pids = procfs.read_pidfile(path)
        except FileNotFoundError:
            if explicit:
                return CheckResult(False, f"pidfile {path} does not exist ({name} not running?)")
            continue
        except OSError as exc:
            if explicit:
                return CheckResult(False, f"cannot read pidfile {path}: {exc.strerror}")
            continue
        if pids:
            return _from_pidfile(name, path, pids, flags)
        # Empty: the daemon is (re)writing it right now, as during a reload. Look at /proc.
        note = f" (pidfile {path} is empty)"
        break
    try:
        procs = procfs.scan(name, options.deadline)
    except TimeoutError:
        return CheckResult(False, f"scanning /proc for {name} took longer than --timeout")
    result = _from_scan(name, procs, flags)
    return CheckResult(result.healthy, result.reason + note)


def _is_master(proc: Proc, flags: frozenset[str]) -> bool:
    return bool(flags) and not flags.isdisjoint(procfs.cmdline(proc.pid))


def _from_pidfile(name: str, path: str, pids: list[int], flags: frozenset[str]) -> CheckResult:
    problems: list[str] = []
    for pid in pids:
        proc = procfs.stat(pid)
        if proc is None:
            problems.append(f"pid {pid} is not running")
        elif not procfs.matches(proc, name):
            problems.append(f"pid {pid} is {proc.comm!r}, not {name} (stale pidfile)")
        elif not proc.alive:
            problems.append(f"{name} pid {pid} is a zombie")
        elif not _is_master(proc, flags):
            return CheckResult(True, f"{name} pid {pid} is running")
        else:
            kids = procfs.children(pid)
            if kids is None:  # no /proc/PID/task/TID/children on this kernel
                kids = [p for p in procfs.scan(name) if p.ppid == pid]
            kids = [kid for kid in kids if procfs.matches(kid, name)]
            result = _judge_master(name, proc, kids)
            if result.healthy:
                return result
            problems.append(result.reason)
    return CheckResult(False, f"pidfile {path}: " + "; ".join(problems))


def _judge_master(name: str, master: Proc, kids: list[Proc]) -> CheckResult:
    live = [kid.pid for kid in kids if kid.alive]
    if live:
        workers = "worker" if len(live) == 1 else "workers"
        return CheckResult(True, f"{name} master pid {master.pid} has {len(live)} live {workers}")
    zombies = [str(kid.pid) for kid in kids if not kid.alive]
    detail = f" (zombie worker pid {', '.join(zombies)})" if zombies else ""
    return CheckResult(False, f"{name} master pid {master.pid} has no live worker{detail}")


def _from_scan(name: str, procs: list[Proc], flags: frozenset[str]) -> CheckResult:
    if not procs:
        return CheckResult(False, f"no {name} process is running")
    live = {proc.pid: proc for proc in procs if proc.alive}
    if not live:
        pids = ", ".join(str(proc.pid) for proc in procs)
        return CheckResult(False, f"only zombie {name} processes: pid {pids}")
    failures: list[CheckResult] = []
    for proc in live.values():
        if proc.ppid in live:
            continue  # a worker: judged with its master
        kids = [p for p in procs if p.ppid == proc.pid]
        if any(kid.alive for kid in kids) or _is_master(proc, flags):
            result = _judge_master(name, proc, kids)
        else:
            result = CheckResult(True, f"{name} pid {proc.pid} is running")
        if result.healthy:
            return result
        failures.append(result)
    return CheckResult(False, "; ".join(result.reason for result in failures))
