"""The stand-in for systemd in a checklist node: real unit files, run the way systemd would.

Supported: ``start stop restart reload enable [--now] disable is-active is-enabled status
daemon-reload``; in units ``ExecStart``, ``ExecReload`` (with ``$MAINPID``), ``User``,
``Group``, ``AmbientCapabilities``, ``Environment``, ``EnvironmentFile``,
``RuntimeDirectory[Mode]``, ``StateDirectory[Mode]``, ``Type=simple|notify|oneshot``,
``Restart=always|on-failure``, ``RestartSec``, ``ConditionFileNotEmpty``, and timers'
``OnBootSec``/``OnUnitActiveSec``. Sandboxing directives are not applied (and reported by
``status``). Each unit's output goes to ``units/UNIT.log`` in the node's folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lab.sdnotify import Notify
from lab.unitfile import SANDBOX, Unit, expand, seconds


@dataclass
class Running:
    unit: Unit
    proc: subprocess.Popen[bytes]
    stopping: bool = False
    deadline: float = float("inf")  # a oneshot started by a timer is killed after this
    notify: Optional[Notify] = None  # Type=notify: open while the service runs


@dataclass
class Manager:
    logs: Path
    running: dict[str, Running] = field(default_factory=dict)
    timers: dict[str, float] = field(default_factory=dict)  # timer name -> next run (monotonic)
    restarts: dict[str, float] = field(default_factory=dict)  # service -> when to restart
    started: dict[str, list[float]] = field(default_factory=dict)  # service -> restart times
    booted: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

    def note(self, text: str) -> None:
        with (self.logs / "init.log").open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    # commands ------------------------------------------------------------------------

    def command(self, argv: list[str]) -> tuple[int, str]:
        now = "--now" in argv
        words = [a for a in argv if not a.startswith("-")]
        if not words:
            return 2, "systemctl (lab stand-in): which command?"
        verb, names = words[0], words[1:]
        if verb == "daemon-reload":
            return 0, ""  # unit files are read at every start
        out: list[str] = []
        code = 0
        for name in names:
            unit = Unit.find(name)
            if unit is None:
                out.append(f"Unit {name} not found.")
                code = 5
                continue
            try:
                code = max(code, self._one(verb, unit, now, out))
            except OSError as exc:
                out.append(f"{unit.name}: {exc}")
                code = 1
        return code, "\n".join(out)

    def _one(self, verb: str, unit: Unit, now: bool, out: list[str]) -> int:
        if verb == "enable":
            self.enable(unit, out)
            return self.start(unit, out) if now else 0
        if verb == "disable":
            for link in Path("/etc/systemd/system").glob(f"*.wants/{unit.name}"):
                link.unlink()
                out.append(f"Removed {link}.")
            return self.stop(unit) if now else 0
        if verb == "start":
            return self.start(unit, out)
        if verb == "stop":
            return self.stop(unit)
        if verb == "restart":
            self.stop(unit)
            return self.start(unit, out)
        if verb == "reload":
            return self.reload(unit, out)
        if verb == "is-active":
            active = self.active(unit)
            out.append("active" if active else "inactive")
            return 0 if active else 3
        if verb == "is-enabled":
            enabled = any(Path("/etc/systemd/system").glob(f"*.wants/{unit.name}"))
            out.append("enabled" if enabled else "disabled")
            return 0 if enabled else 1
        if verb == "status":
            ignored = sorted({k for k in unit.keys if SANDBOX.match(k)})
            out.append(f"{unit.name}: {'active' if self.active(unit) else 'inactive'}")
            if ignored:
                out.append(f"  (lab stand-in: not applied: {', '.join(ignored)})")
            return 0 if self.active(unit) else 3
        out.append(f"systemctl (lab stand-in): {verb} is not supported")
        return 2

    def enable(self, unit: Unit, out: list[str]) -> None:
        for target in unit.get("WantedBy").split():
            wants = Path("/etc/systemd/system") / f"{target}.wants"
            wants.mkdir(exist_ok=True)
            link = wants / unit.name
            if not link.is_symlink():
                link.symlink_to(unit.path)
                out.append(f"Created symlink {link} → {unit.path}.")

    def active(self, unit: Unit) -> bool:
        if unit.name.endswith(".timer"):
            return unit.name in self.timers
        run = self.running.get(unit.name)
        return run is not None and run.proc.poll() is None

    # services ------------------------------------------------------------------------

    def start(self, unit: Unit, out: list[str], wait: bool = True) -> int:
        """systemctl start: a oneshot is waited for unless ``wait`` is False (a timer's run,
        reaped by tick, so that a hung run never blocks the init's loop)."""
        if unit.name.endswith(".timer"):
            first = seconds(unit.get("OnBootSec") or unit.get("OnActiveSec") or "0")
            self.timers[unit.name] = max(self.booted + first, time.monotonic())
            return 0
        if self.active(unit):
            return 0
        condition = unit.get("ConditionFileNotEmpty")
        if condition and not (os.path.isfile(condition) and os.path.getsize(condition)):
            self.note(f"{unit.name}: condition failed: {condition} is missing or empty")
            return 0  # systemd skips the unit and says nothing
        env = unit.environment()
        unit.directories()
        kind = unit.get("Type", "simple")
        notify = Notify(f"/run/lab-notify-{unit.name}") if kind == "notify" else None
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
        argv = unit.credentials() + expand(unit.get("ExecStart"), env)
        with (self.logs / f"{unit.name}.log").open("ab") as log:  # the child keeps its copy
            proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd="/",
            )  # fmt: skip
        self.running[unit.name] = Running(unit, proc, notify=notify)
        if kind == "oneshot" and not wait:
            self.running[unit.name].deadline = time.monotonic() + seconds(
                unit.get("TimeoutStartSec", "90")
            )
        elif kind == "oneshot":
            try:
                code = proc.wait(seconds(unit.get("TimeoutStartSec", "90")))
            except subprocess.TimeoutExpired:
                self.stop(unit)  # systemd kills a start job that times out
                code = -1
            self.running.pop(unit.name, None)
            if code != 0:
                out.append(f"Job for {unit.name} failed (exit {code}); see units/{unit.name}.log")
            return 0 if code == 0 else 1
        timeout = seconds(unit.get("TimeoutStartSec", "90"))
        if notify is not None and not notify.ready(proc, timeout):
            out.append(
                f"Job for {unit.name} failed: it never said READY=1 (see units/{unit.name}.log)"
            )
            self.stop(unit)  # systemd kills a service that never said READY=1
            return 1
        return 0

    def stop(self, unit: Unit) -> int:
        self.timers.pop(unit.name, None)
        self.restarts.pop(unit.name, None)
        run = self.running.pop(unit.name, None)
        if run is not None and run.notify is not None:
            run.notify.close()
        if run is None or run.proc.poll() is not None:
            return 0
        run.stopping = True
        run.proc.terminate()  # KillMode=mixed: SIGTERM to the main process first
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.proc.wait(seconds(unit.get("TimeoutStopSec", "10")))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
        return 0

    def reload(self, unit: Unit, out: list[str]) -> int:
        run = self.running.get(unit.name)
        if run is None or run.proc.poll() is not None:
            out.append(f"{unit.name} is not active, cannot reload.")
            return 1
        env = unit.environment()
        env["MAINPID"] = str(run.proc.pid)
        if run.notify is not None:
            run.notify.drain()
        log = self.logs / f"{unit.name}.log"
        logged = log.stat().st_size if log.is_file() else 0
        for line in unit.keys.get("ExecReload", []):
            done = subprocess.run(expand(line, env), env=env, capture_output=True, check=False)
            if done.returncode != 0:
                text = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
                out.append(f"Job for {unit.name} failed: {line}: {text}")
                return 1
        failed = "" if run.notify is None else run.notify.reloaded(run.proc, 90.0)
        if run.notify is not None and not failed:  # haproxy 2.6 says READY=1 either way
            with log.open("rb") as handle:
                handle.seek(logged)
                said = handle.read().decode("utf-8", "replace").splitlines()
            if any("Loading failure" in line for line in said):
                failed = " / ".join(line.strip() for line in said if "[ALERT]" in line)
                failed = failed or "Loading failure"
        if failed:
            out.append(f"Job for {unit.name} failed: {failed} (see units/{unit.name}.log)")
        return 1 if failed else 0

    # the loop ------------------------------------------------------------------------

    def boot(self, names: tuple[str, ...]) -> None:
        """Start what a booting machine starts: enabled units among ``names``, and ha-notify's."""
        folder = Path("/etc/systemd/system")
        for link in sorted(folder.glob("*.wants/*")):
            if link.name in names or link.name.startswith("ha-notify"):
                unit = Unit.find(link.name)
                if unit is not None:
                    out: list[str] = []
                    self.start(unit, out)
                    for line in out:
                        self.note(line)

    def tick(self) -> None:
        """Reap, restart what died, run due timers."""
        mine = {run.proc.pid: run.proc for run in self.running.values()}
        while True:  # orphans re-parented to this PID 1; our own children via Popen
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is None:
                break
            if info.si_pid in mine:
                mine.pop(info.si_pid).poll()
            else:
                os.waitpid(info.si_pid, 0)
        now = time.monotonic()
        for name, run in list(self.running.items()):
            if run.notify is not None and run.proc.poll() is None:
                run.notify.drain()  # a daemon must never block on a full socket
            if run.proc.poll() is None and now > run.deadline:
                self.note(f"{name}: start timed out (TimeoutStartSec); killed")
                self.stop(run.unit)
            elif run.proc.poll() is not None and not run.stopping and name not in self.restarts:
                run.stopping = True  # handled: noted once, restarted at most once
                if run.notify is not None:
                    run.notify.close()
                    run.notify = None
                policy = run.unit.get("Restart", "no")
                self.note(f"{name}: exited with {run.proc.returncode}")
                if policy == "always" or (policy == "on-failure" and run.proc.returncode != 0):
                    if self._limited(run.unit, now):
                        self.note(f"{name}: start request repeated too quickly; not restarted")
                    else:
                        self.restarts[name] = now + seconds(run.unit.get("RestartSec", "100ms"))
        for name, when in list(self.restarts.items()):
            if now >= when:
                del self.restarts[name]
                self.running.pop(name, None)
                self._background(name, wait=True)
        for name, when in list(self.timers.items()):
            if now >= when:
                timer = Unit.find(name)
                service = Unit.find(name[: -len(".timer")] + ".service")
                if timer is None or service is None:
                    del self.timers[name]
                    continue
                self.timers[name] = now + seconds(timer.get("OnUnitActiveSec", "1min"))
                if not self.active(service):  # a run still going is not started twice
                    self._background(service.name, wait=False)

    def _background(self, name: str, wait: bool) -> None:
        """A start the init makes on its own (restart, timer): failures go to the log, never
        out of the loop (an ExecStart gone missing must not kill the node)."""
        unit = Unit.find(name)
        out: list[str] = []
        try:
            if unit is not None:
                self.start(unit, out, wait=wait)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            out.append(f"{name}: cannot start: {exc}")
        for line in out:
            self.note(line)

    def _limited(self, unit: Unit, now: float) -> bool:
        """systemd's start limit: more than StartLimitBurst (5) restarts within
        StartLimitIntervalSec (10 s; 0 means no limit) and the unit stays down."""
        window = seconds(unit.get("StartLimitIntervalSec", "10s"))
        recent = [t for t in self.started.get(unit.name, []) if now - t < window] + [now]
        self.started[unit.name] = recent
        return window > 0 and len(recent) > int(unit.get("StartLimitBurst", "5"))

    def shutdown(self) -> None:
        for name in list(self.running):
            unit = self.running[name].unit
            self.stop(unit)
