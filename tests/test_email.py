"""Email through a real aiosmtpd server: sessions, AUTH, TLS, refusals, headers."""

from __future__ import annotations

import gc
import ssl
import warnings
from pathlib import Path

from tests.conftest import WriteConfig, mail_channel
from tests.silent import SilentTLS
from tests.smtp_server import SMTPServer


def test_one_session_for_all_recipients(smtp: SMTPServer, write_config: WriteConfig, cli) -> None:
    """Every recipient gets the mail through a single SMTP session."""
    to = [f"ops{i}@example.com" for i in range(5)]
    cfg = write_config({"mail": mail_channel(smtp.port, to=to)})
    result = cli("master", "-c", cfg, "--instance", "VI_1", "--priority", "100")
    assert result.code == 0, result.err
    assert len(smtp.messages) == 1
    assert sorted(smtp.messages[0].rcpt_tos) == sorted(to)
    assert smtp.recorder.sessions == 1


def test_message_is_multipart_with_fixed_headers(
    smtp: SMTPServer, write_config: WriteConfig, cli
) -> None:
    """The mail has text and HTML parts, Message-ID, Auto-Submitted and thread headers."""
    cfg = write_config({"mail": mail_channel(smtp.port)}, virtual_addresses=["192.0.2.10"])
    assert cli("backup", "-c", cfg, "-i", "VI_1").code == 0
    assert cli("master", "-c", cfg, "-i", "VI_1", "-p", "100").code == 0
    msg = smtp.messages[-1].message
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith(">")
    assert msg["References"] == msg["In-Reply-To"] == "<thread.haproxy-test@ha-notify>"
    assert smtp.messages[0].message["References"] == msg["References"]
    assert "is now MASTER (was BACKUP)" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "BACKUP -> MASTER" in text
    assert "Priority:       100" in text
    assert "192.0.2.10 (NOT on this node)" in text


def test_chinese_subject_is_encoded(smtp: SMTPServer, write_config: WriteConfig, cli) -> None:
    """A zh_CN subject travels RFC 2047-encoded and decodes back intact."""
    cfg = write_config({"mail": mail_channel(smtp.port)}, language="zh_CN")
    assert cli("fault", "-c", cfg, "-i", "HAProxy_HA").code == 0
    msg = smtp.messages[0].message
    assert "故障 FAULT" in msg["Subject"]
    raw = msg.as_bytes()
    assert b"=?utf-8?" in raw.lower()
    assert "请检查本节点的 HAProxy" in msg.get_body(("plain",)).get_content()


def test_auth_success(write_config: WriteConfig, cli, tmp_path: Path) -> None:
    """AUTH with a password from a 0600 file logs in and delivers."""
    server = SMTPServer(users={"alerts": "s3cret-pass"}).start()
    try:
        secret = tmp_path / "smtp-password"
        secret.write_text("s3cret-pass\n")
        secret.chmod(0o600)
        cfg = write_config(
            {"mail": mail_channel(server.port, username="alerts", password_file=str(secret))}
        )
        result = cli("master", "-c", cfg)
        assert result.code == 0, result.err
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_auth_failure_is_not_retried(write_config: WriteConfig, cli, tmp_path: Path) -> None:
    """A refused login exits 1, names the user, never echoes the password, is dead-lettered."""
    server = SMTPServer(users={"alerts": "right"}).start()
    try:
        cfg = write_config(
            {"mail": mail_channel(server.port, username="alerts", password="wrong-pass-123")}
        )
        result = cli("master", "-c", cfg)
        assert result.code == 1
        assert "refused the login of 'alerts'" in result.err
        assert "wrong-pass-123" not in result.err + result.out
        assert server.messages == []
        dead = list((tmp_path / "state" / "spool" / "dead").iterdir())
        assert len(dead) == 1
        assert "wrong-pass-123" not in dead[0].read_text()
    finally:
        server.stop()


