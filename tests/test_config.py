"""Configuration errors: each names the file, the key and what is expected (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import WriteConfig, mail_channel


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


MAIL = '[channels.mail]\ntype = "email"\nhost = "127.0.0.1"\nfrom = "a@b.example"\n'

CASES = [
    ("[general\ncluster = 1\n", "not valid TOML"),
    (
        '[general]\ndeadline = "soon"\n',
        "general.deadline: expected a number > 0 and <= 604800, got 'soon'",
    ),
    ('[general]\nlanguage = "fr"\n', "general.language: expected one of 'en', 'zh_CN', got 'fr'"),
    ('[general]\nclustre = "x"\n', "general.clustre: unknown key"),
    ("[genral]\n", "genral: unknown table"),
    ('[channels.x]\ntype = "pigeon"\n', "channels.x.type: unknown channel type 'pigeon'"),
    ('[channels.x]\nurl = "http://127.0.0.1/"\n', "channels.x.type: missing"),
    (MAIL + 'to = "ops@example.com"\nport = "25"\n', "channels.mail.port: expected a port number"),
    (
        MAIL + 'to = "o@example.com"\nport = 99999\n',
        "channels.mail.port: expected a port number 1-65535, got 99999",
    ),
    (
        MAIL + 'to = "o@example.com"\nport = 0\n',
        "channels.mail.port: expected a port number 1-65535",
    ),
    (MAIL + 'to = "o@example.com"\nport = true\n', "channels.mail.port: expected a port number"),
    (
        '[channels.x]\ntype = "webhook"\nproxy_port = 70000\n',
        "channels.x.proxy_port: expected a port",
    ),
    (MAIL + 'to = ["not-an-address"]\n', "channels.mail.to: expected an email address"),
    (
        MAIL + 'to = ["o@example.com"]\nsecurity = "ssl"\n',
        "channels.mail.security: expected one of",
    ),
    (MAIL + 'to = ["o@example.com"]\nhots = "x"\n', "channels.mail.hots: unknown key"),
    (
        MAIL + 'to = ["o@example.com"]\nstates = ["falut"]\n',
        "channels.mail.states: expected a list",
    ),
    (MAIL + 'to = ["o@example.com"]\npassword = "x"\n', "channels.mail.username: missing"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_config_errors(text: str, message: str, tmp_path: Path, cli) -> None:
    """Each broken config exits 2 with a one-line message naming the file and key."""
    path = write(tmp_path, text)
    result = cli("config", "check", "-c", path)
    assert result.code == 2
    assert message in result.err
    assert str(path) in result.err
    assert result.err.count("\n") == 1


def test_notify_with_bad_config_exits_2(tmp_path: Path, cli) -> None:
    """A notify command with a broken [general] refuses to run and says why."""
    path = write(tmp_path, "[general]\ndeadline = -1\n")
    result = cli("master", "-c", path)
    assert result.code == 2 and "general.deadline" in result.err


def test_open_config_with_inline_password_is_refused(tmp_path: Path, cli) -> None:
    """A config holding a password that others can read is refused with the chmod fix."""
    path = write(
        tmp_path,
        MAIL + 'to = ["o@example.com"]\nusername = "u"\npassword = "hunter2"\n',
        mode=0o644,
    )
    result = cli("config", "check", "-c", path)
    assert result.code == 2
    assert f"chmod 600 {path}" in result.err
    assert "hunter2" not in result.err


def test_open_password_file_is_refused(tmp_path: Path, write_config: WriteConfig, cli) -> None:
    """A password_file readable by group or others is refused with the chmod fix."""
    secret = tmp_path / "pw"
    secret.write_text("hunter2")
    secret.chmod(0o640)
    cfg = write_config({"mail": mail_channel(25, username="u", password_file=str(secret))})
    result = cli("master", "-c", cfg)
    assert result.code == 1  # the event is recorded and spooled; the channel is unusable
    check = cli("config", "check", "-c", cfg)
    assert check.code == 2 and f"chmod 600 {secret}" in check.err
    assert "hunter2" not in check.err + result.err


def test_missing_password_file(tmp_path: Path, write_config: WriteConfig, cli) -> None:
    """A password_file that does not exist is named."""
    cfg = write_config({"mail": mail_channel(25, username="u", password_file="/nonexistent/pw")})
    result = cli("config", "check", "-c", cfg)
    assert result.code == 2 and "/nonexistent/pw does not exist" in result.err


def test_password_env(
    tmp_path: Path, write_config: WriteConfig, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_env reads the secret from the environment; config show masks nothing it lacks."""
    monkeypatch.setenv("SMTP_PW", "from-env-secret")
    cfg = write_config({"mail": mail_channel(25, username="u", password_env="SMTP_PW")})
    assert cli("config", "check", "-c", cfg).code == 0
    shown = cli("config", "show", "-c", cfg)
    assert "from-env-secret" not in shown.out and 'password_env = "SMTP_PW"' in shown.out


def test_config_show_masks_secrets(tmp_path: Path, write_config: WriteConfig, cli) -> None:
    """config show prints defaults and the channels with passwords masked."""
    cfg = write_config({"mail": mail_channel(25, username="u", password="hunter2")})
    shown = cli("config", "show", "-c", cfg)
    assert shown.code == 0
    assert "hunter2" not in shown.out
    assert 'password = "********"' in shown.out
    assert "deadline = 20.0" in shown.out and "[channels.mail]" in shown.out


def test_config_file_named_but_missing(tmp_path: Path, cli) -> None:
    """--config pointing nowhere is an error (a typo must not silently mean 'no channels')."""
    result = cli("master", "-c", tmp_path / "nope.toml")
    assert result.code == 2 and "config file not found" in result.err
