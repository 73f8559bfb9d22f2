"""End to end: the failover lab runs the reference pair for real and everything happens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("ip", "haproxy", "keepalived", "unshare", "runuser", "useradd", "nft")

pytestmark = [
    pytest.mark.root,
    pytest.mark.haproxy,
    pytest.mark.keepalived,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, keepalived)"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"
    ),
]


def run_lab(*flags: str) -> dict[str, Any]:
    """Run the lab with ``flags``; its JSON result and exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HA_NOTIFY_")}
    done = subprocess.run(
        [sys.executable, "-m", "lab.failover_lab", "--json", *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode == 2:
        pytest.skip(f"the lab cannot run here: {done.stderr.strip()}")
    sys.stderr.write(done.stderr)  # the timeline, shown by pytest when a test fails
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"lab exit {done.returncode}, no JSON:\n{done.stdout}\n{done.stderr}")
    result["exit_code"] = done.returncode
    return result


@pytest.fixture(scope="module")
def lab() -> dict[str, Any]:
    """One lab run for the whole module; its JSON result."""
    return run_lab()


@pytest.fixture(scope="module")
def watch_lab() -> dict[str, Any]:
    """One run of the lab's watcher scenario (--watch)."""
    return run_lab("--watch")


def test_watch_lab_fails_over_fast_and_survives_reloads(watch_lab: dict[str, Any]) -> None:
    """On the watcher + track_file: haproxy killed on the MASTER moves traffic to lb2, and
    20 reloads on the MASTER cause no VRRP transition (the lab's own checks hold both)."""
    assert failed_checks(watch_lab) == []
    assert watch_lab["exit_code"] == 0 and watch_lab["ok"]
    assert watch_lab["watch_reloads"]["transitions"] == {"lb1": 0, "lb2": 0}
    assert in_order(watch_lab["transitions"]["lb1"], ["BACKUP", "MASTER", "FAULT", "BACKUP"])
    assert watch_lab["transitions"]["lb2"][-1] == "MASTER"


def failed_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in result["checks"] if not c["ok"]]


def in_order(sequence: list[str], wanted: list[str]) -> bool:
    it = iter(sequence)
    return all(state in it for state in wanted)


def mail(result: dict[str, Any], node: str, state: str) -> dict[str, Any]:
    found = [m for m in result.get("mails", []) if m["node"] == node and m["state"] == state]
    assert found, f"no {state} mail from {node}: {result.get('mails')}"
    return found[0]


def test_lab_passes_every_check(lab: dict[str, Any]) -> None:
    """The lab exits 0 and none of its own checks failed."""
    assert failed_checks(lab) == []
    assert lab["exit_code"] == 0 and lab["ok"]


def test_state_transitions(lab: dict[str, Any]) -> None:
    """lb1 goes BACKUP, MASTER, FAULT, BACKUP and takes over again when lb2's haproxy is
    killed (step 6); lb2 goes BACKUP, MASTER, then FAULT."""
    assert lab["transitions"]["lb1"] == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
    assert in_order(lab["transitions"]["lb2"], ["BACKUP", "MASTER", "FAULT"])
    assert lab["transitions"]["lb2"][-1] == "FAULT"


def test_reloads_on_the_master_move_nothing(lab: dict[str, Any]) -> None:
    """20 reloads of the MASTER's master-worker haproxy (the pidfile check config): no VRRP
    transition on either node, and haproxy's pidfile is never rewritten (the check reads it)."""
    assert lab["step5"] == {
        "reloads": 20,
        "transitions": {"lb1": 0, "lb2": 0},
        "pidfile_unchanged": True,
    }


def test_haproxy_killed_fails_over_within_target(lab: dict[str, Any]) -> None:
    """haproxy SIGKILLed on the MASTER: the pidfile check fails it, and traffic flows through
    the other node within 2 s (a check per second plus the standby's VRRP skew, 0.6 s)."""
    assert 0 < lab["step6"]["failover_seconds"] <= 2.0


def test_vip_moves_to_lb2_and_stays_there(lab: dict[str, Any]) -> None:
    """The VIP is on lb1 first, on lb2 after the failover, and nopreempt keeps it there."""
    assert lab["step1"]["vip"] == "lb1"
    assert lab["step2"]["vip"] == "lb2"
    assert lab["step4"]["vip"] == "lb2"


