"""The shared HTTP plumbing, through a webhook channel and a real local server."""

from __future__ import annotations

import logging
import ssl
from email.utils import formatdate
from pathlib import Path

import pytest

from ha_notify.channels.web import retry_after
from ha_notify.errors import ChannelError, ChannelTimeoutError, ConfigError
from tests.http_recorder import Answer, Recorder, channel, send, server_fixture  # noqa: F401


def hook(url: str, **extra: object) -> dict[str, object]:
    return {"type": "webhook", "url": url, **extra}


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_retried(server: Recorder, tmp_path: Path, status: int) -> None:
    """5xx and 408 answers are retryable ChannelErrors naming the status."""
    server.answer("/hook", Answer(status, "upstream down"))
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(server.url())))
    assert info.value.retryable
    assert f"HTTP {status}" in str(info.value)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, "rejected"), (401, "token"), (403, "credentials"), (404, "deleted"), (422, "settings")],
)
def test_client_errors_are_not_retried(
    server: Recorder, tmp_path: Path, status: int, hint: str
) -> None:
    """4xx (other than 408/429) is final, and the message says what to fix."""
    server.answer("/hook", Answer(status, "nope"))
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(server.url())))
    assert not info.value.retryable
    assert hint in str(info.value)


def test_429_carries_retry_after_seconds(server: Recorder, tmp_path: Path) -> None:
    """HTTP 429 with Retry-After: 30 is retryable after 30 seconds."""
    server.answer("/hook", Answer(429, "slow down", {"Retry-After": "30"}))
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(server.url())))
    assert info.value.retryable
    assert info.value.retry_after == 30


def test_retry_after_accepts_http_dates() -> None:
    """A Retry-After HTTP date becomes the seconds from now; garbage is ignored."""
    later = retry_after(formatdate(usegmt=True, timeval=__import__("time").time() + 120))
    assert later is not None and 100 < later <= 120
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_redirect_is_not_followed(server: Recorder, tmp_path: Path) -> None:
    """A redirect is a configuration mistake: not followed, not retried."""
    server.answer("/hook", Answer(301, "", {"Location": "https://example.com/new"}))
    with pytest.raises(ChannelError, match="final address") as info:
        send(channel(tmp_path, hook(server.url())))
    assert not info.value.retryable


def test_timeout_is_a_channel_timeout(server: Recorder, tmp_path: Path) -> None:
    """A server that never answers raises ChannelTimeoutError (also a TimeoutError)."""
    server.answer("/hook", Answer(hang=True))
    with pytest.raises(ChannelTimeoutError) as info:
        send(channel(tmp_path, hook(server.url(), timeout=0.3)))
    assert isinstance(info.value, TimeoutError)
    assert info.value.retryable


def test_refused_connection_is_retried(tmp_path: Path) -> None:
    """Nothing listening: a retryable error that names the host, not the path."""
    stopped = Recorder().start()
    url = stopped.url("/hook/SECRET-TOKEN")
    stopped.stop()
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(url)))
    assert info.value.retryable
    assert "127.0.0.1" in str(info.value) and "SECRET-TOKEN" not in str(info.value)


def test_errors_never_show_the_url_path(server: Recorder, tmp_path: Path) -> None:
    """A token in the URL path or query does not appear in any error message."""
    server.answer("/hook/T0KEN", Answer(404, "no_service"))
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(server.url("/hook/T0KEN") + "?key=K3Y")))
    assert "T0KEN" not in str(info.value) and "K3Y" not in str(info.value)


@pytest.fixture
def tls_server(server_tls: ssl.SSLContext) -> Recorder:
    recorder = Recorder(tls=server_tls).start()
    yield recorder  # type: ignore[misc]
    recorder.stop()


def test_untrusted_certificate_names_host_and_fix(tls_server: Recorder, tmp_path: Path) -> None:
    """A certificate from an unknown CA fails, not retried, with the ca_file fix."""
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(tls_server.url())))
    assert not info.value.retryable
    assert "127.0.0.1" in str(info.value) and "ca_file" in str(info.value)
    assert tls_server.requests == []


def test_ca_file_trusts_a_private_ca(tls_server: Recorder, tmp_path: Path, ca_file: Path) -> None:
    """With ca_file naming the private CA, HTTPS delivery works."""
    send(channel(tmp_path, hook(tls_server.url(), ca_file=str(ca_file))))
    assert len(tls_server.requests) == 1


def test_tls_verify_false_warns_on_every_send(tls_server: Recorder, tmp_path: Path) -> None:
    """tls_verify = false is allowed explicitly, and every use logs a warning."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("ha_notify.channels.web")
    logger.addHandler(handler)
    try:
        ch = channel(tmp_path, hook(tls_server.url(), tls_verify=False))
        send(ch)
        send(ch)
    finally:
        logger.removeHandler(handler)
    warnings = [r for r in records if "NOT authenticated" in r.getMessage()]
    assert len(warnings) == 2
    assert len(tls_server.requests) == 2


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """ca_file must exist; the error names the key."""
    with pytest.raises(ConfigError, match="ca_file"):
        channel(tmp_path, hook("https://127.0.0.1/", ca_file=str(tmp_path / "none.pem")))


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "127.0.0.1/hook", "https:///nohost"])
def test_bad_url_is_a_config_error_that_hides_it(tmp_path: Path, url: str) -> None:
    """A URL that is not http(s) is refused without echoing it (it may hold a token)."""
    with pytest.raises(ConfigError, match=r"channels\.x\.url") as info:
        channel(tmp_path, hook(url))
    assert url not in str(info.value)


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    """A misspelt option is a ConfigError listing the known keys."""
    with pytest.raises(ConfigError, match="timout"):
        channel(tmp_path, hook("http://127.0.0.1/", timout=3))


def test_unsendable_token_is_not_quoted(server: Recorder, tmp_path: Path) -> None:
    """A token with a line break fails without quoting the token."""
    secret = tmp_path / "token"
    secret.write_text("abc\nSECRETPART")
    secret.chmod(0o600)
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, hook(server.url(), token_file=str(secret))))
    assert not info.value.retryable
    assert "SECRETPART" not in str(info.value) and info.value.__cause__ is None
