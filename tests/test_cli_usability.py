"""What a person at a shell meets: --version, completion, "did you mean", -c first, help."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import ha_notify
from ha_notify.argv import hoist_config
from tests.conftest import BIN, WriteConfig, mail_channel, run_bin
from tests.smtp_server import SMTPServer


def test_version_flag(cli) -> None:
    """--version prints the one version the package declares, and exits 0."""
    result = cli("--version")
    assert result.code == 0
    assert result.out == f"ha-notify {ha_notify.__version__}\n"


def test_version_is_the_installed_distribution_version() -> None:
    """The console script's version is what pip recorded: pyproject reads __init__.py."""
    from importlib.metadata import version

    proc = run_bin("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ha-notify {version('ha-notify')}"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("stauts", "status"), ("flsuh", "flush"), ("doctro", "doctor"), ("exmaple", "example")],
)
def test_mistyped_command_says_did_you_mean(typo: str, meant: str, cli) -> None:
    """A typo of a command exits 2 naming the command, not "unknown state"."""
    result = cli(typo)
    assert result.code == 2
    assert result.err == f"ha-notify: error: unknown command {typo!r}; did you mean {meant!r}?\n"


def test_mistyped_state_still_names_the_states(cli) -> None:
    """`falut` (the tutorial's typo) is a state typo: the states are named, and the fix."""
    result = cli("falut")
    assert result.code == 2
    assert "unknown state 'falut': expected one of master, backup, fault, stop, deleted" in (
        result.err
    )
    assert "did you mean 'fault'?" in result.err


def test_unrelated_word_names_states_and_help(cli) -> None:
    """A word like no command says where the commands are listed, and names the states."""
    result = cli("blorp")
    assert result.code == 2
    assert "unknown state 'blorp'" in result.err and "see ha-notify --help" in result.err


def test_config_option_before_the_command(
    smtp: SMTPServer, write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """`ha-notify -c FILE master` works as `ha-notify master -c FILE`."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    result = cli("-c", cfg, "master", "-i", "VI_1")
    assert result.code == 0, result.err
    stored = json.loads((tmp_path / "state" / "state.json").read_text())
    assert stored["INSTANCE:VI_1"]["state"] == "master"
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(
    "form",
    [["-c", "{cfg}"], ["--config", "{cfg}"], ["--config={cfg}"], ["-c{cfg}"]],
    ids=["-c", "--config", "--config=", "-cFILE"],
)
def test_config_option_before_a_group(form: list[str], write_config: WriteConfig, cli) -> None:
    """Every spelling of the option works before `config check`, a command of a group."""
    cfg = write_config()
    result = cli(*[f.format(cfg=cfg) for f in form], "config", "check")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{cfg}: ok")


def test_config_option_before_check_uses_that_file(tmp_path: Path) -> None:
    """`ha-notify -c FILE check process` (the fast path outside typer) reads FILE."""
    cfg = tmp_path / "check.toml"
    cfg.write_text("[checks.process]\ntimeout = -1\n")
    proc = run_bin("-c", str(cfg), "check", "process", "init")
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr


def test_missing_config_before_the_command_is_named(cli, tmp_path: Path) -> None:
    """A -c FILE before the command that does not exist is reported like one after it."""
    result = cli("-c", tmp_path / "nope.toml", "status")
    assert result.code == 2
    assert f"{tmp_path / 'nope.toml'}: config file not found" in result.err


HOIST = [
    (["-c", "F", "status"], ["status", "--config", "F"]),
    (["-c", "F", "config", "show"], ["config", "show", "--config", "F"]),
    (["-c", "F", "check", "haproxy", "--deep"], ["check", "haproxy", "--config", "F", "--deep"]),
    (["-c", "F", "check", "--help"], ["check", "--config", "F", "--help"]),
    (["-c", "A", "-c", "B", "flush"], ["flush", "--config", "B"]),
    (["status", "-c", "F"], ["status", "-c", "F"]),
    (["-c", "F"], ["-c", "F"]),
    (["-c"], ["-c"]),
    (["--version"], ["--version"]),
    ([], []),
]


@pytest.mark.parametrize(("args", "expected"), HOIST)
def test_hoist_config_forms(args: list[str], expected: list[str]) -> None:
    """The option moves behind the command path; anything else is left for typer to judge."""
    assert hoist_config(args) == expected


def test_deleted_is_a_command(
    smtp: SMTPServer, write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """keepalived's DELETED state works as `ha-notify deleted`, like master or fault."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    result = cli("DELETED", "-c", cfg, "-i", "VI_9")
    assert result.code == 0, result.err
    stored = json.loads((tmp_path / "state" / "state.json").read_text())
    assert stored["INSTANCE:VI_9"]["state"] == "deleted"
    assert smtp.messages[0].message["X-HA-Notify-State"] == "DELETED"


@pytest.mark.parametrize(
    ("command", "texts"),
    [
        (
            ["notify"],
            ["INSTANCE or GROUP", "e.g. VI_1", "MASTER, BACKUP, FAULT, STOP or DELETED", "0-255"],
        ),
        (["fifo"], ["keepalived's notify FIFO"]),
        (["render"], ["master, backup, fault, stop or deleted"]),
        (["example"], ["config, keepalived, haproxy, systemd", "Only this file"]),
    ],
)
def test_arguments_have_help(command: list[str], texts: list[str], cli) -> None:
    """Every positional argument is explained once in --help, under "Arguments"."""
    result = cli(*command, "--help")
    assert result.code == 0
    assert result.out.count("Arguments:") == 1 and "Positional arguments" not in result.out
    for text in texts:
        assert text in result.out


def test_install_completion_for_bash(tmp_path: Path) -> None:
    """--install-completion writes a bash script that really completes commands and topics."""
    env = {**os.environ, "HOME": str(tmp_path), "HA_NOTIFY_SYSLOG": "off"}
    env["PATH"] = f"{BIN.parent}:{env['PATH']}"
    installed = subprocess.run(
        # "; exit $?": bash stays the parent (not exec'd away), as the user's shell would be
        ["bash", "-c", "ha-notify --install-completion; exit $?"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert "source" in (tmp_path / ".bashrc").read_text()
    complete = (
        "source ~/.bash_completions/ha-notify.sh\n"
        'COMP_WORDS=(ha-notify sta); COMP_CWORD=1; _ha_notify_completion ha-notify; echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(ha-notify example ke); COMP_CWORD=2; _ha_notify_completion ha-notify; echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(ha-notify check ""); COMP_CWORD=2; _ha_notify_completion ha-notify; echo "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", complete], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["status", "keepalived", "haproxy process"]
