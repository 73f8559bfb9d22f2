"""doctor on real keepalived configs: one-line blocks, MASTER-fit scripts, traps, syslog, timer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ha_notify.config import parse as parse_config
from ha_notify.doctor import fitness, host, traps
from ha_notify.keepalived_conf import blocks, parse


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="ha-notify-fitness-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"
GLOBALS = "global_defs {\n    router_id lb1\n    script_user root\n    enable_script_security\n}\n"


def conf(tmp_path: Path, body: str, *, globals_: str = GLOBALS) -> Path:
    """Write keepalived.conf with ``body`` after global_defs."""
    path = tmp_path / "keepalived.conf"
    path.write_text(globals_ + body, encoding="utf-8")
    return path


def instance(extra: str = "", *, state: str = "BACKUP", track: str = "chk") -> str:
    """A vrrp_instance with the given extra lines and a track_script on ``track``."""
    tracked = f"    track_script {{\n        {track}\n    }}\n" if track else ""
    return (
        f"vrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n"
        f"    virtual_router_id 51\n    priority 100\n{extra}{tracked}"
        "    virtual_ipaddress {\n        192.0.2.10/24\n    }\n}\n"
    )


def keepalived_accepts(path: Path, warns: str = "") -> None:
    """keepalived's own config test (-t) passes, or warns with ``warns``: real keepalived syntax."""
    if not os.access(KEEPALIVED, os.X_OK):
        return
    done = subprocess.run(
        [KEEPALIVED, "-t", "-f", str(path), "-l", "-D"], capture_output=True, text=True, check=False
    )
    said = done.stderr + done.stdout
    assert (warns in said) if warns else done.returncode == 0, said


def test_one_line_vrrp_script_is_parsed_as_keepalived_reads_it(tmp_path: Path) -> None:
    """The README's `vrrp_script chk { script "..." interval 2 }` has no script user `interval`."""
    path = conf(
        tmp_path,
        'vrrp_script chk { script "/bin/true --flag" interval 2 timeout 3 }\n' + instance(),
    )
    keepalived_accepts(path)
    (line,) = parse(path).scripts
    assert (line.command, line.user, line.group) == ("/bin/true --flag", None, None)
    (block,) = [b for b in blocks(parse(path)) if b.kind == "vrrp_script"]
    assert block.value("interval") == ["2"] and block.value("timeout") == ["3"]


def test_one_line_script_with_user_keeps_the_user(tmp_path: Path) -> None:
    """`script "cmd" nobody nogroup interval 2` on one line: the user and group, then interval."""
    path = conf(tmp_path, 'vrrp_script chk { script "/bin/true" nobody nogroup interval 2 }\n')
    (line,) = parse(path).scripts
    assert (line.user, line.group) == ("nobody", "nogroup")


@pytest.mark.parametrize(
    ("script", "timeout", "status", "words"),
    [
        ("/bin/true", "", "ok", "exits 0 as root"),
        ("/bin/false", "", "fail", "exits 1 as root"),
        ("/bin/sh -c 'echo haproxy is down >&2; exit 3'", "", "fail", "haproxy is down"),
        # GNU tools end with "Try `X --help' ...": the line before it names the cause.
        ("/bin/sh -c 'echo pidfile not valid; echo Try pgrep --help; exit 2'", "", "fail", "valid"),
        ("/bin/sleep 30", "timeout 1", "fail", "did not finish within 1s"),
        ("/nonexistent/check", "", "fail", "cannot run /nonexistent/check"),
    ],
)
def test_master_fit_runs_each_tracked_script(
    tmp_path: Path, script: str, timeout: str, status: str, words: str
) -> None:
    """Each tracked vrrp_script is run now; a failure or a timeout is a fail naming why."""
    path = conf(
        tmp_path, f'vrrp_script chk {{ script "{script}" interval 2 {timeout} }}\n' + instance()
    )
    keepalived_accepts(path, "not found/accessible" if "nonexistent" in script else "")
    (finding,) = fitness.findings(
        parse(path), ("root", None) if os.geteuid() == 0 else (_me(), None)
    )
    if os.geteuid() != 0:
        words = words.replace("as root", f"as {_me()}")
    assert finding.status == status and words in finding.detail, finding
    assert finding.check == "master-fit chk"


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def test_untracked_script_is_not_run(tmp_path: Path) -> None:
    """A vrrp_script no instance tracks is never run by keepalived, so doctor does not judge it."""
    path = conf(tmp_path, 'vrrp_script unused { script "/bin/false" }\n' + instance(track=""))
    assert fitness.findings(parse(path), ("root", None)) == []


