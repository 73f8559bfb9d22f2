"""What the fleet tests share: when a missing engine skips, and a stand-in watcher's metrics."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

STATES = ("master", "backup", "fault", "stop")


def need(*binaries: str) -> None:
    """Skip when a binary is missing, unless CI=true: there a missing engine is a failure."""
    missing = [b for b in binaries if shutil.which(b) is None]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (scripts/bootstrap.sh installs them)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def metrics(cluster: str, node: str, states: dict[str, str], healthy: bool = True) -> str:
    """A watcher's textfile: ``states`` maps VRRP instance to state, as DESIGN.md names it."""
    labels = f'cluster="{cluster}",node="{node}"'
    lines = ["# TYPE ha_notify_vrrp_state gauge"]
    for instance, current in states.items():
        for state in STATES:
            value = int(state == current)
            lines.append(
                f'ha_notify_vrrp_state{{{labels},vrrp_instance="{instance}",state="{state}"}} {value}'
            )
    lines += [
        "# TYPE ha_notify_check_healthy gauge",
        f'ha_notify_check_healthy{{{labels},check="haproxy"}} {int(healthy)}',
        "# TYPE ha_notify_watch_last_round_timestamp_seconds gauge",
        f"ha_notify_watch_last_round_timestamp_seconds{{{labels}}} {time.time():.3f}",
    ]
    return "\n".join(lines) + "\n"


class StandInWatcher:
    """Rewrites one node's metrics file every half second, atomically, like ``ha-notify watch``."""

    def __init__(self, folder: Path, cluster: str, node: str) -> None:
        self.path = folder / "ha-notify.prom"
        self.cluster, self.node = cluster, node
        self.states: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def set(self, **states: str) -> None:
        """Report these states from now on (written before returning)."""
        self.states = dict(states)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(".ha-notify.prom.tmp")  # not *.prom: the collector skips it
        with self._lock:
            tmp.write_text(metrics(self.cluster, self.node, self.states))
            os.replace(tmp, self.path)

    def start(self) -> StandInWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.write()
