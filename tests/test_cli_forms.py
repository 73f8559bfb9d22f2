"""Every argument form keepalived (or a person) uses, and what each one records or refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import WriteConfig, mail_channel, run_bin
from tests.smtp_server import SMTPServer

FORMS = [
    (["master"], "INSTANCE:default", "master"),
    (["MASTER"], "INSTANCE:default", "master"),
    (["Backup", "--instance", "VI_1"], "INSTANCE:VI_1", "backup"),
    (["fault", "-i", "HAProxy_HA", "-p", "79"], "INSTANCE:HAProxy_HA", "fault"),
    (["stop", "-i", "VI_1"], "INSTANCE:VI_1", "stop"),
    (["notify", "INSTANCE", "VI_1", "MASTER", "100"], "INSTANCE:VI_1", "master"),
    (["notify", "instance", "VI_1", "backup", "90"], "INSTANCE:VI_1", "backup"),
    (["notify", "GROUP", "G1", "FAULT", "0"], "GROUP:G1", "fault"),
    (["notify", "GROUP", "G1", "DELETED"], "GROUP:G1", "deleted"),
]


@pytest.mark.parametrize(("args", "key", "state"), FORMS)
def test_argument_forms(
    args: list[str],
    key: str,
    state: str,
    smtp: SMTPServer,
    write_config: WriteConfig,
    cli,
    tmp_path: Path,
) -> None:
    """Each form records the right instance and state and sends one mail."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    result = cli(*args, "-c", cfg)
    assert result.code == 0, result.err
    stored = json.loads((tmp_path / "state" / "state.json").read_text())
    assert stored[key]["state"] == state
    assert len(smtp.messages) == 1
    assert smtp.messages[0].message["X-HA-Notify-State"] == state.upper()


BAD = [
    (["falut"], "unknown state 'falut': expected one of master, backup, fault, stop, deleted"),
    (["notify", "INSTANCE", "VI_1", "falut", "100"], "unknown state 'falut'"),
    (
        ["notify", "VRRP", "VI_1", "MASTER", "100"],
        "unknown type 'VRRP': expected INSTANCE or GROUP",
    ),
    (["notify", "INSTANCE", "VI_1", "MASTER", "high"], "priority 'high': expected a whole number"),
    (
        ["notify", "INSTANCE", "VI_1", "MASTER", "300"],
        "priority 300: expected a whole number 0-255",
    ),
    (["master", "--priority", "x"], "Invalid value"),
    (["notify", "INSTANCE"], "Missing argument"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_forms_exit_2(
    args: list[str], message: str, smtp: SMTPServer, write_config: WriteConfig, cli
) -> None:
    """Bad input exits 2 with a one-line error naming what to fix, and sends nothing."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    result = cli(*args, "-c", cfg)
    assert result.code == 2
    assert message in result.err
    assert smtp.messages == []


def test_unknown_state_goes_to_syslog(tmp_path: Path) -> None:
    """keepalived discards output, so the error also reaches syslog (a real datagram socket)."""
    import socket

    path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    try:
        proc = run_bin("falut", env={"HA_NOTIFY_SYSLOG": str(path)})
        assert proc.returncode == 2
        line = sock.recv(4096).decode()
        assert "ha-notify:" in line and "unknown state 'falut'" in line
        assert line.startswith("<27>")  # facility daemon (3) * 8 + severity err (3)
    finally:
        sock.close()


def test_no_config_records_and_says_so(tmp_path: Path) -> None:
    """Without any config file the event is recorded and the output says no channel is set."""
    state = tmp_path / "state"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[general]\nstate_dir = "{state}"\n')
    proc = run_bin("master", "-c", str(cfg), "-i", "VI_1")
    assert proc.returncode == 0
    assert "no channel is configured" in proc.stderr
    assert json.loads((state / "state.json").read_text())["INSTANCE:VI_1"]["state"] == "master"


def test_missing_default_config_still_works(tmp_path: Path) -> None:
    """With no file at the default path, `ha-notify master` still works (exit 0)."""
    proc = run_bin("--help")
    assert proc.returncode == 0 and "check" in proc.stdout and "master" in proc.stdout


def test_dry_run_and_render_send_nothing(
    smtp: SMTPServer, write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """--dry-run and render print the message, send nothing and record nothing."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    dry = cli("master", "-c", cfg, "--dry-run", "-i", "VI_1")
    assert dry.code == 0 and "Subject: [haproxy-test]" in dry.out and "VI_1" in dry.out
    shown = cli("render", "fault", "-c", cfg)
    assert shown.code == 0 and "is now FAULT" in shown.out
    assert smtp.messages == []
    assert not (tmp_path / "state" / "state.json").exists()


def test_previous_state_and_sequence(smtp: SMTPServer, write_config: WriteConfig, cli) -> None:
    """The mail says where the instance came from and numbers events per instance."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    for state in ("backup", "master", "fault"):
        assert cli(state, "-c", cfg, "-i", "VI_1").code == 0
    bodies = [m.message.get_body(("plain",)).get_content() for m in smtp.messages]
    assert "Sequence:       3" in bodies[2]
    assert "MASTER -> FAULT" in bodies[2]


@pytest.mark.parametrize(
    "command", [["notify"], ["fifo"], ["render"], ["doctor"], ["config", "show"], ["master"]]
)
def test_help_is_plain_text(cli, command: list[str]) -> None:
    """Help reads "[required]", "[default: ...]": no markup escapes meant for rich."""
    result = cli(*command, "--help")
    assert result.code == 0
    assert "Usage: ha-notify" in result.out and "\\[" not in result.out
