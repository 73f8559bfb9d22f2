"""End to end: node_exporter, Prometheus and Alertmanager (Debian's) turn a pair's metrics into
one grouped webhook notification, and its resolution."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.fleet import ALERTMANAGER_PORT, Fleet
from tests.fleet_helpers import StandInWatcher, metrics, need

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace)"),
]
CLUSTER = "shop-lb"
SETTLE = 60.0  # seconds a condition may take on a loaded machine: a bound, not a wait


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    need("ip", "prometheus", "prometheus-alertmanager", "prometheus-node-exporter")
    with Fleet(tmp_path / "fleet", ["lb1", "lb2"], for_override="5s") as running:
        yield running


def firing(fleet: Fleet) -> list[str]:
    return [a["labels"]["alertname"] for a in fleet.get(ALERTMANAGER_PORT, "/api/v2/alerts")]


def test_split_brain_reaches_the_webhook_once_and_resolves(fleet: Fleet) -> None:
    """A healthy pair, then both MASTER, then healthy: one HAPairDualMaster notification, grouped
    by cluster, then its resolution. The metrics files are written by this test here (a
    stand-in watcher per node) and by the real `ha-notify watch` in the lab once it lands;
    every rule's `for:` is cut to 5 s in the copy Prometheus loads."""
    lb1 = StandInWatcher(fleet.metrics_dir(0), CLUSTER, "lb1")
    lb2 = StandInWatcher(fleet.metrics_dir(1), CLUSTER, "lb2")
    lb1.set(VI_1="master")
    lb2.set(VI_1="backup")
    lb1.start()
    lb2.start()
    try:
        fleet.wait(
            "Prometheus sees the healthy pair",
            lambda: len(fleet.query('ha_notify:vrrp_state:fresh{cluster="shop-lb"} == 1')) == 2,
            SETTLE,
        )
        lb2.set(VI_1="master")
        first = fleet.wait("a notification", fleet.notifications, SETTLE)
        lb2.set(VI_1="backup")
        fleet.wait(
            "the resolved notification",
            lambda: any(n["body"]["status"] == "resolved" for n in fleet.notifications()),
            SETTLE,
        )
        fleet.wait("Alertmanager holds no alert", lambda: firing(fleet) == [], SETTLE)
    finally:
        lb1.stop()
        lb2.stop()

    sent: list[dict[str, Any]] = fleet.notifications()
    assert [n["body"]["status"] for n in sent] == ["firing", "resolved"], sent
    assert first[0] == sent[0]
    for note in sent:
        body = note["body"]
        assert note["path"] == "/ha-critical"
        assert body["receiver"] == "ha-critical"
        assert body["groupLabels"] == {"cluster": CLUSTER}
        assert [a["labels"] for a in body["alerts"]] == [
            {
                "alertname": "HAPairDualMaster",
                "cluster": CLUSTER,
                "vrrp_instance": "VI_1",
                "severity": "critical",
            }
        ]
    assert sent[0]["body"]["alerts"][0]["annotations"]["summary"] == (
        "Split brain: 2 nodes are MASTER for VI_1 in shop-lb"
    )


def test_a_damaged_standby_file_leaves_the_pair_degraded(fleet: Fleet) -> None:
    """A standby whose metrics file is damaged (node_exporter drops it and reports a scrape
    error) counts as no standby: HAPairDegraded reaches the webhook, not a healthy pair."""
    lb1 = StandInWatcher(fleet.metrics_dir(0), CLUSTER, "lb1").start()
    try:
        lb1.set(VI_1="master")
        lb2_file = fleet.metrics_dir(1) / "ha-notify.prom"
        lb2_file.write_text(
            metrics(CLUSTER, "lb2", {"VI_1": "backup"})[:-40] + "{{ half a line\n"
        )  # a writer that died mid-file (the watcher renames, a careless tool may not)
        fleet.wait(
            "node_exporter reports lb2's file as broken",
            lambda: fleet.query("node_textfile_scrape_error == 1"),
            SETTLE,
        )
        note = fleet.wait("a notification", fleet.notifications, SETTLE)[0]
    finally:
        lb1.stop()
    assert note["path"] == "/ha-warning"
    assert [a["labels"] for a in note["body"]["alerts"]] == [
        {
            "alertname": "HAPairDegraded",
            "cluster": CLUSTER,
            "vrrp_instance": "VI_1",
            "severity": "warning",
        }
    ]
