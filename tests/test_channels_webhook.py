"""The generic webhook, Alertmanager and Apprise against a real local server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ha_notify.errors import ChannelError, ConfigError
from tests.http_recorder import (
    Answer,
    Recorder,
    Request,
    channel,
    event,
    send,
    server_fixture,  # noqa: F401
)

SECRET = "webhook-secret"


def signed_ok(req: Request) -> Answer:
    """Accept only a body whose X-HA-Notify-Signature matches SECRET."""
    mac = hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    good = hmac.compare_digest(req.headers.get("x-ha-notify-signature", ""), f"sha256={mac}")
    return Answer(204) if good else Answer(401, "bad signature")


def test_webhook_envelope(server: Recorder, tmp_path: Path) -> None:
    """The body is the event's JSON plus version, event_id, title, text and sent_at."""
    ev = event(state="fault")
    send(channel(tmp_path, {"type": "webhook", "url": server.url()}), ev)
    (req,) = server.requests
    body = req.json()
    assert body["version"] == 1
    assert body["event_id"] == ev.id == req.headers["x-ha-notify-event"]
    assert body["state"] == "fault" and body["name"] == "VI_1" and body["seq"] == 3
    assert body["node"]["hostname"] == "lb1"
    assert body["title"].startswith("[haproxy-test]") and "FAULT" in body["text"]
    assert isinstance(body["sent_at"], int)
    assert "x-ha-notify-signature" not in req.headers


def test_webhook_event_id_is_stable_across_retries(server: Recorder, tmp_path: Path) -> None:
    """Sending the same event twice (a retry) carries the same event_id."""
    ch = channel(tmp_path, {"type": "webhook", "url": server.url()})
    ev = event()
    send(ch, ev)
    send(ch, ev)
    assert server.requests[0].json()["event_id"] == server.requests[1].json()["event_id"]


def test_webhook_hmac_is_verified_by_the_server(server: Recorder, tmp_path: Path) -> None:
    """The server recomputes HMAC-SHA256 over the raw body; the timestamp is signed too."""
    server.respond("/hook", signed_ok)
    send(channel(tmp_path, {"type": "webhook", "url": server.url(), "secret": SECRET}))
    (req,) = server.requests
    assert req.headers["x-ha-notify-timestamp"] == str(req.json()["sent_at"])


def test_webhook_wrong_secret_is_not_retried(server: Recorder, tmp_path: Path) -> None:
    """A receiver that refuses the signature (401) makes a final error."""
    server.respond("/hook", signed_ok)
    with pytest.raises(ChannelError, match="401") as info:
        send(channel(tmp_path, {"type": "webhook", "url": server.url(), "secret": "other"}))
    assert not info.value.retryable


def test_webhook_headers_and_bearer_token(server: Recorder, tmp_path: Path) -> None:
    """Extra headers are sent, and token becomes a Bearer Authorization header."""
    table = {"type": "webhook", "url": server.url(), "headers": {"X-Team": "ops"}, "token": "tk"}
    send(channel(tmp_path, table))
    headers = server.requests[0].headers
    assert headers["x-team"] == "ops" and headers["authorization"] == "Bearer tk"


def test_webhook_basic_auth(server: Recorder, tmp_path: Path) -> None:
    """username and password become a Basic Authorization header."""
    table = {"type": "webhook", "url": server.url(), "username": "u", "password": "p"}
    send(channel(tmp_path, table))
    assert (
        server.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    )


@pytest.mark.parametrize("headers", [{"X-A": "one\r\nX-Injected: 1"}, {"Bad Name": "x"}])
def test_webhook_header_injection_is_refused(tmp_path: Path, headers: dict[str, str]) -> None:
    """A header value with a newline or a malformed name is a ConfigError."""
    with pytest.raises(ConfigError, match="headers"):
        channel(tmp_path, {"type": "webhook", "url": "http://127.0.0.1/", "headers": headers})


# --- Alertmanager -------------------------------------------------------------------


def am(server: Recorder, **extra: Any) -> dict[str, Any]:
    urls = [server.url("/am1"), server.url("/am2/api/v2/alerts")]
    return {"type": "alertmanager", "urls": urls, **extra}


def test_alertmanager_fault_fires_on_every_url(server: Recorder, tmp_path: Path) -> None:
    """FAULT posts one firing alert to /api/v2/alerts of every URL, labels included."""
    send(channel(tmp_path, am(server, labels={"team": "ops"})), event(state="fault"))
    assert sorted(r.path for r in server.requests) == ["/am1/api/v2/alerts", "/am2/api/v2/alerts"]
    (alert,) = server.requests[0].json()
    assert alert["labels"] == {
        "alertname": "HAProxyKeepalivedState",
        "cluster": "haproxy-test",
        "vrrp_instance": "VI_1",
        "instance": "VI_1",
        "node": "lb1",
        "state": "fault",
        "severity": "critical",
        "team": "ops",
    }
    assert alert["annotations"]["summary"].startswith("[haproxy-test]")
    assert "\\" not in alert["annotations"]["description"]  # plain text, no md escapes
    starts, ends = (datetime.fromisoformat(alert[k]) for k in ("startsAt", "endsAt"))
    assert (ends - starts).days == 7


