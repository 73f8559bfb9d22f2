"""A real `ha-notify watch` process for the tests, inside a test's pid namespace."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from tests.conftest import toml_value
from tests.haproxy_helpers import REPO, Haproxy, Namespace, wait_for


def watch_toml(tables: dict[str, dict[str, Any]]) -> str:
    """A config file from {table: {key: value}}."""
    text = ""
    for name, table in tables.items():
        text += f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    return text


class Watch:
    """`ha-notify watch --verbose` with its own config, log, track file and metrics file."""

    def __init__(
        self,
        ns: Namespace,
        tmp: Path,
        proxy: Optional[Haproxy],
        *,
        interval: float = 0.2,
        timeout: float = 0.5,
        deep: bool = True,
        extra: Optional[dict[str, dict[str, Any]]] = None,
        track_dir: Optional[Path] = None,
    ) -> None:
        self.ns = ns
        self.tmp = tmp
        self.config = tmp / "watch.toml"
        self.track = (track_dir or tmp / "track") / "haproxy"
        self.metrics = tmp / "metrics" / "ha-notify.prom"
        self.log = tmp / "watch.log"
        checks: dict[str, Any] = {"deep": deep, "timeout": timeout}
        if proxy is not None:
            checks.update(pidfile=str(proxy.pidfile), socket=str(proxy.sock))
        tables: dict[str, dict[str, Any]] = {
            "general": {"cluster": "test", "state_dir": str(tmp / "state")},
            "checks": {"run_dir": str(tmp / "run")},
            "checks.haproxy": checks,
            "watch": {
                "interval": interval,
                "track_file": str(self.track),
                "metrics_file": str(self.metrics),
            },
        }
        for name, table in (extra or {}).items():
            tables.setdefault(name, {}).update(table)
        self.write(tables)
        self.proc: Any = None

    def write(self, tables: dict[str, dict[str, Any]]) -> None:
        self.config.write_text(watch_toml(tables))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(REPO), HA_NOTIFY_SYSLOG="off", HA_NOTIFY_RUN_DIR=str(self.tmp / "run")
        )
        env.pop("HA_NOTIFY_CONFIG", None)
        return env

    def argv(self) -> list[str]:
        """The command line (keepalived's vrrp_track_process matches its start)."""
        return [sys.executable, "-m", "ha_notify", "watch", "--config", str(self.config)]

    def start(self) -> Watch:
        argv = [*self.argv(), "--verbose"]
        with self.log.open("a") as log:
            self.proc = self.ns.popen(*argv, stdout=log, stderr=log, env=self.env())
        wait_for(self.pid, "the watcher to start")
        return self

    def pid(self) -> Optional[int]:
        """Host pid of the watcher (nsenter's child)."""
        if self.proc is None:
            return None
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def signal(self, sig: int) -> None:
        pid = self.pid()
        assert pid is not None, "the watcher is not running"
        os.kill(pid, sig)

    def value(self) -> Optional[str]:
        try:
            return self.track.read_text()
        except FileNotFoundError:
            return None

    def wait_value(self, value: str, what: str) -> None:
        wait_for(lambda: self.value() == value, what)

    def log_text(self) -> str:
        return self.log.read_text()

    def stamp(self) -> Optional[int]:
        """The track file's inode: a new one each round (the file is replaced whole)."""
        try:
            return self.track.stat().st_ino
        except FileNotFoundError:
            return None

    def next_rounds(self, count: int) -> None:
        """Wait until ``count`` more rounds have written the track file."""
        for _ in range(count):
            last = self.stamp()
            wait_for(lambda last=last: self.stamp() != last, "a watcher round")  # type: ignore[misc]

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None and self.pid() is not None:
            self.signal(signal.SIGTERM)
        code = int(self.proc.wait(timeout=60))
        self.proc = None
        return code


def kill_all(ns: Namespace, proxy: Haproxy, sig: int) -> None:
    """Send ``sig`` to haproxy's master and workers at once (host pids taken first)."""
    hosts = [ns.host_pid(pid) for pid in [proxy.pids()[0], *proxy.workers()]]
    for host in hosts:
        if host is not None:
            # A worker that left as its master died is already gone.
            with contextlib.suppress(ProcessLookupError):
                os.kill(host, sig)
