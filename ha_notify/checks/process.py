"""``ha-notify check process NAME``: is a live (not zombie) process called NAME running?

The process-level logic shared with the haproxy check: a pidfile first (the configured one,
else the usual locations), verified against /proc (alive, not a zombie, really NAME: a pidfile
whose pid was reused by another program is stale), and only when no pidfile exists an exact
name scan of /proc like killall's. Master-worker awareness: a process started with one of
``master_flags``, with children of the same name (live or zombie), or that ``is_master``
recognises is a master, and a master without a live worker of the same name is unhealthy; a
worker (same name, parent is a live master) never counts on its own. Every read is bounded by
the deadline (:mod:`ha_notify.checks.bounded` for the pidfile); with /proc mounted
``hidepid``, the message says the processes are hidden and how to fix it.
"""

from __future__ import annotations

import os

from ha_notify.checks import CheckOptions, CheckResult, procfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Callable, Optional

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


def assess(
    name: str,
    options: CheckOptions,
    master_flags: Iterable[str] = (),
    is_master: Optional[Callable[[Proc], bool]] = None,
) -> CheckResult:
    """Process-level health of ``name``: pidfile first, else a /proc scan."""
    return locate(name, options, master_flags, is_master)[0]


def locate(
    name: str,
    options: CheckOptions,
    master_flags: Iterable[str] = (),
    is_master: Optional[Callable[[Proc], bool]] = None,
) -> tuple[CheckResult, list[int]]:
    """:func:`assess`, and the pids of the live processes it judged (for their environment).

    A process is a master when it was started with one of ``master_flags``, when it has
    children of the same name (live or zombie), or when ``is_master`` says so (haproxy's
    ``master-worker`` keyword in its configuration).
    """
    judge = _Judge(name, options, frozenset(master_flags), is_master)
    if options.no_pidfile:
        pidfiles: tuple[tuple[str, bool], ...] = ()
    elif options.pidfile:
        pidfiles = ((options.pidfile, True),)
    else:
        pidfiles = tuple((path, False) for path in default_pidfiles(name))
    note = ""
    for path, explicit in pidfiles:
        try:
            pids = procfs.read_pidfile(path, options.deadline)
        except FileNotFoundError:
            if explicit:
                why = f"pidfile {path} does not exist ({name} not running?)"
                return CheckResult(False, why), []
            continue
        except TimeoutError:
            if explicit:
                why = f"reading pidfile {path} took longer than --timeout (a hung filesystem?)"
                return CheckResult(False, why), []
            continue
        except OSError as exc:
            if explicit:
                return CheckResult(False, _unreadable(path, exc)), []
            continue
        if pids:
            try:
                return judge.pidfile(path, pids)
            except TimeoutError as exc:
                return CheckResult(False, f"{exc} (pidfile {path})"), []
        # Empty: the daemon is (re)writing it right now, as during a reload. Look at /proc.
        note = f" (pidfile {path} is empty)"
        break
    try:
        procs = procfs.scan(name, options.deadline)
        result, live = judge.scan(procs)
    except TimeoutError as exc:
        return CheckResult(False, f"{exc} (looking for {name})"), []
    if not procs:
        hidden = procfs.hidepid()
        if hidden:
            result = CheckResult(False, f"no {name} process is visible: {_hidden(hidden)}")
    return CheckResult(result.healthy, result.reason + note), live


def _unreadable(path: str, exc: OSError) -> str:
    from ha_notify.checks.bounded import NotRegularFile

    if isinstance(exc, NotRegularFile):
        return f"pidfile {exc}: point --pidfile at the file haproxy writes (its -p option)"
    return f"cannot read pidfile {path}: {exc.strerror}"


def _hidden(option: str) -> str:
    return (
        f"/proc is mounted with {option}, which hides other users' processes from uid "
        f"{os.geteuid()}; add gid=GROUP (a group of this user) to /proc's mount options, "
        "or give the check a pidfile this user can read (--pidfile)"
    )


class _Judge:
    """The verdict on the processes found, master-worker aware, within the deadline."""

    def __init__(
        self,
        name: str,
        options: CheckOptions,
        flags: frozenset[str],
        is_master: Optional[Callable[[Proc], bool]],
    ) -> None:
        self.name = name
        self.deadline = options.deadline
        self.flags = flags
        self.is_master = is_master

    def master(self, proc: Proc, kids: list[Proc]) -> bool:
        if kids:
            return True
        if self.flags and not self.flags.isdisjoint(procfs.cmdline(proc.pid)):
            return True
        return self.is_master is not None and self.is_master(proc)

    def pidfile(self, path: str, pids: list[int]) -> tuple[CheckResult, list[int]]:
        name = self.name
        problems: list[str] = []
        for pid in pids:
            proc = procfs.stat(pid)
            if proc is None:
                hidden = procfs.hidepid() if procfs.exists(pid) else None
                if hidden:  # it exists; all we may know about it
                    why = f"{name} pid {pid} exists (not verified: {_hidden(hidden)})"
                    return CheckResult(True, why), [pid]
                problems.append(f"pid {pid} is not running")
            elif not procfs.matches(proc, name):
                problems.append(f"pid {pid} is {proc.comm!r}, not {name} (stale pidfile)")
            elif not proc.alive:
                problems.append(f"{name} pid {pid} is a zombie")
            else:
                kids = procfs.children(pid, self.deadline)
                if kids is None:  # no /proc/PID/task/TID/children on this kernel
                    kids = [p for p in procfs.scan(name, self.deadline) if p.ppid == pid]
                kids = [kid for kid in kids if procfs.matches(kid, name)]
                if not self.master(proc, kids):
                    return CheckResult(True, f"{name} pid {pid} is running"), [pid]
                result = _judge_master(name, proc, kids)
                if result.healthy:
                    return result, [pid, *(kid.pid for kid in kids if kid.alive)]
                problems.append(result.reason)
        return CheckResult(False, f"pidfile {path}: " + "; ".join(problems)), []

    def scan(self, procs: list[Proc]) -> tuple[CheckResult, list[int]]:
        name = self.name
        if not procs:
            return CheckResult(False, f"no {name} process is running"), []
        live = {proc.pid: proc for proc in procs if proc.alive}
        if not live:
            pids = ", ".join(str(proc.pid) for proc in procs)
            return CheckResult(False, f"only zombie {name} processes: pid {pids}"), []
        failures: list[CheckResult] = []
        for proc in live.values():
            if proc.ppid in live:
                continue  # a worker: judged with its master
            kids = [p for p in procs if p.ppid == proc.pid]
            if self.master(proc, kids):
                result = _judge_master(name, proc, kids)
            else:
                result = CheckResult(True, f"{name} pid {proc.pid} is running")
            if result.healthy:
                return result, list(live)
            failures.append(result)
        return CheckResult(False, "; ".join(result.reason for result in failures)), []


def _judge_master(name: str, master: Proc, kids: list[Proc]) -> CheckResult:
    live = [kid.pid for kid in kids if kid.alive]
    if live:
        workers = "worker" if len(live) == 1 else "workers"
        return CheckResult(True, f"{name} master pid {master.pid} has {len(live)} live {workers}")
    zombies = [str(kid.pid) for kid in kids if not kid.alive]
    detail = f" (zombie worker pid {', '.join(zombies)})" if zombies else ""
    return CheckResult(False, f"{name} master pid {master.pid} has no live worker{detail}")
