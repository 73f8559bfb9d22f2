"""doctor's watcher lint: track_file + vrrp_track_process pairing, and the unit enabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from ha_notify.config import parse as parse_config
from ha_notify.doctor import watcher
from ha_notify.keepalived_conf import parse

REPO = Path(__file__).resolve().parents[1]
GOOD_FILE = """\
track_file haproxy_verdict {
    file "/run/ha-notify/track/haproxy"
    weight 0
    init_file 1 overwrite
}
"""
GOOD_PROCESS = """\
vrrp_track_process ha_notify_watch {
    process /opt/ha-notify/bin/python3 /opt/ha-notify/bin/ha-notify watch --config /etc/ha-notify/config.toml
    param_match partial
    weight 0
}
"""


def lint(tmp_path: Path, text: str, unit: str = "enabled") -> dict[str, tuple[str, str]]:
    """Findings by check name, as (status, detail + fix), for keepalived.conf ``text``."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    config = parse_config({}, Path("/etc/ha-notify/config.toml"))
    units = tmp_path / "units"
    if unit != "missing":
        units.mkdir()
        (units / watcher.UNIT).write_text("[Service]\n")
        if unit == "enabled":
            (units / "multi-user.target.wants").mkdir()
            (units / "multi-user.target.wants" / watcher.UNIT).symlink_to(units / watcher.UNIT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(watcher, "UNIT_DIRS", (units,))
        found = watcher.findings(parse(conf), config)
    return {f.check: (f.status, f"{f.detail} -> {f.fix}") for f in found}


def test_reference_watch_configs_pass(tmp_path: Path) -> None:
    """The shipped keepalived-node*-watch.conf pair the track file with the watcher."""
    for node in (1, 2):
        text = (REPO / "contrib" / "keepalived" / f"keepalived-node{node}-watch.conf").read_text()
        (tmp_path / str(node)).mkdir()
        found = lint(tmp_path / str(node), text)
        assert {k: v[0] for k, v in found.items()} == {
            "track_file haproxy_verdict": "ok",
            "vrrp_track_process (watcher)": "ok",
            watcher.UNIT: "ok",
        }


def test_config_without_the_watcher_is_just_ok(tmp_path: Path) -> None:
    """A vrrp_script-only keepalived.conf gets one ok line, no complaints."""
    text = (REPO / "contrib" / "keepalived" / "keepalived-node1.conf").read_text()
    assert lint(tmp_path, text) == {
        "watch": ("ok", "keepalived.conf does not use the watcher's track_file (not wired) -> ")
    }


@pytest.mark.parametrize(
    ("text", "check", "says"),
    [
        (
            GOOD_FILE.replace("weight 0", "weight 10") + GOOD_PROCESS,
            "track_file haproxy_verdict",
            "set `weight 0`",
        ),
        (
            GOOD_FILE.replace("    init_file 1 overwrite\n", "") + GOOD_PROCESS,
            "track_file haproxy_verdict",
            "add `init_file 1 overwrite`",
        ),
        (
            GOOD_FILE.replace("init_file 1 overwrite", "init_file 1") + GOOD_PROCESS,
            "track_file haproxy_verdict",
            "a missing or old file as healthy",
        ),
        (GOOD_FILE, "vrrp_track_process (watcher)", "stale healthy file could hold MASTER"),
        (
            GOOD_FILE + GOOD_PROCESS.replace("weight 0", "weight -50"),
            "vrrp_track_process (watcher)",
            "weight is -50",
        ),
    ],
)
def test_each_broken_pairing_fails_with_its_fix(
    tmp_path: Path, text: str, check: str, says: str
) -> None:
    """Every hole in the pairing is a fail line that says what to change."""
    status, detail = lint(tmp_path, text)[check]
    assert status == "fail"
    assert says in detail


def test_other_track_file_is_a_warning(tmp_path: Path) -> None:
    """A track_file on another path than [watch] track_file is named, with both paths."""
    found = lint(tmp_path, GOOD_FILE.replace("/run/ha-notify/track/haproxy", "/run/other"))
    assert found["watch"][0] == "warn"
    assert "/run/other" in found["watch"][1] and "/run/ha-notify/track/haproxy" in found["watch"][1]


def test_wrong_interpreter_is_caught(tmp_path: Path) -> None:
    """A process line whose first word is not the script's #! interpreter never matches."""
    script = tmp_path / "ha-notify"
    script.write_text("#!/srv/venv/bin/python3\n")
    text = GOOD_FILE + GOOD_PROCESS.replace("/opt/ha-notify/bin/ha-notify", str(script))
    status, detail = lint(tmp_path, text)["vrrp_track_process (watcher)"]
    assert status == "fail" and "start the process line with /srv/venv/bin/python3" in detail


@pytest.mark.parametrize(
    ("unit", "status", "says"),
    [
        ("enabled", "ok", "enabled (multi-user.target.wants)"),
        ("installed", "fail", "systemctl enable --now ha-notify-watch"),
        ("missing", "fail", "ha-notify example systemd ha-notify-watch.service"),
    ],
)
def test_unit_must_be_enabled(tmp_path: Path, unit: str, status: str, says: str) -> None:
    """The watcher's unit: enabled is ok; installed only, or missing, fails with the command."""
    found = lint(tmp_path, GOOD_FILE + GOOD_PROCESS, unit)[watcher.UNIT]
    assert found[0] == status and says in found[1]
