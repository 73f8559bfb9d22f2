"""The lab's moving parts: one load-balancer node (haproxy + keepalived), the mailbox, and
the ha-notify executable that keepalived's script user can run."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional

from lab import configs, install
from lab.netns import LabError, die_with_parent, ns_cmd, run

SCRIPT_USER = "keepalived_script"
SCRIPT_GROUP = "haproxy"
STATES = ("MASTER", "BACKUP", "FAULT", "STOP")
_STATE_LINE = re.compile(
    r"\((?P<inst>[^)]+)\) entering (?P<state>MASTER|BACKUP|FAULT) state", re.IGNORECASE
)
# What keepalived logs when it refuses or cannot run a script (enable_script_security).
SECURITY_LINE = re.compile(
    r"unsafe permissions|script.?security|security violation|not executable|"
    r"could not find script|unable to set default user|disabling",
    re.IGNORECASE,
)


_CAUSE_LINE = re.compile(
    r"quorum (?:lost|gained) for tracked process \S+|"
    r"VRRP_Script\(\S+\) (?:failed|succeeded)|"
    r"receive advertisement timeout|received higher prio advert",
    re.IGNORECASE,
)


@dataclass
class StateEvent:
    state: str
    wall: float
    mono: float
    line: str
    cause: str  # the last line before it that says why (a track or a script), if any


@dataclass
class LogWatcher:
    """Drains a process's output into a file and notes VRRP state changes as they appear."""

    path: Path
    events: list[StateEvent] = field(default_factory=list)
    lines: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, line)
    cause: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self, stream: IO[str]) -> threading.Thread:
        def pump() -> None:
            with self.path.open("a") as out:
                for line in stream:
                    out.write(line)
                    out.flush()
                    self._note(line.rstrip("\n"))

        thread = threading.Thread(target=pump, name=f"log-{self.path.name}", daemon=True)
        thread.start()
        return thread

    def _note(self, line: str) -> None:
        now_wall, now_mono = time.time(), time.monotonic()
        with self._lock:
            self.lines.append((now_mono, line))
            cause = _CAUSE_LINE.search(line)
            if cause:
                self.cause = cause.group(0)
            m = _STATE_LINE.search(line)
            if m:
                state = m.group("state").upper()
                if not self.events or self.events[-1].state != state:
                    self.events.append(StateEvent(state, now_wall, now_mono, line, self.cause))

    def state(self) -> Optional[str]:
        with self._lock:
            return self.events[-1].state if self.events else None

    def first(self, state: str, after: float = 0.0) -> Optional[StateEvent]:
        with self._lock:
            return next((e for e in self.events if e.state == state and e.mono >= after), None)

    def grep(self, pattern: re.Pattern[str]) -> list[str]:
        with self._lock:
            return [line for _, line in self.lines if pattern.search(line)]

    def when(self, pattern: re.Pattern[str], after: float = 0.0) -> Optional[float]:
        """When (monotonic) the first line matching ``pattern`` after ``after`` appeared."""
        with self._lock:
            return next((t for t, line in self.lines if t >= after and pattern.search(line)), None)


