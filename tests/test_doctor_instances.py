"""doctor reads back what keepalived last told this node: FAULT fails, MASTER/BACKUP are ok,
an instance no longer in keepalived.conf is ignored, silence is judged by keepalived's age."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from ha_notify.config import load
from ha_notify.doctor import instances as state
from ha_notify.keepalived_conf import parse
from tests.conftest import Result, WriteConfig

Cli = Callable[..., Result]


def conf(tmp: Path, *names: str) -> Any:
    path = tmp / "keepalived.conf"
    path.write_text("".join(f"vrrp_instance {n} {{\n    state BACKUP\n}}\n" for n in names))
    return parse(path)


def findings(tmp: Path, cfg: Path, *names: str) -> list[Any]:
    return state.findings(load(str(cfg)), conf(tmp, *names))


@pytest.mark.parametrize(
    ("recorded", "status"),
    [("MASTER", "ok"), ("BACKUP", "ok"), ("FAULT", "fail"), ("STOP", "warn")],
)
def test_last_state_of_each_instance(
    tmp_path: Path, write_config: WriteConfig, cli: Cli, recorded: str, status: str
) -> None:
    """The state the notify line recorded decides: FAULT cannot become MASTER."""
    cfg = write_config()
    assert cli("notify", "-c", cfg, "INSTANCE", "VI_1", recorded, "100").code == 0
    found = findings(tmp_path, cfg, "VI_1")
    assert [f.status for f in found] == [status]
    assert "INSTANCE:VI_1" in found[0].detail and recorded in found[0].detail
    if recorded == "FAULT":
        assert "journalctl -u keepalived" in found[0].fix


def test_instance_gone_from_keepalived_conf_is_ignored(
    tmp_path: Path, write_config: WriteConfig, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renamed instance keeps its last FAULT in the store forever: it must not fail doctor."""
    cfg = write_config()
    cli("notify", "-c", cfg, "INSTANCE", "OLD_NAME", "FAULT", "100")
    cli("notify", "-c", cfg, "INSTANCE", "VI_1", "BACKUP", "100")
    found = findings(tmp_path, cfg, "VI_1")
    assert [(f.status, "VI_1" in f.detail) for f in found] == [("ok", True)]


@pytest.mark.parametrize(
    ("age", "status", "words"),
    [
        (None, "warn", "not running"),
        (3.0, "ok", "no state recorded yet"),
        (600.0, "warn", "never reached `ha-notify notify`"),
    ],
)
def test_nothing_recorded_is_judged_by_keepalived_age(
    tmp_path: Path,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    age: Any,
    status: str,
    words: str,
) -> None:
    """No state at all: fine just after keepalived started, a warning after 30 s or when
    keepalived is not running."""
    monkeypatch.setattr(state, "keepalived_age", lambda: age)
    found = findings(tmp_path, write_config(), "VI_1")
    assert [f.status for f in found] == [status]
    assert words in found[0].detail


def test_keepalived_age_reads_the_process_table() -> None:
    """keepalived_age is None or a sane age: it parses /proc/PID/stat (comm may hold spaces)."""
    age = state.keepalived_age()
    assert age is None or 0 <= age < 10 * 365 * 86400


def test_damaged_timestamp_does_not_crash(tmp_path: Path) -> None:
    """A NaN, a string or an absurd `since` reads as an unknown time."""
    assert state._when(float("nan")) == "an unknown time"
    assert state._when("soon") == "an unknown time"
    assert state._when(1e300) == "an unknown time"


@pytest.mark.parametrize(
    ("damage", "words"),
    [("{not json", "unreadable"), ("[1, 2]", "not an object (list)"), (None, "unreadable")],
)
def test_damaged_state_file_is_named_not_taken_for_silence(
    tmp_path: Path,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    damage: Any,
    words: str,
) -> None:
    """A damaged state.json (garbage, a list, a FIFO) is named as such: doctor must not say
    keepalived never reached the notify line, nor hang on the FIFO."""
    monkeypatch.setattr(state, "keepalived_age", lambda: 600.0)
    (tmp_path / "state").mkdir()
    path = tmp_path / "state" / "state.json"
    if damage is None:
        os.mkfifo(path)
    else:
        path.write_text(damage)
    found = findings(tmp_path, write_config(), "VI_1")
    assert [f.status for f in found] == ["warn"]
    assert str(path) in found[0].detail and words in found[0].detail
    assert "never reached" not in found[0].detail


def _fake_keepalived(tmp: Path, *wrap: str) -> tuple[subprocess.Popen[str], int]:
    """A process named keepalived (a copy of sh, waiting on stdin), under ``wrap``; its pid
    as this test sees it."""
    fake = tmp / "keepalived"
    if not fake.exists():
        shutil.copy("/bin/sh", fake)
    proc = subprocess.Popen(
        [*wrap, str(fake), "-c", "echo up; read x"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    if "--fork" not in wrap:
        return proc, proc.pid
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return proc, int(kids[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_keepalived_of_another_namespace_is_not_this_nodes(tmp_path: Path) -> None:
    """The host sees a lab's or a container's keepalived (another PID or network namespace):
    doctor must not take it for this node's ("keepalived started 3s ago")."""
    own, own_pid = _fake_keepalived(tmp_path)
    pid_ns, pid_ns_pid = _fake_keepalived(tmp_path, "unshare", "--pid", "--fork", "--kill-child")
    net_ns, net_ns_pid = _fake_keepalived(tmp_path, "unshare", "--net")
    try:
        starts = state.keepalived_starts()
        assert own_pid in starts
        assert pid_ns_pid not in starts and net_ns_pid not in starts
        age = state.keepalived_age()
        assert age is not None and age >= 0
    finally:
        for proc in (own, pid_ns, net_ns):
            proc.communicate("\n")


def test_instance_in_an_included_file_and_sync_group_are_read_back(
    tmp_path: Path, write_config: WriteConfig, cli: Cli
) -> None:
    """An instance defined only in an `include`d file, and a vrrp_sync_group (keepalived's
    GROUP notify), are judged like any instance: their FAULT fails doctor."""
    cfg = write_config()
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vi.conf").write_text("vrrp_instance VI_INC {\n    state BACKUP\n}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text(
        "include conf.d/*.conf\nvrrp_sync_group G1 {\n    group {\n        VI_INC\n    }\n}\n"
    )
    assert cli("notify", "-c", cfg, "INSTANCE", "VI_INC", "FAULT", "100").code == 0
    assert cli("notify", "-c", cfg, "GROUP", "G1", "FAULT", "0").code == 0
    found = state.findings(load(str(cfg)), parse(main))
    assert sorted(
        (f.status, f.detail.split(":")[0] + ":" + f.detail.split(":")[1]) for f in found
    ) == [
        ("fail", "GROUP:G1"),
        ("fail", "INSTANCE:VI_INC"),
    ]
