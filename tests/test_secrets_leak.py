"""No secret value ever shows up in output, syslog, or any file under state_dir.

Every command runs as keepalived would run it (a fresh process), against real local servers
with some failures: a refused login, a server that is down, a webhook that is down.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WriteConfig, mail_channel, run_bin
from tests.smtp_server import SMTPServer, free_port

INLINE = "inline-pw-Zq81vT"  # wrong password, inline in the config: the login is refused
FILED = "file-pw-Xk42bN"  # right password, from password_file
ENVED = "env-pw-Mv77cR"  # from password_env, for a server that is down
HOOK_SECRET = "hook-secret-Lp09wE"  # HMAC secret of a webhook that is down
URL_TOKEN = "url-token-Rt55yU"  # the token in a webhook URL's path
SECRETS = (INLINE, FILED, ENVED, HOOK_SECRET, URL_TOKEN)


def forms(secret: str) -> list[bytes]:
    """The secret as bytes, and base64 of it in AUTH PLAIN / LOGIN shapes."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(b"\0alerts\0" + raw)]


class Syslog:
    """A datagram socket standing in for /dev/log, read all the time by a thread.

    A unix datagram queue holds only a few messages: an unread one blocks the sender.
    """

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            data = self.sock.recv(65536)
            if data == b"--stop--":
                return
            self.received.append(data)

    def close(self, path: Path) -> list[bytes]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"--stop--", str(path))
        self.thread.join()
        self.sock.close()
        return self.received


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[Syslog]:
    log = Syslog(tmp_path / "log.sock")
    yield log
    if log.thread.is_alive():
        log.close(tmp_path / "log.sock")


def test_no_secret_leaks_anywhere(
    tmp_path: Path, write_config: WriteConfig, syslog: Syslog
) -> None:
    """notify, flush, config show/check, status, render, doctor and test never reveal secrets."""
    server = SMTPServer(users={"alerts": FILED}).start()
    try:
        secret_file = tmp_path / "smtp-password"
        secret_file.write_text(FILED + "\n")
        secret_file.chmod(0o600)
        down = free_port()
        cfg = write_config(
            {
                "refused": mail_channel(server.port, username="alerts", password=INLINE),
                "filed": mail_channel(
                    server.port, username="alerts", password_file=str(secret_file)
                ),
                "enved": mail_channel(down, username="alerts", password_env="HA_TEST_SMTP_PW"),
                "hook": {
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{down}/hooks/{URL_TOKEN}",
                    "secret": HOOK_SECRET,
                },
            }
        )
        env = {
            "HA_NOTIFY_SYSLOG": str(tmp_path / "log.sock"),
            "HA_NOTIFY_LOG_STDERR": "1",
            "HA_TEST_SMTP_PW": ENVED,
            "HA_NOTIFY_CONFIG": str(cfg),
        }
        commands = [
            ["master", "-i", "VI_1", "-p", "100"],
            ["notify", "INSTANCE", "VI_1", "FAULT", "50"],
            ["flush"],
            ["flush", "--retry-dead"],
            ["config", "show"],
            ["config", "check"],
            ["status"],
            ["status", "--json"],
            ["render", "master"],
            ["backup", "--dry-run"],
            ["doctor", "--keepalived-config", str(tmp_path / "none.conf")],
            ["doctor", "--json", "--send", "--keepalived-config", str(tmp_path / "none.conf")],
            ["test"],
            ["test", "--channel", "hook"],
            ["falut"],
        ]
        outputs: list[bytes] = []
        for argv in commands:
            done = run_bin(*argv, "-c", str(cfg), env=env)
            assert "Traceback" not in done.stderr, (argv, done.stderr)
            outputs.append(f"{argv}\n{done.stdout}\n{done.stderr}".encode())
    finally:
        server.stop()
    assert any(b"refused the login" in o for o in outputs)  # the failures really happened
    logged = syslog.close(tmp_path / "log.sock")
    assert logged, "nothing reached the syslog socket"
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any("dead" in p.parts or "pending" in p.parts for p in files)
    places = [(f"output {i}", o) for i, o in enumerate(outputs)]
    places += [("syslog", b"\n".join(logged))]
    places += [(str(p), p.read_bytes()) for p in files]
    for where, data in places:
        for secret in SECRETS:
            for form in forms(secret):
                assert form not in data, f"{secret} leaked into {where}"


def test_rendered_templates_hold_no_secret(tmp_path: Path, write_config: WriteConfig) -> None:
    """render and --dry-run show the payload that would be sent, without the HMAC secret."""
    cfg = write_config(
        {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret": HOOK_SECRET}}
    )
    done = run_bin("render", "master", "-c", str(cfg))
    assert done.returncode == 0, done.stderr
    assert '"event_id"' in done.stdout and HOOK_SECRET not in done.stdout + done.stderr


def test_config_show_masks_secrets_in_urls_and_headers(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """URL credentials, paths, headers and apprise tokens never reach `config show`."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[general]\nstate_dir = "{tmp_path / "state"}"\n'
        '[channels.hook]\ntype = "webhook"\n'
        'url = "https://user:URLPW456@hooks.example.com/T0/B0/URLTOKEN?k=QUERYKEY"\n'
        'headers = { Authorization = "Bearer HDRTOKEN" }\n'
        '[channels.am]\ntype = "alertmanager"\nurls = ["http://amuser:AMPASS@127.0.0.1:9093"]\n'
        '[channels.more]\ntype = "apprise"\nurls = ["tgram://BOTTOKEN/CHATID"]\n'
    )
    path.chmod(0o600)
    shown = cli("config", "show", "-c", path)
    assert shown.code == 0, shown.err
    for secret in (
        "URLPW456",
        "URLTOKEN",
        "QUERYKEY",
        "HDRTOKEN",
        "AMPASS",
        "amuser",
        "BOTTOKEN",
        "CHATID",
    ):
        assert secret not in shown.out
    assert "https://hooks.example.com/********" in shown.out
    assert "http://127.0.0.1:9093/********" in shown.out
    assert "tgram://********" in shown.out
    assert 'Authorization = "********"' in shown.out
