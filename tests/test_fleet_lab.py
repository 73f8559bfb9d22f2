"""End to end in the lab: a real split brain of the keepalived pair on real watchers reaches a
webhook through node_exporter, Prometheus and Alertmanager as one alert, and resolves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fleet_helpers import need
from tests.test_lab_e2e import failed_checks, run_lab

pytestmark = [pytest.mark.root, pytest.mark.haproxy, pytest.mark.keepalived]


@pytest.fixture(scope="module")
def fleet_lab() -> dict[str, Any]:
    """One run of the lab's fleet scenario (--fleet)."""
    need("nft", "prometheus", "prometheus-alertmanager", "prometheus-node-exporter")
    return run_lab("--fleet")


def test_fleet_lab_passes_every_check(fleet_lab: dict[str, Any]) -> None:
    """The lab exits 0 and none of its own checks failed."""
    assert failed_checks(fleet_lab) == []
    assert fleet_lab["exit_code"] == 0 and fleet_lab["ok"]


def test_split_brain_is_one_grouped_notification_then_resolved(fleet_lab: dict[str, Any]) -> None:
    """VRRP dropped both ways: the webhook gets exactly one firing HAPairDualMaster for the
    pair's cluster on the critical receiver, then its resolution, and nothing else."""
    alert = {
        "alertname": "HAPairDualMaster",
        "cluster": "haproxy-prod",
        "vrrp_instance": "HAProxy_HA",
        "severity": "critical",
    }
    assert fleet_lab["fleet"]["notifications"] == [
        {"status": status, "group": {"cluster": "haproxy-prod"}, "alerts": [alert], "path": path}
        for status, path in (("firing", "/ha-critical"), ("resolved", "/ha-critical"))
    ]


def test_split_brain_timeline_is_in_order(fleet_lab: dict[str, Any]) -> None:
    """keepalived, then Prometheus, then the webhook; the notification comes after the rule's
    shortened for: (5 s, less our 0.2 s polling) and the resolution after the split ended."""
    times = list(fleet_lab["fleet"]["timeline"].values())
    assert times == sorted(times)
    timeline = fleet_lab["fleet"]["timeline"]
    firing = timeline["HAPairDualMaster firing in Prometheus (for: 5s)"]
    assert firing - timeline["Prometheus sees 2 MASTERs (scraped from both exporters)"] >= 4.0
    assert fleet_lab["transitions"]["lb2"][-2:] == ["MASTER", "BACKUP"]