@pytest.mark.root
def test_master_fit_runs_as_the_script_user(world_tmp: Path) -> None:
    """A check only root may read fails when run as the script user (nobody), with its reason."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a script as another user")
    folder = world_tmp / "private"
    folder.mkdir(mode=0o700)
    secret = folder / "token"
    secret.write_text("x")
    path = conf(
        world_tmp,
        f'vrrp_script chk {{ script "/bin/cat {secret}" interval 2 user nobody }}\n' + instance(),
    )
    (finding,) = fitness.findings(parse(path), ("root", None))
    assert finding.status == "fail" and "as nobody" in finding.detail
    assert "Permission denied" in finding.detail
    secret.parent.chmod(0o755)
    (finding,) = fitness.findings(parse(path), ("root", None))
    assert finding.status == "ok" and "as nobody" in finding.detail


TRAPS = [
    (
        "state MASTER + nopreempt",
        instance("    nopreempt\n", state="MASTER"),
        "warn",
        "ignores nopreempt",
    ),
    (
        "weight on the track + nopreempt",
        instance("    nopreempt\n", track="chk weight 20"),
        "fail",
        "track_script chk has weight 20",
    ),
    (
        "weight in the vrrp_script + nopreempt",
        instance("    nopreempt\n").replace("vrrp_instance", "vrrp_instance", 1),
        "fail",
        "weight -30",
    ),
    (
        "route_id typo",
        instance().replace("    priority", "    route_id 7\n    priority"),
        "fail",
        "route_id",
    ),
    (
        "router_id in the instance",
        instance().replace("virtual_router_id 51", "router_id 51"),
        "fail",
        "router_id belongs in global_defs",
    ),
    (
        "auth_type PASS",
        instance(
            "    authentication {\n        auth_type PASS\n        auth_pass secret12\n    }\n"
        ),
        "warn",
        "auth_type PASS",
    ),
]


@pytest.mark.parametrize(("what", "body", "status", "words"), TRAPS, ids=[t[0] for t in TRAPS])
def test_tutorial_traps(tmp_path: Path, what: str, body: str, status: str, words: str) -> None:
    """Each tutorial trap is one line with the admin's verdict and the fix."""
    weight = "weight -30" if "vrrp_script" in what else ""
    path = conf(tmp_path, f'vrrp_script chk {{ script "/bin/true" interval 2 {weight} }}\n' + body)
    if "route_id" not in what and "router_id" not in what:
        keepalived_accepts(path, "nopreempt will not work" if "MASTER" in what else "")
    found = [f for f in traps.findings(parse(path)) if f.status != "ok"]
    assert [f.status for f in found] == [status], found
    assert words in found[0].detail and found[0].fix


def test_nopreempt_with_weight_zero_is_fine(tmp_path: Path) -> None:
    """The reference setting, nopreempt with weight 0 (FAULT on failure), raises no trap."""
    path = conf(
        tmp_path, 'vrrp_script chk { script "/bin/true" weight 0 }\n' + instance("    nopreempt\n")
    )
    assert [f.status for f in traps.findings(parse(path))] == ["ok"]


def test_shipped_keepalived_configs_have_no_trap() -> None:
    """contrib/keepalived's configs, which the docs tell operators to copy, raise no trap."""
    for path in sorted((Path(__file__).parents[1] / "contrib" / "keepalived").glob("*.conf")):
        assert [f.status for f in traps.findings(parse(path))] == ["ok"], path


def test_syslog_missing_unanswered_and_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No socket and a socket nobody listens on are fails; a listening one is ok."""
    address = tmp_path / "log"
    monkeypatch.setenv("HA_NOTIFY_SYSLOG", str(address))
    missing = host.syslog_finding()
    assert missing.status == "fail" and "does not exist" in missing.detail
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(address))
        assert host.syslog_finding().status == "ok"
    stale = host.syslog_finding()  # the file is left behind, nobody reads it
    assert stale.status == "fail" and "nothing listens" in stale.detail


def test_flush_timer_missing_disabled_enabled(tmp_path: Path) -> None:
    """The timer missing or not enabled is a fail; enabled is ok; no channel needs none."""
    config = parse_config(
        {"channels": {"log": {"type": "webhook", "url": "http://127.0.0.1:9/"}}}, None
    )
    units = tmp_path / "units"
    units.mkdir()
    assert "not installed" in host.timer_finding(config, (units,)).detail
    for unit in (host.SERVICE, host.TIMER):
        (units / unit).write_text("[Unit]\n")
    disabled = host.timer_finding(config, (units,))
    assert disabled.status == "fail" and "not enabled" in disabled.detail
    (units / "timers.target.wants").mkdir()
    (units / "timers.target.wants" / host.TIMER).symlink_to(units / host.TIMER)
    assert host.timer_finding(config, (units,)).status == "ok"
    assert host.timer_finding(parse_config({}, None), (tmp_path / "none",)).status == "ok"