def test_alertmanager_healthy_state_resolves(server: Recorder, tmp_path: Path) -> None:
    """MASTER resolves the fault and stop alerts: same labels, endsAt = startsAt."""
    send(channel(tmp_path, am(server)), event(state="master"))
    alerts = server.requests[0].json()
    assert {a["labels"]["state"] for a in alerts} == {"fault", "stop"}
    for alert in alerts:
        assert alert["startsAt"] == alert["endsAt"]
        assert alert["labels"]["alertname"] == "HAProxyKeepalivedState"


def test_alertmanager_test_event_is_marked(server: Recorder, tmp_path: Path) -> None:
    """A test notification fires a short-lived state="test" alert of severity info."""
    send(channel(tmp_path, am(server)), event(subject="test"))
    (alert,) = server.requests[0].json()
    assert alert["labels"]["state"] == "test" and alert["labels"]["severity"] == "info"


def test_alertmanager_one_peer_down_is_enough(server: Recorder, tmp_path: Path) -> None:
    """By default one accepting Alertmanager is a success; require_all retries instead."""
    server.answer("/am2/api/v2/alerts", Answer(503, "down"))
    send(channel(tmp_path, am(server)), event(state="fault"))
    with pytest.raises(ChannelError, match="1 of 2") as info:
        send(channel(tmp_path, am(server, require_all=True)), event(state="fault"))
    assert info.value.retryable


def test_alertmanager_all_peers_refusing(server: Recorder, tmp_path: Path) -> None:
    """When every peer refuses with 400 the error is final and names both."""
    server.answer("/am1/api/v2/alerts", Answer(400, "bad alert"))
    server.answer("/am2/api/v2/alerts", Answer(400, "bad alert"))
    with pytest.raises(ChannelError, match="2 of 2") as info:
        send(channel(tmp_path, am(server)), event(state="fault"))
    assert not info.value.retryable


def test_alertmanager_bearer_token(server: Recorder, tmp_path: Path) -> None:
    """A token (from a file, as a secret) is sent as a Bearer header to every peer."""
    secret = tmp_path / "am-token"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    send(channel(tmp_path, am(server, token_file=str(secret))), event(state="stop"))
    assert {r.headers["authorization"] for r in server.requests} == {"Bearer s3cret"}
    assert server.requests[0].json()[0]["labels"]["severity"] == "warning"


# --- Apprise ------------------------------------------------------------------------

NEEDS_APPRISE = pytest.mark.skipif(
    importlib.util.find_spec("apprise") is None, reason="apprise not installed"
)


def test_apprise_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the apprise package, the channel is a ConfigError with the pip command."""
    monkeypatch.setitem(sys.modules, "apprise", None)
    with pytest.raises(ConfigError, match=r"pip install 'ha-notify\[apprise\]'"):
        channel(tmp_path, {"type": "apprise", "urls": ["json://127.0.0.1/"]})


@NEEDS_APPRISE
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # apprise's own imports (imghdr)
def test_apprise_urls_file(server: Recorder, tmp_path: Path) -> None:
    """urls_file: one URL per line, comments skipped, the file must be private."""
    secrets = tmp_path / "apprise-urls"
    secrets.write_text(f"# the team's relay\njson://127.0.0.1:{server.port}/from-file\n")
    secrets.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {secrets}"):
        channel(tmp_path, {"type": "apprise", "urls_file": str(secrets)})
    secrets.chmod(0o600)
    send(channel(tmp_path, {"type": "apprise", "urls_file": str(secrets)}), event())
    assert [r.path for r in server.requests] == ["/from-file"]


def test_apprise_inline_urls_need_a_private_config(tmp_path: Path) -> None:
    """Apprise URLs carry credentials: inline in a config others can read is refused."""
    config = tmp_path / "config.toml"
    config.touch(mode=0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {config}"):
        channel(tmp_path, {"type": "apprise", "urls": ["tgram://123:tok-secret/-100"]})
    with pytest.raises(ConfigError, match=r"expected a list of strings$") as caught:
        channel(tmp_path, {"type": "apprise", "urls": "tgram://123:tok-secret/-100"})
    assert "tok-secret" not in str(caught.value)


@NEEDS_APPRISE
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # apprise's own imports (imghdr)
def test_apprise_delivers_through_json_url(server: Recorder, tmp_path: Path) -> None:
    """With apprise installed, a json:// URL reaches the local server."""
    url = f"json://127.0.0.1:{server.port}/hook"
    send(channel(tmp_path, {"type": "apprise", "urls": [url]}), event(state="fault"))
    (req,) = server.requests
    assert "FAULT" in req.json()["title"]


@NEEDS_APPRISE
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # apprise's own imports (imghdr)
def test_apprise_failure_is_a_channel_error(server: Recorder, tmp_path: Path) -> None:
    """A URL whose service fails is reported by position and scheme, never in full."""
    server.answer("/hook", Answer(500, "down"))
    url = f"json://127.0.0.1:{server.port}/hook"
    with pytest.raises(ChannelError, match=r"urls\[0\] \(json://\)") as info:
        send(channel(tmp_path, {"type": "apprise", "urls": [url]}))
    assert str(server.port) not in str(info.value)
