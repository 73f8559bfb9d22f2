"""The shipped reference configs pass haproxy's and keepalived's own config tests."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HAPROXY_CFG = REPO / "contrib" / "haproxy" / "haproxy.cfg"
NODE_CFGS = [REPO / "contrib" / "keepalived" / f"keepalived-node{n}.conf" for n in (1, 2)]
WATCH_CFGS = [REPO / "contrib" / "keepalived" / f"keepalived-node{n}-watch.conf" for n in (1, 2)]

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
needs_keepalived = pytest.mark.skipif(
    shutil.which("keepalived") is None or shutil.which("ip") is None,
    reason="keepalived or iproute2 not installed",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespace)")


def haproxy_check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["haproxy", "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.haproxy
@needs_haproxy
def test_haproxy_cfg_is_valid_without_warnings() -> None:
    """`haproxy -c` accepts contrib/haproxy/haproxy.cfg and prints no warning or alert."""
    done = haproxy_check(HAPROXY_CFG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"\[(WARNING|ALERT)\]", done.stdout + done.stderr), done.stderr


@pytest.mark.haproxy
@needs_haproxy
def test_haproxy_cfg_is_valid_with_stats_password() -> None:
    """The stats page's optional password block parses when HAPROXY_STATS_PASSWORD is set."""
    done = haproxy_check(HAPROXY_CFG, HAPROXY_STATS_PASSWORD="not-a-real-password")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.haproxy
@needs_haproxy
def test_haproxy_check_rejects_a_broken_copy(tmp_path: Path) -> None:
    """The tutorial's valueless `fall` is a parse error, so the config test can fail."""
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(HAPROXY_CFG.read_text().replace("rise 2 fall 3", "rise 2 fall", 1))
    assert haproxy_check(broken).returncode != 0


def test_haproxy_cfg_has_no_tutorial_mistakes() -> None:
    """No nbproc, no plaintext stats password, and the frontend binds the VIP's network."""
    text = HAPROXY_CFG.read_text()
    assert "nbproc" not in re.sub(r"#.*", "", text)
    assert not re.search(r"^\s*stats\s+auth\s+\w+:[^\"$\s]", text, re.MULTILINE)
    assert "bind 192.168.0.130:80" in text


def test_node_configs_differ_only_in_router_id_and_priority() -> None:
    """Apart from the header comment, node 2's file changes exactly router_id and priority."""
    one, two = (p.read_text().splitlines() for p in NODE_CFGS)
    changed = [(a, b) for a, b in zip(one, two) if a != b and not a.startswith("! ")]
    assert len(one) == len(two)
    assert changed == [
        ("    router_id lb1", "    router_id lb2"),
        ("    priority 100", "    priority 90"),
    ]


def test_nopreempt_has_state_backup_on_both_nodes() -> None:
    """keepalived ignores nopreempt unless the instance starts as BACKUP."""
    for path in NODE_CFGS:
        text = path.read_text()
        assert re.search(r"^\s*nopreempt\s*$", text, re.MULTILINE)
        assert re.search(r"^\s*state BACKUP\s*$", text, re.MULTILINE)
        assert not re.search(r"^\s*state MASTER", text, re.MULTILINE)


@pytest.fixture
def netns_with_eth0() -> Iterator[str]:
    """A throwaway namespace with an `eth0`, since keepalived -t checks the interface."""
    name = f"halab-cfgtest-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
            check=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def keepalived_test(ns: str, path: Path) -> subprocess.CompletedProcess[str]:
    # `unshare --pid --fork`: keepalived 2.2.7's config test kills itself with SIGTERM once
    # it has checked a script with script_user set (acassen/keepalived#2587, #2617; fixed in
    # 2.2.8) because it compares getppid() with an unset main pid. As pid 1 of a new pid
    # namespace its getppid() is 0, which is what the check expects.
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "unshare",
            "--pid",
            "--fork",
            "keepalived",
            "--config-test",
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def ha_notify_for_script_user() -> Path:
    """The ha-notify the lab gives keepalived (the script user must be able to run it)."""
    from lab.nodes import ensure_script_user, resolve_ha_notify

    ensure_script_user()
    return resolve_ha_notify(None, print)


@pytest.mark.root
@needs_root
@pytest.mark.keepalived
@needs_keepalived
@pytest.mark.parametrize(
    "path", NODE_CFGS + WATCH_CFGS, ids=["node1", "node2", "node1-watch", "node2-watch"]
)
def test_keepalived_config_test_passes(
    path: Path, netns_with_eth0: str, ha_notify_for_script_user: Path, tmp_path: Path
) -> None:
    """`keepalived -t` accepts each node's file, ha-notify's path being the only change."""
    text = path.read_text()
    assert "/opt/ha-notify/bin/ha-notify" in text
    copy = tmp_path / path.name
    copy.write_text(text.replace("/opt/ha-notify/bin/ha-notify", str(ha_notify_for_script_user)))
    done = keepalived_test(netns_with_eth0, copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr


@pytest.mark.root
@needs_root
@pytest.mark.keepalived
@needs_keepalived
def test_keepalived_config_test_rejects_a_broken_copy(
    netns_with_eth0: str, ha_notify_for_script_user: Path, tmp_path: Path
) -> None:
    """The tutorial's misspelled `route_id` is reported, so the config test can fail."""
    text = (
        NODE_CFGS[0]
        .read_text()
        .replace("/opt/ha-notify/bin/ha-notify", str(ha_notify_for_script_user))
    )
    copy = tmp_path / "broken.conf"
    copy.write_text(text.replace("    router_id lb1", "    route_id lb1"))
    done = keepalived_test(netns_with_eth0, copy)
    assert done.returncode != 0
    assert "route_id" in done.stderr
