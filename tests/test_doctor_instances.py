"""doctor reads back what keepalived last told this node: FAULT fails, MASTER/BACKUP are ok,
an instance no longer in keepalived.conf is ignored, silence is judged by keepalived's age."""

from __future__ import annotations

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
