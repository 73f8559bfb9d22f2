"""The pair probe wired into a real `ha-notify watch`, in two network namespaces joined by a
veth pair: alerts reach a webhook (spooled, delivered by a flush child), metrics follow the
episodes, keepalived's MASTER_RX_LOWER_PRI on the FIFO is a split brain, and the ARP wait
never holds up the round that writes the track file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from ha_notify.config import load
from ha_notify.watch.loop import Watcher
from ha_notify.watch.pairwatch import HaproxyBinds
from tests.haproxy_helpers import REPO, wait_for
from tests.http_recorder import Recorder
from tests.pair_net import VIP, Node, Pair
from tests.watch_helpers import watch_toml

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]
LIMIT = 60.0  # seconds any wait below gives up after: a hang guard, not a timing target


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


class NodeWatch:
    """A real `ha-notify watch` inside ``node``'s namespace, its webhook server there too."""

    def __init__(self, node: Node, tmp: Path, watch: Optional[dict[str, Any]] = None) -> None:
        self.node = node
        self.tmp = tmp
        self.hook = node.call(Recorder).start()
        self.config = tmp / "watch.toml"
        self.metrics = tmp / "metrics" / "ha-notify.prom"
        self.track = tmp / "track" / "haproxy"
        tables: dict[str, dict[str, Any]] = {
            "general": {
                "cluster": "test",
                "state_dir": str(tmp / "state"),
                "virtual_addresses": [VIP],
            },
            "checks": {"run_dir": str(tmp / "run")},
            "checks.haproxy": {"pidfile": str(tmp / "none.pid"), "timeout": 0.5},
            "watch": {
                "interval": 0.2,
                "probe_interval": 1,
                "unserved_after": 2,
                "track_file": str(self.track),
                "metrics_file": str(self.metrics),
                **(watch or {}),
            },
            "channels.hook": {"type": "webhook", "url": self.hook.url()},
        }
        self.config.write_text(watch_toml(tables))
        self.config.chmod(0o600)
        self.log = tmp / "watch.log"
        env = dict(os.environ, PYTHONPATH=str(REPO), HA_NOTIFY_SYSLOG="off")
        env.pop("HA_NOTIFY_CONFIG", None)
        argv = [
            sys.executable,
            "-m",
            "ha_notify",
            "watch",
            "--config",
            str(self.config),
            "--verbose",
        ]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", node.ns, *argv], stdout=log, stderr=log, env=env
            )

    def alerts(self) -> list[tuple[str, bool]]:
        """(kind, resolved) of every pair alert the webhook received, in order."""
        bodies = [r.json() for r in self.hook.on("/hook")]
        return [(b["subject"], bool(b["resolved"])) for b in bodies]

    def wait_alerts(self, want: list[tuple[str, bool]]) -> None:
        try:
            wait_for(lambda: len(self.alerts()) >= len(want), f"alerts {want}", LIMIT)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; got {self.alerts()}; {self.log.read_text()[-3000:]}"
            ) from exc
        assert self.alerts() == want, self.log.read_text()[-3000:]

    def metric(self, name: str) -> Optional[str]:
        try:
            text = self.metrics.read_text()
        except FileNotFoundError:
            return None
        row = next((ln for ln in text.splitlines() if ln.startswith(name + "{")), None)
        return row.rsplit(" ", 1)[1] if row else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(LIMIT)
        self.hook.stop()


def test_split_brain_alert_metric_and_end_through_the_watcher(pair: Pair, tmp_path: Path) -> None:
    """Both nodes hold the VIP: the watcher on a sends one split_brain alert to the webhook
    and sets ha_notify_split_brain to 1; b lets go: one resolved alert, the metric back to 0."""
    pair.a.hold()
    pair.b.hold()
    watch = NodeWatch(pair.a, tmp_path)
    try:
        watch.wait_alerts([("split_brain", False)])
        wait_for(lambda: watch.metric("ha_notify_split_brain") == "1", "the metric at 1", LIMIT)
        body = watch.hook.on("/hook")[0].json()
        assert body["pair"]["other_macs"] == [pair.b.mac]
        assert body["pair"]["interface"] == "eth0"
        pair.b.release()
        watch.wait_alerts([("split_brain", False), ("split_brain", True)])
        wait_for(lambda: watch.metric("ha_notify_split_brain") == "0", "the metric at 0", LIMIT)
        assert watch.metric("ha_notify_vip_unserved") == "0"
    finally:
        watch.stop()
    assert watch.proc.returncode == 0


