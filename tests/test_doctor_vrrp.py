"""`doctor` and VRRP: real nftables rules in a network namespace, read back as the check does."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from ha_notify.doctor import vrrp
from tests.conftest import BIN

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, nft)"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables"),
]

HEAD = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy %s;\n"
RULESETS = [
    # (story, input policy, input rules, extra chains, expected: None = ok, else in the warning)
    ("no rules at all", None, "", "", None),
    ("policy drop, nothing for VRRP", "drop", "tcp dport 22 accept", "", "policy drop"),
    ("policy drop, VRRP accepted", "drop", "ip protocol vrrp accept", "", None),
    ("policy drop, VRRP in a protocol set", "drop", "meta l4proto { tcp, vrrp } accept", "", None),
    ("policy accept, VRRP dropped", "accept", "ip protocol vrrp drop", "", "rule handle"),
    ("policy accept, protocol 112 rejected", "accept", "ip protocol 112 reject", "", "rule handle"),
    (
        "established and loopback accept no advert",
        "drop",
        'ct state established,related accept\n    iifname "lo" accept',
        "",
        "policy drop",
    ),
    (
        "VRRP from the peer accepted in a jumped-to chain",
        "drop",
        "jump peers",
        "  chain peers {\n    ip protocol vrrp ip saddr 192.0.2.2 accept\n  }\n",
        None,
    ),
    (
        "a final catch-all reject (firewalld style)",
        "accept",
        "tcp dport 22 accept\n    reject",
        "",
        "rule handle",
    ),
    ("a conditional drop is not about VRRP", "accept", "ip saddr 10.0.0.0/8 drop", "", None),
    ("everything but VRRP dropped", "accept", "ip protocol != vrrp drop", "", None),
    (
        "output policy drop",
        "accept",
        "",
        "  chain output {\n    type filter hook output priority 0; policy drop;\n  }\n",
        "output: inet filter chain output policy drop",
    ),
]


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"hnvrrp-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def load_rules(ns: str, policy: str | None, rules: str, extra: str) -> None:
    if policy is None:
        return
    text = HEAD % policy + "    " + rules + "\n  }\n" + extra + "}\n"
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True, timeout=30
    )


@pytest.mark.parametrize(("story", "policy", "rules", "extra", "expected"), RULESETS)
def test_vrrp_filtering_table(
    ns: str, story: str, policy: str | None, rules: str, extra: str, expected: str | None
) -> None:
    """Each real ruleset is judged as a VRRP advert would fare in it."""
    load_rules(ns, policy, rules, extra)
    findings = vrrp.findings(("ip", "netns", "exec", ns, "nft"))
    statuses = {f.status for f in findings}
    if expected is None:
        assert statuses == {"ok"}, (story, findings)
    else:
        assert statuses == {"warn"}, (story, findings)
        assert any(expected in f.detail for f in findings), (story, findings)
        assert "ip protocol vrrp accept" in findings[0].fix


def test_doctor_command_warns_about_blocked_vrrp(ns: str, tmp_path: object) -> None:
    """`ha-notify doctor` on a node whose firewall drops VRRP prints the warning and its fix."""
    load_rules(ns, "drop", "tcp dport 22 accept", "")
    env = {**os.environ, "HA_NOTIFY_SYSLOG": "off", "HA_NOTIFY_CONFIG": "/nonexistent.toml"}
    done = subprocess.run(
        ["ip", "netns", "exec", ns, str(BIN), "doctor", "--keepalived-config", "/nonexistent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    line = next(ln for ln in done.stdout.splitlines() if "  vrrp  " in ln)
    assert line.startswith("warn") and "split brain" in line and "fix:" in line


def test_unreadable_ruleset_is_a_warning_not_a_crash() -> None:
    """nft that fails (no permission) is one warning naming the error."""
    findings = vrrp.findings(("sh", "-c", "echo 'Operation not permitted' >&2; exit 1", "nft"))
    assert [(f.status, "Operation not permitted" in f.detail) for f in findings] == [("warn", True)]
