"""The fleet kit's rules and routing, checked by the engines' own tools (promtool, amtool) and
a real Alertmanager for inhibition."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML comes with apprise, a test dependency

from lab.fleet import ALERTMANAGER, ALERTMANAGER_PORT, RULES, Fleet
from tests.fleet_helpers import need
from tests.http_recorder import channel, event, send

UNIT_TESTS = sorted((Path(__file__).parent / "prometheus").glob("*.yml"))
DESIGN_ALERTS = {
    "HAPairDualMaster",
    "HAPairNoMaster",
    "HAPairDegraded",
    "HANodeCheckFailing",
    "HANotifyBacklog",
    "HANotifyDeadLetters",
    "HANotifyWatchStale",
}
CHANNEL_ALERT = "HAProxyKeepalivedState"  # ha_notify/channels/alertmanager.py's default name


def tool(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    need(cmd[0])
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )  # the timeout guards hangs only


def alert_rules(path: Path = RULES) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def promtool_test(rules: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` on every unit-test file, against ``rules``."""
    copies = []
    for unit in UNIT_TESTS:
        spec = yaml.safe_load(unit.read_text())
        spec["rule_files"] = [str(rules)]
        copy = tmp_path / unit.name
        copy.write_text(yaml.safe_dump(spec))
        copies.append(str(copy))
    return tool("promtool", "test", "rules", *copies)