def test_starttls_with_test_ca(
    server_tls: ssl.SSLContext, ca_file: Path, write_config: WriteConfig, cli
) -> None:
    """STARTTLS to a server whose certificate the configured CA signed delivers."""
    server = SMTPServer(starttls=server_tls, users={"alerts": "pw"}).start()
    try:
        cfg = write_config(
            {
                "mail": mail_channel(
                    server.port,
                    security="starttls",
                    ca_file=str(ca_file),
                    username="alerts",
                    password="pw",
                )
            }
        )
        result = cli("master", "-c", cfg)
        assert result.code == 0, result.err
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_starttls_untrusted_certificate(
    server_tls: ssl.SSLContext, write_config: WriteConfig, cli
) -> None:
    """A certificate no trusted CA signed fails, naming the host and the ca_file fix."""
    server = SMTPServer(starttls=server_tls).start()
    try:
        cfg = write_config({"mail": mail_channel(server.port, security="starttls")})
        result = cli("master", "-c", cfg)
        assert result.code == 1
        assert "127.0.0.1" in result.err and "ca_file" in result.err
        assert server.messages == []
    finally:
        server.stop()


def test_implicit_tls(
    server_tls: ssl.SSLContext, ca_file: Path, write_config: WriteConfig, cli
) -> None:
    """security = "tls" speaks TLS from the first byte (port 465 style)."""
    server = SMTPServer(implicit_tls=server_tls).start()
    try:
        cfg = write_config(
            {"mail": mail_channel(server.port, security="tls", ca_file=str(ca_file))}
        )
        assert cli("master", "-c", cfg).code == 0
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_silent_tls_server_leaves_no_socket_open(
    server_tls: ssl.SSLContext, ca_file: Path, write_config: WriteConfig, cli
) -> None:
    """A relay that completes TLS, then hangs: the notify gives up and lets go of the socket.

    A TLS close waits for the server's close_notify, which this server never sends: the
    socket must be released anyway, or every hung relay leaks a descriptor (CI saw the
    ResourceWarning from it).
    """
    server = SilentTLS(server_tls)
    try:
        cfg = write_config(
            {"mail": mail_channel(server.port, security="tls", ca_file=str(ca_file), timeout=1)}
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = cli("master", "-c", cfg)
            gc.collect()
        assert "spooled for retry" in result.err and "did not answer within 1s" in result.err
        assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
    finally:
        server.close()


def test_starttls_required_never_falls_back(
    smtp: SMTPServer, write_config: WriteConfig, cli
) -> None:
    """security = "starttls" against a server without STARTTLS sends nothing in plain text."""
    cfg = write_config({"mail": mail_channel(smtp.port, security="starttls")})
    result = cli("master", "-c", cfg)
    assert result.code == 1
    assert "does not offer STARTTLS" in result.err
    assert smtp.messages == []


def test_refused_recipient_is_reported(smtp: SMTPServer, write_config: WriteConfig, cli) -> None:
    """One refused recipient is named; the others still get the mail; exit 1."""
    smtp.recorder.refuse = {"gone@example.com"}
    cfg = write_config(
        {"mail": mail_channel(smtp.port, to=["ops1@example.com", "gone@example.com"])}
    )
    result = cli("master", "-c", cfg)
    assert result.code == 1
    assert "gone@example.com" in result.err and "550" in result.err
    assert smtp.messages[0].rcpt_tos == ["ops1@example.com"]


def test_retry_resends_the_same_message_id(write_config: WriteConfig, cli) -> None:
    """A delivery that failed is resent later with the Message-ID fixed at the event."""
    server = SMTPServer()
    cfg = write_config({"mail": mail_channel(server.port)})
    result = cli("fault", "-c", cfg)
    assert result.code == 0, result.err  # spooled for retry
    assert "spooled for retry" in result.err
    server.start()
    try:
        assert cli("flush", "-c", cfg).code == 0
        assert len(server.messages) == 1
        first_id = server.messages[0].message["Message-ID"]
        assert first_id and cli("flush", "-c", cfg).code == 0
        assert len(server.messages) == 1
    finally:
        server.stop()
