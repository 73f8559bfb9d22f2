"""End to end: the lab's pair scenarios (``--pair``) with real keepalived, haproxy, nftables
and a watcher on each node: every pair alert and its end reach the mailbox, none is false."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_lab_e2e import failed_checks, pytestmark, run_lab  # noqa: F401

SPLIT_TARGET = 8.0  # probe_interval (5 s) + 3 s


@pytest.fixture(scope="module")
def pair_lab() -> dict[str, Any]:
    """One run of the lab's pair scenarios."""
    return run_lab("--pair")


def test_pair_lab_passes_every_check(pair_lab: dict[str, Any]) -> None:
    """The lab exits 0: split brain both ways and one way, unserved and not_serving were each
    mailed and resolved, and 20 clean failovers raised no pair alert."""
    assert failed_checks(pair_lab) == []
    assert pair_lab["exit_code"] == 0 and pair_lab["ok"]
    assert pair_lab["pair_false_alerts"] == 0


def test_split_brain_is_mailed_within_probe_interval_plus_3s(pair_lab: dict[str, Any]) -> None:
    """From the second MASTER to the first split_brain mail: <= probe_interval + 3 s, and
    every node that raised the alert also sent its end."""
    for key in ("split_brain_both_way", "split_brain_one_way"):
        result = pair_lab[key]
        assert result["mail_after_both_master"] <= SPLIT_TARGET
        raised = {node for node, _, resolved in result["alerts"] if not resolved}
        ended = {node for node, _, resolved in result["alerts"] if resolved}
        assert raised and raised <= ended