def test_unserved_seen_from_the_node_that_does_not_hold(pair: Pair, tmp_path: Path) -> None:
    """Nobody holds the VIP: b's watcher (the VIP's interface found from its subnet) raises
    one unserved alert; a takes the VIP: one resolved alert, and no split brain anywhere."""
    watch = NodeWatch(pair.b, tmp_path)
    try:
        watch.wait_alerts([("unserved", False)])
        assert watch.metric("ha_notify_vip_unserved") == "1"
        pair.a.hold()
        watch.wait_alerts([("unserved", False), ("unserved", True)])
        wait_for(lambda: watch.metric("ha_notify_vip_unserved") == "0", "unserved 0", LIMIT)
    finally:
        watch.stop()


def test_master_rx_lower_pri_on_the_fifo_is_a_split_brain(pair: Pair, tmp_path: Path) -> None:
    """keepalived's MASTER_RX_LOWER_PRI on [watch] fifo raises split_brain on the holder even
    when no other MAC answers (VRRP dropped one way), once, however many lines come."""
    kconf = tmp_path / "keepalived.conf"
    kconf.write_text(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n"
        f"  virtual_ipaddress {{\n    {VIP}/24 dev eth0\n  }}\n}}\n"
    )
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo, 0o600)
    pair.a.hold()
    watch = NodeWatch(
        pair.a, tmp_path, {"fifo": str(fifo), "keepalived_config": str(kconf), "probe_interval": 5}
    )
    stop = threading.Event()

    def keepalived_adverts() -> None:  # one line per advert, as keepalived writes them
        with open(fifo, "w") as out:
            while not stop.wait(0.5):
                out.write('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150\n')
                out.flush()

    writer = threading.Thread(target=keepalived_adverts, daemon=True)
    writer.start()
    try:
        watch.wait_alerts([("split_brain", False)])
        body = watch.hook.on("/hook")[0].json()
        assert body["pair"]["fifo_signal"] is True
        assert body["pair"]["other_macs"] == []
        stop.set()
        writer.join(LIMIT)
        watch.wait_alerts([("split_brain", False), ("split_brain", True)])
    finally:
        stop.set()
        watch.stop()


def test_a_blocked_arp_probe_does_not_hold_up_the_round(tmp_path: Path) -> None:
    """While the pair thread is stuck in an ARP wait, rounds still run and write the track
    file: the probe runs beside the round, never inside it."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        watch_toml(
            {
                "general": {"state_dir": str(tmp_path / "s"), "virtual_addresses": ["127.0.0.1"]},
                "checks": {"run_dir": str(tmp_path / "run")},
                "checks.haproxy": {"pidfile": str(tmp_path / "none.pid")},
                "watch": {"track_file": str(tmp_path / "t" / "h"), "metrics_file": ""},
            }
        )
    )
    cfg.chmod(0o600)
    watcher = Watcher(load(str(cfg)))
    assert watcher.pair is not None
    release, entered = threading.Event(), threading.Event()

    def stuck(targets: Any, wait: float) -> dict[str, set[str]]:
        entered.set()
        release.wait(LIMIT)
        return {}

    watcher.pair.pair.probe = stuck
    watcher.pair.start()
    try:
        watcher.round()
        assert entered.wait(LIMIT)
        before = (tmp_path / "t" / "h").stat().st_ino
        for _ in range(3):
            watcher.round()  # returns although the probe is still blocked
        assert (tmp_path / "t" / "h").stat().st_ino != before
        assert not release.is_set()
    finally:
        release.set()
        watcher.pair.stop()


def test_not_serving_reads_binds_from_the_checks_haproxy_config(tmp_path: Path) -> None:
    """The not_serving probe takes haproxy's binds from [checks.haproxy] haproxy_config, and
    re-reads the file when it changes."""
    hcfg = tmp_path / "haproxy.cfg"
    hcfg.write_text("frontend web\n  bind *:80\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        watch_toml(
            {
                "general": {"state_dir": str(tmp_path / "s"), "virtual_addresses": ["127.0.0.1"]},
                "checks": {"run_dir": str(tmp_path / "run")},
                "checks.haproxy": {"pidfile": "", "haproxy_config": str(hcfg)},
                "watch": {"track_file": str(tmp_path / "t" / "h"), "metrics_file": ""},
            }
        )
    )
    cfg.chmod(0o600)
    binds = HaproxyBinds(Watcher(load(str(cfg))).health)
    assert [(b.frontend, b.port) for b in binds()] == [("web", 80)]
    hcfg.write_text("listen app\n  bind 10.0.0.1:8443\n  bind :8080\n")
    os.utime(hcfg, ns=(0, 1))  # a new mtime even within the clock's granularity
    assert [(b.frontend, b.host, b.port) for b in binds()] == [
        ("app", "10.0.0.1", 8443),
        ("app", "", 8080),
    ]
    hcfg.unlink()
    assert len(binds()) == 2  # unreadable: the last known binds, logged once
    assert binds.trouble == f"{hcfg}: No such file or directory"