# Prometheus rules ---------------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the shipped rules file."""
    done = tool("promtool", "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_check_rejects_a_broken_copy(tmp_path: Path) -> None:
    """A syntax error in a copy fails `promtool check rules`, so the check above can fail."""
    broken = tmp_path / "rules.yml"
    broken.write_text(
        RULES.read_text().replace("count by (cluster, vrrp_instance)", "count by (", 1)
    )
    assert tool("promtool", "check", "rules", str(broken)).returncode != 0


def test_every_design_alert_exists_with_severity_summary_and_runbook() -> None:
    """The seven DESIGN.md alerts exist, each with severity, summary, description and runbook."""
    rules = alert_rules()
    assert {r["alert"] for r in rules} == DESIGN_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_promtool_unit_tests_pass() -> None:
    """Every case under tests/prometheus passes `promtool test rules` against the shipped file."""
    done = tool("promtool", "test", "rules", *map(str, UNIT_TESTS), cwd=UNIT_TESTS[0].parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_is_seen_firing_by_a_unit_test() -> None:
    """Each alert is expected to fire in at least one unit test, not only to stay quiet."""
    fired = set()
    for unit in UNIT_TESTS:
        for case in yaml.safe_load(unit.read_text())["tests"]:
            fired |= {t["alertname"] for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert fired == DESIGN_ALERTS


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("dual master needs three", "== 1) > 1", "== 1) > 2"),
        ("stale watchers count", "<= 120", "<= 100000"),
        (
            "a failing check is a standby",
            "unless on (cluster, node) (ha_notify_check_healthy == 0)",
            "",
        ),
        ("pairs forgotten at once", "ha_notify_vrrp_state[1h]", "ha_notify_vrrp_state[1s]"),
        ("one missed scrape raises stale", "        for: 2m\n", ""),
        (
            "a frozen watcher never stale",
            "(time() - ha_notify_watch_last_round_timestamp_seconds) > 120",
            "(time() - ha_notify_watch_last_round_timestamp_seconds) > 100000",
        ),
        (
            "a vanished node never stale",
            "last_over_time(ha_notify_watch_last_round_timestamp_seconds[1h])",
            "last_over_time(ha_notify_watch_last_round_timestamp_seconds[1s])",
        ),
        (
            "NoMaster on the instant master count (one failed scrape pages)",
            '(last_over_time(ha_notify:vrrp_state:fresh{state="master"}[90s]) == 1)',
            'count by (cluster, vrrp_instance) (ha_notify:vrrp_state:fresh{state="master"} == 1)',
        ),
        (
            "NoMaster remembers a silent MASTER for 10 minutes",
            'ha_notify:vrrp_state:fresh{state="master"}[90s]) == 1)',
            'ha_notify:vrrp_state:fresh{state="master"}[10m]) == 1)',
        ),
        (
            "Degraded on the instant standby count (one failed scrape warns)",
            "last_over_time(ha_notify:vrrp_standby:fresh[90s])",
            "ha_notify:vrrp_standby:fresh",
        ),
        (
            "Degraded on the instant master count (resolves on the MASTER's failed scrape)",
            'last_over_time(ha_notify:vrrp_state:fresh{state="master"}[90s]) == 1\n            )',
            'ha_notify:vrrp_state:fresh{state="master"} == 1\n            )',
        ),
        (
            "Degraded during a split brain",
            "unless on (cluster, vrrp_instance)\n            count by (cluster, vrrp_instance) "
            '(ha_notify:vrrp_state:fresh{state="master"} == 1) > 1\n',
            "",
        ),
        (
            "a failing check filters the standby out instead of counting 0",
            "or on (cluster, node, vrrp_instance)\n"
            '          (ha_notify:vrrp_state:fresh{state="backup"} * 0)\n',
            "",
        ),
        (
            "DualMaster naively remembers a MASTER for 2 minutes (dead MASTER: split brain)",
            'count by (cluster, vrrp_instance) (ha_notify:vrrp_state:fresh{state="master"} == 1) > 1',
            "count by (cluster, vrrp_instance) "
            '(last_over_time(ha_notify:vrrp_state:fresh{state="master"}[2m]) == 1) > 1',
        ),
        (
            "group by cluster only",
            'count by (cluster, vrrp_instance) (ha_notify:vrrp_state:fresh{state="master"} == 1) > 1',
            'count by (cluster) (ha_notify:vrrp_state:fresh{state="master"} == 1) > 1',
        ),
    ],
)
def test_unit_tests_catch_a_weakened_rule(tmp_path: Path, what: str, old: str, new: str) -> None:
    """The unit tests fail against a copy of the rules with one safeguard removed."""
    text = RULES.read_text()
    assert old in text, what
    weakened = tmp_path / "weakened-rules.yml"
    weakened.write_text(text.replace(old, new, 1))
    assert tool("promtool", "check", "rules", str(weakened)).returncode == 0, what
    assert promtool_test(weakened, tmp_path).returncode != 0, what


# Alertmanager routing -----------------------------------------------------------------------


def test_alertmanager_config_passes_amtool_check() -> None:
    """`amtool check-config` accepts the shipped Alertmanager config."""
    done = tool("amtool", "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_amtool_check_rejects_a_broken_copy(tmp_path: Path) -> None:
    """A receiver the route names but nobody defines fails `amtool check-config`."""
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(ALERTMANAGER.read_text().replace("- name: ha-critical", "- name: other", 1))
    assert tool("amtool", "check-config", str(broken)).returncode != 0


def test_inhibition_is_exactly_cluster_and_vrrp_instance() -> None:
    """The one inhibit rule goes from pair alerts to node alerts, equal on exactly the pair."""
    (rule,) = yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]
    assert rule["equal"] == ["cluster", "vrrp_instance"]
    assert rule["source_matchers"] == [
        'alertname=~"HAPairDualMaster|HAPairNoMaster|HAPairDegraded"'
    ]
    assert rule["target_matchers"] == [f'alertname=~"HANodeCheckFailing|{CHANNEL_ALERT}"']


ROUTES = [
    ({"alertname": "HAPairDualMaster", "severity": "critical"}, "ha-critical"),
    ({"alertname": "HAPairNoMaster", "severity": "critical"}, "ha-critical"),
    ({"alertname": "HAPairDegraded", "severity": "warning"}, "ha-warning"),
    ({"alertname": "HANodeCheckFailing", "severity": "warning"}, "ha-warning"),
    ({"alertname": "HANotifyBacklog", "severity": "warning"}, "ha-warning"),
    ({"alertname": "HANotifyDeadLetters", "severity": "warning"}, "ha-warning"),
    ({"alertname": "HANotifyWatchStale", "severity": "warning"}, "ha-warning"),
    ({"alertname": CHANNEL_ALERT, "state": "fault", "severity": "critical"}, "ha-critical"),
    ({"alertname": CHANNEL_ALERT, "state": "stop", "severity": "warning"}, "ha-warning"),
    ({"alertname": CHANNEL_ALERT, "state": "test", "severity": "info"}, "ha-warning"),
    ({"alertname": "SomethingElse"}, "ha-warning"),
]


@pytest.mark.parametrize(("labels", "receiver"), ROUTES)
def test_routes(labels: dict[str, str], receiver: str) -> None:
    """`amtool config routes test` sends each kind of alert to its one receiver."""
    args = [f"{k}={v}" for k, v in {"cluster": "c1", **labels}.items()]
    done = tool(
        "amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receiver}", *args,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [receiver]


def test_every_receiver_is_a_placeholder_that_sends_nowhere() -> None:
    """Each shipped receiver is a webhook on the reserved .invalid domain, resolved included."""
    receivers = yaml.safe_load(ALERTMANAGER.read_text())["receivers"]
    assert [r["name"] for r in receivers] == ["ha-critical", "ha-warning"]
    for receiver in receivers:
        (hook,) = receiver["webhook_configs"]
        assert re.fullmatch(r"http://alert-receiver\.invalid/[a-z-]+", hook["url"])
        assert hook["send_resolved"] is True


# Inhibition on a real Alertmanager ----------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Fleet]:
    need("ip", "prometheus-alertmanager", "amtool")
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace)")
    with Fleet(tmp_path / "am", []) as running:
        yield running


# Alerts as the rules would raise them while pair c1/VI_1 is degraded (lb2 failing its check).
PRESENT = [
    {"alertname": "HAPairDegraded", "cluster": "c1", "vrrp_instance": "VI_1"},
    {"alertname": "HANodeCheckFailing", "cluster": "c1", "node": "lb2", "vrrp_instance": "VI_1"},
    {"alertname": "HANodeCheckFailing", "cluster": "c1", "node": "lb2", "vrrp_instance": "VI_2"},
    {"alertname": "HANodeCheckFailing", "cluster": "c2", "node": "lb2", "vrrp_instance": "VI_1"},
    {"alertname": "HANodeCheckFailing", "cluster": "c1", "node": "solo"},
    {"alertname": "HANotifyBacklog", "cluster": "c1", "node": "lb2", "channel": "mail"},
    {"alertname": "HANotifyWatchStale", "cluster": "c1", "node": "lb2"},
]


def add(fleet: Fleet, **labels: str) -> None:
    fleet.amtool("alert", "add", *(f"{k}={v}" for k, v in labels.items()))


def key(alert: dict[str, Any]) -> tuple[str, ...]:
    labels = alert["labels"]
    return tuple(labels.get(k, "-") for k in ("alertname", "cluster", "vrrp_instance", "node"))


@pytest.mark.root
def test_pair_alert_inhibits_exactly_its_own_pairs_node_alerts(
    alertmanager: Fleet, tmp_path: Path
) -> None:
    """While HAPairDegraded fires for c1/VI_1, Alertmanager mutes that pair's node alerts (the
    rule's and the ha-notify channel's, as posted by the real channel) and nothing else."""
    fleet = alertmanager
    for labels in PRESENT:
        add(fleet, **labels)
    url = f"http://127.0.0.1:{ALERTMANAGER_PORT}"
    ch = channel(
        tmp_path, {"type": "alertmanager", "urls": [url], "labels": {"vrrp_instance": "VI_1"}}
    )
    fleet.inside(lambda: send(ch, event("fault", cluster="c1")))

    muted = {
        ("HANodeCheckFailing", "c1", "VI_1", "lb2"),
        (CHANNEL_ALERT, "c1", "VI_1", "lb1"),
    }

    def snapshot() -> list[dict[str, Any]] | None:
        alerts: list[dict[str, Any]] = json.loads(
            fleet.amtool("alert", "query", "--active", "--inhibited", "-o", "json")
        )
        inhibited = {key(a) for a in alerts if a["status"]["inhibitedBy"]}
        return alerts if len(alerts) == 8 and inhibited == muted else None

    alerts = fleet.wait("the pair's node alerts inhibited", snapshot, 60)
    free = sorted(key(a) for a in alerts if not a["status"]["inhibitedBy"])
    assert free == [
        ("HANodeCheckFailing", "c1", "-", "solo"),
        ("HANodeCheckFailing", "c1", "VI_2", "lb2"),
        ("HANodeCheckFailing", "c2", "VI_1", "lb2"),
        ("HANotifyBacklog", "c1", "-", "lb2"),
        ("HANotifyWatchStale", "c1", "-", "lb2"),
        ("HAPairDegraded", "c1", "VI_1", "-"),
    ]


@pytest.mark.root
def test_channel_alert_without_extra_labels_is_inhibited(
    alertmanager: Fleet, tmp_path: Path
) -> None:
    """The channel's own FAULT alert is muted by its pair's alert with no label added by hand."""
    fleet = alertmanager
    for labels in PRESENT[:2]:
        add(fleet, **labels)
    ch = channel(
        tmp_path, {"type": "alertmanager", "urls": [f"http://127.0.0.1:{ALERTMANAGER_PORT}"]}
    )
    fleet.inside(lambda: send(ch, event("fault", cluster="c1")))

    def inhibited() -> set[str] | None:
        alerts = json.loads(fleet.amtool("alert", "query", "--active", "--inhibited", "-o", "json"))
        names = {a["labels"]["alertname"] for a in alerts if a["status"]["inhibitedBy"]}
        return names if len(alerts) == 3 and "HANodeCheckFailing" in names else None

    assert CHANNEL_ALERT in fleet.wait("the rule's node alert inhibited", inhibited, 60)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_engine_skips_except_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """Without promtool on PATH these tests skip, and under CI=true they fail instead."""
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="not installed: promtool"):
        need("promtool")
