"""End to end: docs/getting-started.md's deploy checklist, every block as written, on two
fresh lab machines (`lab.sh --checklist`): each step exits 0, doctor finds nothing on either
node, and the checklist's own failover moves the VIP with both nodes mailing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_lab_e2e import failed_checks, pytestmark, run_lab  # noqa: F401


@pytest.fixture(scope="module")
def checklist_lab() -> dict[str, Any]:
    """One run of the lab's checklist mode."""
    return run_lab("--checklist")


def test_checklist_lab_passes_every_check(checklist_lab: dict[str, Any]) -> None:
    """The lab exits 0: every step, doctor on both nodes, the failover."""
    assert failed_checks(checklist_lab) == []
    assert checklist_lab["exit_code"] == 0 and checklist_lab["ok"]


def test_every_step_ran_on_both_nodes(checklist_lab: dict[str, Any]) -> None:
    """Steps 1..N-1 ran on lb1 and on lb2, the last once on the MASTER; each exited 0."""
    steps = checklist_lab["checklist"]["steps"]
    last = max(s["step"] for s in steps)
    for node in ("lb1", "lb2"):
        assert [s["step"] for s in steps if s["node"] == node and s["step"] < last] == list(
            range(1, last)
        )
    assert len([s for s in steps if s["step"] == last]) == 1
    assert all(s["exit"] == 0 for s in steps)


def test_doctor_finds_nothing_on_either_node(checklist_lab: dict[str, Any]) -> None:
    """`ha-notify doctor` on each node, after its own steps and once both are up: 0 warn,
    0 fail, with the MASTER-fit and vrrp state checks among its findings."""
    runs = checklist_lab["checklist"]["doctor"]
    assert {(r["node"], r["when"]) for r in runs} >= {
        ("lb1", "both nodes done"),
        ("lb2", "both nodes done"),
    }
    assert all(r["warn"] == 0 and r["fail"] == 0 and r["ok"] >= 15 for r in runs)
    for run in runs:
        names = " ".join(run["checks"])
        for check in ("vrrp state", "master-fit chk_haproxy", "ha-notify-flush.timer", "syslog"):
            assert check in names, (run["node"], run["when"], run["checks"])