def test_host_routing_through_the_vip(lab: dict[str, Any]) -> None:
    """Each Host header reaches its own backend through the VIP, via lb1."""
    seen = {t["host"]: (t["answer"] or {}).get("backend") for t in lab["step1"]["traffic"]}
    assert seen == {
        "www.example.com": "webapp1",
        "static.example.com": "webapp2",
        "video.example.com": "webapp3",
    }
    assert all(t["answer"]["via"] == "lb1" for t in lab["step1"]["traffic"])


def test_standby_haproxy_listens_on_the_vip(lab: dict[str, Any]) -> None:
    """lb2's haproxy is up on the VIP it does not hold (ip_nonlocal_bind) and healthy."""
    assert "192.168.0.130:80" in lab["step1"]["standby_listening"]
    names = {c["name"]: c["ok"] for c in lab["checks"]}
    assert names["standby haproxy frontend OPEN, 3 servers UP"]
    assert names["standby passes ha-notify check haproxy --deep"]


def test_traffic_flows_through_lb2_after_failover(lab: dict[str, Any]) -> None:
    """After haproxy stops on lb1, requests through the VIP are served by lb2."""
    names = {c["name"]: c["ok"] for c in lab["checks"]}
    assert names["traffic through lb2 after failover"]
    assert names["traffic still through lb2"]
    assert lab["step2"]["failover_seconds"] > 0


@pytest.mark.parametrize(
    ("node", "state"), [("lb1", "FAULT"), ("lb2", "MASTER"), ("lb1", "BACKUP")]
)
def test_mails_received(lab: dict[str, Any], node: str, state: str) -> None:
    """Each transition's mail arrives from that node, its subject naming node and state."""
    m = mail(lab, node, state)
    assert state in m["subject"].upper()
    assert node in m["subject"]
    assert m["peer"] == {"lb1": "192.168.0.128", "lb2": "192.168.0.129"}[node]
    assert m["to"] == ["ops1@example.com", "ops2@example.com"]


def test_notify_keeps_state_under_keepalived(lab: dict[str, Any]) -> None:
    """Run by keepalived (script user, umask 0177), ha-notify still records state: lb1's
    FAULT mail names the state it left."""
    m = mail(lab, "lb1", "FAULT")
    assert "MASTER" in f"{m['subject']}\n{m['body']}"


def test_no_script_security_warning(lab: dict[str, Any]) -> None:
    """keepalived ran ha-notify under enable_script_security without any complaint."""
    assert lab["security_warnings"] == []


def test_relay_down_during_failover_then_spooled_alerts_delivered(lab: dict[str, Any]) -> None:
    """With the relay down during the failover, both nodes spool their alert, nothing gets
    through, and both arrive after the relay comes back (the headline promise)."""
    names = {c["name"]: c["ok"] for c in lab["checks"]}
    assert names["no mail got through while the relay was down"]
    assert names["the spooled alerts are delivered when the relay comes back"]
    assert names["nothing left in the spools"]
    relay = lab["relay"]
    assert relay["spooled"]["lb1"] >= 1 and relay["spooled"]["lb2"] >= 1
    assert set(relay["delivered_after_up"]) == {"lb1 FAULT", "lb2 MASTER"}
    assert all(after > 0 for after in relay["delivered_after_up"].values())


def test_timeline_offsets_add_up_with_their_brackets(lab: dict[str, Any]) -> None:
    """Step 2's "+N.NNs" lines are their bracket minus the step's own start bracket."""
    lines = lab["timeline"]
    start = next(line for line in lines if "2) haproxy stopped on lb1" in line)
    base = float(start[1:].split("s]")[0])
    step = lines[lines.index(start) + 1 : lines.index(start) + 5]
    for line in step:
        bracket = float(line[1:].split("s]")[0])
        offset = float(line.split("+", 1)[1].split("s", 1)[0])
        assert abs(base + offset - bracket) <= 0.011, (start, line)


def test_kept_folder_survives_the_next_sweep(tmp_path: Path) -> None:
    """A --keep run's folder (KEPT inside) outlives a later run's sweep; a dead run's does not."""
    sys.path.insert(0, str(REPO))
    from lab import netns

    kept = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}fffffe-", dir=str(netns.TMP_ROOT)))
    dead = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}fffffe-", dir=str(netns.TMP_ROOT)))
    (kept / netns.KEPT).write_text("kept\n")
    (kept / "mail").mkdir()
    try:
        removed = netns.sweep()
        assert kept.is_dir() and (kept / "mail").is_dir() and str(kept) not in removed
        assert not dead.exists() and str(dead) in removed
    finally:
        shutil.rmtree(kept, ignore_errors=True)
        shutil.rmtree(dead, ignore_errors=True)