class Node:
    """One load balancer: haproxy and keepalived in namespace ``ns``, hostname ``lbN``."""

    def __init__(
        self, index: int, ns: str, workdir: Path, ha_notify: Path, *, watch: bool = False
    ) -> None:
        self.index = index
        self.watch = watch  # health through `ha-notify watch` + track_file, not vrrp_script
        self.watcher: Optional[subprocess.Popen[bytes]] = None
        self.name = f"lb{index}"
        self.ns = ns
        self.address = configs.NODE_ADDRESS[index]
        self.dir = workdir / self.name
        self.ha_notify = ha_notify
        self.haproxy_bin = os.path.realpath(shutil.which("haproxy") or "/usr/sbin/haproxy")
        self.haproxy: Optional[subprocess.Popen[bytes]] = None
        self.keepalived: Optional[subprocess.Popen[str]] = None
        self.log = LogWatcher(self.dir / "keepalived.log")

    # configuration -------------------------------------------------------------------

    def write_configs(self, script_uid: int, script_gid: int) -> None:
        (self.dir / "run").mkdir(parents=True)
        notify_dir = self.dir / "ha-notify"
        (notify_dir / "state").mkdir(parents=True)
        (self.dir / "haproxy.cfg").write_text(configs.haproxy_cfg(self.dir))
        (self.dir / "keepalived.conf").write_text(
            configs.keepalived_conf(
                self.index, self.dir, self.ha_notify, self.haproxy_bin, watch=self.watch
            )
        )
        if self.watch:  # what the unit's RuntimeDirectory= and ReadWritePaths= give the watcher
            for folder in (configs.track_file(self.dir).parent, self.dir / "metrics"):
                folder.mkdir(parents=True)
                os.chown(folder, script_uid, script_gid)
        cfg = notify_dir / "config.toml"
        cfg.write_text(configs.to_toml(configs.ha_notify_config(self.index, self.dir)))
        # The script user owns its config (mode 600, as ha-notify demands) and its state.
        for path, mode in ((notify_dir, 0o700), (notify_dir / "state", 0o700), (cfg, 0o600)):
            os.chown(path, script_uid, script_gid)
            os.chmod(path, mode)

    # haproxy ---------------------------------------------------------------------------

    @property
    def pidfile(self) -> Path:
        return self.dir / "haproxy.pid"

    @property
    def check_socket(self) -> Path:
        return self.dir / "run" / "check.sock"

    def start_haproxy(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        cmd = [
            self.haproxy_bin,
            "-Ws",
            "-f",
            str(self.dir / "haproxy.cfg"),
            "-p",
            str(self.pidfile),
        ]
        with (self.dir / "haproxy.log").open("ab") as log:
            self.haproxy = subprocess.Popen(
                ns_cmd(self.ns, cmd),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )

    def stop_haproxy(self) -> None:
        """What `systemctl stop haproxy` does: SIGTERM to the master, wait for it."""
        proc, self.haproxy = self.haproxy, None
        terminate(proc, 10)

    def stats(self, command: str) -> str:
        """Ask the read-only stats socket (the one ha-notify's deep check uses)."""
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(str(self.check_socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def haproxy_ready(self) -> bool:
        if self.haproxy is None or self.haproxy.poll() is not None:
            raise LabError(f"{self.name}: haproxy exited; see {self.dir / 'haproxy.log'}")
        try:
            return "Pid:" in self.stats("show info")
        except OSError:
            return False

    def listening(self, port: int) -> list[str]:
        out = run(ns_cmd(self.ns, ["ss", "-Hltn", f"sport = :{port}"]), check=False)
        return [line.split()[3] for line in out.splitlines() if line.strip()]

    # ha-notify watch -------------------------------------------------------------------

    def start_watcher(self) -> None:
        """What ha-notify-watch.service runs: the watcher as the script user, group haproxy."""
        cmd = [
            *_hostname(self.name),
            "setpriv",
            f"--reuid={SCRIPT_USER}",
            f"--regid={SCRIPT_GROUP}",
            "--clear-groups",
            # AmbientCapabilities=CAP_NET_RAW in the unit: the ARP probe's raw socket.
            "--inh-caps=+net_raw",
            "--ambient-caps=+net_raw",
            str(self.ha_notify),
            "watch",
            "--config",
            str(self.dir / "ha-notify" / "config.toml"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HA_NOTIFY_")}
        env["HA_NOTIFY_LOG_STDERR"] = "1"
        with (self.dir / "watch.log").open("ab") as log:
            self.watcher = subprocess.Popen(
                ns_cmd(self.ns, cmd),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                env=env,
            )

    def verdict(self) -> Optional[str]:
        """What the watcher last wrote to the track file (None before it did)."""
        try:
            return configs.track_file(self.dir).read_text().strip()
        except OSError:
            return None

    def watch_unhealthy(self) -> int:
        """How many times the watcher logged an unhealthy verdict so far."""
        try:
            text = (self.dir / "watch.log").read_text(errors="replace")
        except OSError:
            return 0
        return text.count("check haproxy: unhealthy")

    def stop_watcher(self) -> None:
        proc, self.watcher = self.watcher, None
        terminate(proc, 8)

    def kill_haproxy(self) -> None:
        """SIGKILL to haproxy's master and workers: a crash, not a stop."""
        if self.haproxy is None:
            return
        host = self.haproxy.pid  # `ip netns exec` execs haproxy: the same pid
        kids = Path(f"/proc/{host}/task/{host}/children").read_text().split()
        for pid in [host, *map(int, kids)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.haproxy.wait(10)
        self.haproxy = None

    def haproxy_master_ready(self) -> bool:
        """Whether the master (re-executed on each reload) handles SIGUSR2 again: a reload
        sent before that is lost."""
        if self.haproxy is None:
            return False
        try:
            status = Path(f"/proc/{self.haproxy.pid}/status").read_text()
        except OSError:
            return False
        caught = next(
            (ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:")), "0"
        )
        return bool(int(caught, 16) & (1 << (signal.SIGUSR2 - 1)))

    def reload_haproxy(self) -> None:
        """What `systemctl reload haproxy` does with -Ws: SIGUSR2 to the master."""
        assert self.haproxy is not None
        self.haproxy.send_signal(signal.SIGUSR2)

    # keepalived ------------------------------------------------------------------------

    def start_keepalived(self) -> None:
        cmd = [
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.name,
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--vrrp",
            "--namespace",
            self.ns,
            "-f",
            str(self.dir / "keepalived.conf"),
            "--pid",
            str(self.dir / "keepalived.pid"),
            "--vrrp_pid",
            str(self.dir / "vrrp.pid"),
        ]
        # --namespace (not `ip netns exec`): keepalived opens the kernel's process-event
        # connector, which exists only in the initial namespace, before it moves itself into
        # the node's namespace; that is what makes vrrp_track_process work in the lab.
        # Scripts inherit keepalived's environment: keep the caller's HA_NOTIFY_* out of it,
        # so the lab tests the config files and nothing else.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HA_NOTIFY_")}
        self.keepalived = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            preexec_fn=die_with_parent,
            env=env,
        )
        assert self.keepalived.stdout is not None
        self.log.follow(self.keepalived.stdout)

    def stop_keepalived(self) -> None:
        proc, self.keepalived = self.keepalived, None
        terminate(proc, 8)

    def holds_vip(self) -> bool:
        from lab.netns import addresses

        return configs.VIP in addresses(self.ns, "eth0")

    def stop(self) -> None:
        self.stop_keepalived()
        self.stop_watcher()
        self.stop_haproxy()


@dataclass
class Mail:
    node: str
    peer: str
    state: Optional[str]
    subject: str
    body: str
    received: float
    recipients: list[str]
    names_node: bool


class Mailbox:
    """The SMTP server's spool: one JSON file per message, read in arrival order."""

    def __init__(self, folder: Path, node_by_address: dict[str, str]) -> None:
        self.folder = folder
        self.node_by_address = node_by_address
        self.mails: list[Mail] = []
        self._seen: set[str] = set()

    def poll(self) -> list[Mail]:
        fresh = []
        for path in sorted(self.folder.glob("*.json")):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            record = json.loads(path.read_text())
            msg = email.message_from_string(record["data"], policy=email.policy.default)
            subject = str(msg.get("subject", ""))
            part = msg.get_body(preferencelist=("plain",))
            body = part.get_content() if part is not None else ""
            node = self.node_by_address.get(record["peer"], record["peer"])
            words = re.findall(r"[A-Za-z]+", subject)
            state = next((w.upper() for w in words if w.upper() in STATES), None)
            fresh.append(
                Mail(
                    node,
                    record["peer"],
                    state,
                    subject,
                    body,
                    record["received"],
                    record["rcpt_tos"],
                    node in subject or node in body,
                )
            )
        self.mails.extend(fresh)
        return fresh

    def find(self, node: str, state: str, after: float) -> Optional[Mail]:
        self.poll()
        return next(
            (m for m in self.mails if m.node == node and m.state == state and m.received >= after),
            None,
        )


# ha-notify as the script user ----------------------------------------------------------


def _hostname(name: str) -> list[str]:
    """A UTS namespace named ``name``: the node's mails and pair alerts say lb1, lb2."""
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', name]


def terminate(proc: Optional[subprocess.Popen[Any]], grace: float) -> None:
    """SIGTERM (what systemctl stop sends), then SIGKILL after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def ensure_script_user() -> tuple[int, int]:
    """The unprivileged user keepalived runs scripts as; created (system user) if absent."""
    try:
        entry = pwd.getpwnam(SCRIPT_USER)
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SCRIPT_USER,
            ],
            check=False,
        )
        entry = pwd.getpwnam(SCRIPT_USER)  # raises if useradd failed for another reason
    import grp

    return entry.pw_uid, grp.getgrnam(SCRIPT_GROUP).gr_gid


def resolve_ha_notify(explicit: Optional[str], say: Callable[[str], Any]) -> Path:
    """An ha-notify that keepalived's script user can execute (see lab.install)."""
    if explicit:
        exe = Path(explicit).resolve()
        if not install.runs_as(exe, SCRIPT_USER, SCRIPT_GROUP):
            raise LabError(f"{exe}: {SCRIPT_USER} cannot run it (`{exe} --help` failed)")
        return exe
    return install.runnable_by(SCRIPT_USER, SCRIPT_GROUP, say)
