"""Chat services against a real local server: payloads, signatures, body-level errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
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

HOSTILE = "VI_1 <b>x</b> & <!channel> **loud** [link](http://evil.example)"
DING_SECRET = "SECdingtalk+/=secret"
FEISHU_SECRET = "feishu-secret"


def table(kind: str, server: Recorder, **extra: Any) -> dict[str, Any]:
    """A minimal channel table of ``kind`` pointing at the recorder."""
    if kind == "telegram":
        base = {"token": "123:T0KEN", "chat_id": -1001234, "api_url": server.url("")}
    else:
        base = {"url": server.url("/hook") + ("?access_token=T0KEN" if kind == "dingtalk" else "")}
    return {"type": kind, **base, **extra}


# --- success: the exact payload each service gets -------------------------------------


def test_slack_payload_has_text_and_escaped_mrkdwn(server: Recorder, tmp_path: Path) -> None:
    """Slack gets text (always) and a mrkdwn block; <, > and & from the event are inert."""
    send(channel(tmp_path, table("slack", server)), event(name=HOSTILE))
    (req,) = server.requests
    body = req.json()
    assert set(body) == {"text", "blocks"}
    assert body["blocks"][0]["text"] == {"type": "mrkdwn", "text": body["text"]}
    assert body["text"].startswith("*[haproxy-test] lb1 is now MASTER*")
    assert "&lt;!channel&gt;" in body["text"] and "<!channel>" not in body["text"]
    assert "&lt;b&gt;x&lt;/b&gt; &amp;" in body["text"]
    assert req.headers["content-type"].startswith("application/json")


def test_slack_success_needs_ok_body(server: Recorder, tmp_path: Path) -> None:
    """HTTP 200 without the body "ok" is not a success."""
    server.answer("/hook", Answer(200, "<html>captive portal</html>"))
    with pytest.raises(ChannelError, match="not 'ok'"):
        send(channel(tmp_path, table("slack", server)))


def test_slack_reason_is_reported(server: Recorder, tmp_path: Path) -> None:
    """Slack's error body (no_service) is in the message, and 404 is not retried."""
    server.answer("/hook", Answer(404, "no_service"))
    with pytest.raises(ChannelError, match="no_service") as info:
        send(channel(tmp_path, table("slack", server)))
    assert not info.value.retryable


def test_dingtalk_markdown_payload(server: Recorder, tmp_path: Path) -> None:
    """DingTalk gets msgtype markdown with title (the subject) and text, plus @mentions."""
    server.answer("/hook", Answer(200, {"errcode": 0, "errmsg": "ok"}))
    ch = channel(tmp_path, table("dingtalk", server, at_mobiles=["13800000000"]))
    send(ch, event(name=HOSTILE))
    body = server.requests[0].json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[haproxy-test]")
    assert body["markdown"]["text"].startswith("**[haproxy-test] lb1 is now MASTER**")
    assert body["markdown"]["text"].endswith("@13800000000")
    assert r"\*\*loud\*\*" in body["markdown"]["text"]  # escaped, not bold
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    assert "timestamp" not in server.requests[0].query  # no secret, no signature


def dingtalk_verifier(secret: str) -> Any:
    """A DingTalk-like responder: errcode 310000 unless the signature matches ``secret``."""

    def respond(req: Request) -> Answer:
        ts = req.query.get("timestamp", "")
        text = f"{ts}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha256).digest())
        fresh = ts.isdigit() and abs(int(ts) - time.time() * 1000) < 3_600_000
        if fresh and req.query.get("sign", "").encode() == expected:
            return Answer(200, {"errcode": 0, "errmsg": "ok"})
        return Answer(200, {"errcode": 310000, "errmsg": "sign not match"})

    return respond


def test_dingtalk_signature_is_verified(server: Recorder, tmp_path: Path) -> None:
    """The server recomputes the signature from the secret: ms timestamp, encoded once."""
    server.respond("/hook", dingtalk_verifier(DING_SECRET))
    send(channel(tmp_path, table("dingtalk", server, secret=DING_SECRET)))
    (req,) = server.requests
    assert req.query["access_token"] == "T0KEN"
    assert len(req.query["timestamp"]) == 13  # milliseconds


def test_wecom_markdown_payload(server: Recorder, tmp_path: Path) -> None:
    """WeCom gets msgtype markdown with the chat template as content."""
    server.answer("/hook", Answer(200, {"errcode": 0, "errmsg": "ok"}))
    send(channel(tmp_path, table("wecom", server)), event(state="fault"))
    body = server.requests[0].json()
    assert body == {"msgtype": "markdown", "markdown": {"content": body["markdown"]["content"]}}
    assert "FAULT" in body["markdown"]["content"]


def test_wecom_content_fits_4096_bytes(server: Recorder, tmp_path: Path) -> None:
    """A long message is cut to WeCom's 4096-byte limit, marked as truncated."""
    server.answer("/hook", Answer(200, {"errcode": 0}))
    long = event(virtual_addresses=tuple(f"10.0.{i // 250}.{i % 250}" for i in range(600)))
    send(channel(tmp_path, table("wecom", server), "zh_CN"), long)
    content = server.requests[0].json()["markdown"]["content"]
    assert len(content.encode()) <= 4096 and content.endswith("(truncated)")


def feishu_verifier(secret: str) -> Any:
    """A Feishu-like responder: code 19021 unless timestamp (s) + sign match ``secret``."""

    def respond(req: Request) -> Answer:
        body = req.json()
        ts = str(body.get("timestamp", ""))
        key = f"{ts}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if ts.isdigit() and abs(int(ts) - time.time()) < 3600 and body.get("sign") == expected:
            return Answer(200, {"code": 0, "data": {}, "msg": "success"})
        return Answer(200, {"code": 19021, "data": {}, "msg": "sign match fail"})

    return respond


def test_feishu_signed_card(server: Recorder, tmp_path: Path) -> None:
    """Feishu gets an interactive card; timestamp (seconds) and sign are body fields."""
    server.respond("/hook", feishu_verifier(FEISHU_SECRET))
    send(channel(tmp_path, table("feishu", server, secret=FEISHU_SECRET)), event(state="fault"))
    body = server.requests[0].json()
    assert body["msg_type"] == "interactive"
    assert body["card"]["header"]["template"] == "red"
    assert body["card"]["header"]["title"]["content"].startswith("[haproxy-test]")
    assert body["card"]["elements"][0]["tag"] == "markdown"
    assert len(body["timestamp"]) == 10  # seconds, not milliseconds


@pytest.mark.parametrize(
    ("kind", "verifier", "says"),
    [
        ("dingtalk", dingtalk_verifier(DING_SECRET), r"310000.*keyword"),
        ("feishu", feishu_verifier(FEISHU_SECRET), r"19021.*clock"),
    ],
)
def test_wrong_signing_secret_is_not_retried(
    server: Recorder, tmp_path: Path, kind: str, verifier: Any, says: str
) -> None:
    """A signature the server refuses is final, and the message says what to check."""
    server.respond("/hook", verifier)
    with pytest.raises(ChannelError, match=says) as info:
        send(channel(tmp_path, table(kind, server, secret="SECwrong")))
    assert not info.value.retryable


def test_feishu_old_statuscode_success(server: Recorder, tmp_path: Path) -> None:
    """The older answer form {"StatusCode": 0} is a success too."""
    server.answer(
        "/hook", Answer(200, {"Extra": None, "StatusCode": 0, "StatusMessage": "success"})
    )
    send(channel(tmp_path, table("feishu", server)))
    assert "sign" not in server.requests[0].json()


def test_telegram_send_message(server: Recorder, tmp_path: Path) -> None:
    """Telegram gets sendMessage on /bot<TOKEN>/ with HTML in which values are escaped."""
    server.answer("/bot123:T0KEN/sendMessage", Answer(200, {"ok": True, "result": {}}))
    send(channel(tmp_path, table("telegram", server)), event(name=HOSTILE))
    (req,) = server.requests
    body = req.json()
    assert body["chat_id"] == -1001234 and body["parse_mode"] == "HTML"
    assert body["text"].startswith("<b>[haproxy-test] lb1 is now MASTER</b>")
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &lt;!channel&gt; **loud**" in body["text"]


def test_telegram_429_uses_retry_after_parameter(server: Recorder, tmp_path: Path) -> None:
    """Telegram's 429 parameters.retry_after is the retry hint; the token stays secret."""
    answer = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    server.answer("/bot123:T0KEN/sendMessage", Answer(429, answer))
    with pytest.raises(ChannelError, match="Too Many Requests") as info:
        send(channel(tmp_path, table("telegram", server)))
    assert info.value.retryable and info.value.retry_after == 7
    assert "T0KEN" not in str(info.value)


def test_telegram_chat_not_found_is_final(server: Recorder, tmp_path: Path) -> None:
    """ok: false with HTTP 400 (chat not found) is not retried and quotes Telegram."""
    answer = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    server.answer("/bot123:T0KEN/sendMessage", Answer(400, answer))
    with pytest.raises(ChannelError, match="chat not found") as info:
        send(channel(tmp_path, table("telegram", server)))
    assert not info.value.retryable


def test_telegram_needs_a_token(tmp_path: Path) -> None:
    """A telegram channel without token is a ConfigError naming the key forms."""
    with pytest.raises(ConfigError, match="token_file"):
        channel(tmp_path, {"type": "telegram", "chat_id": "@ops"})


def test_teams_adaptive_card(server: Recorder, tmp_path: Path) -> None:
    """Teams gets a message with one Adaptive Card 1.4 attachment; 202 is success."""
    server.answer("/hook", Answer(202, ""))
    send(channel(tmp_path, table("teams", server)), event(state="fault"))
    body = server.requests[0].json()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    block = card["body"][0]
    assert block["style"] == "attention"
    assert block["items"][0]["type"] == "TextBlock" and "FAULT" in block["items"][0]["text"]


# --- failures: body-level codes and HTTP statuses, table-driven ------------------------

FAILURES = [
    # kind, status, body, retryable, retry_after
    ("dingtalk", 200, {"errcode": 130101, "errmsg": "send too fast"}, True, 60.0),
    ("dingtalk", 200, {"errcode": 300005, "errmsg": "token is not exist"}, False, None),
    ("dingtalk", 200, {"errcode": -1, "errmsg": "system busy"}, True, None),
    ("dingtalk", 429, "", True, 12.0),
    ("wecom", 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, True, 60.0),
    ("wecom", 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, False, None),
    ("feishu", 200, {"code": 11232, "msg": "frequency limited"}, True, 60.0),
    ("feishu", 200, {"code": 9499, "msg": "Bad Request"}, True, 60.0),
    ("feishu", 400, {"code": 19001, "msg": "param invalid"}, False, None),
    ("feishu", 200, "not json", True, None),
    ("slack", 429, "rate_limited", True, 12.0),
    ("slack", 500, "rollup_error", True, None),
    ("teams", 400, {"error": {"code": "InvalidRequestContent"}}, False, None),
    ("teams", 429, "", True, 12.0),
    ("telegram", 401, {"ok": False, "description": "Unauthorized"}, False, None),
    ("telegram", 200, {"ok": False}, True, None),
]


@pytest.mark.parametrize(("kind", "status", "body", "retryable", "wait"), FAILURES)
def test_failures_are_judged(
    server: Recorder,
    tmp_path: Path,
    kind: str,
    status: int,
    body: Any,
    retryable: bool,
    wait: Any,
) -> None:
    """HTTP 200 with an error code fails; rate limits retry later; config errors are final."""
    path = "/bot123:T0KEN/sendMessage" if kind == "telegram" else "/hook"
    server.answer(path, Answer(status, body, {"Retry-After": "12"} if status == 429 else {}))
    with pytest.raises(ChannelError) as info:
        send(channel(tmp_path, table(kind, server)))
    assert info.value.retryable is retryable
    assert info.value.retry_after == wait
    assert "T0KEN" not in str(info.value)


@pytest.mark.parametrize("kind", ["slack", "dingtalk", "wecom", "feishu", "teams"])
def test_url_is_a_secret(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook URL carries the token: inline it needs a private config; url_env works."""
    cfg = tmp_path / "config.toml"
    cfg.touch()
    cfg.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        channel(tmp_path, {"type": kind, "url": "https://example.invalid/hook/T0KEN"})
    assert "T0KEN" not in str(info.value)
    monkeypatch.setenv("HA_NOTIFY_TEST_URL", "https://example.invalid/hook/T0KEN")
    assert channel(tmp_path, {"type": kind, "url_env": "HA_NOTIFY_TEST_URL"})


@pytest.mark.parametrize("kind", ["slack", "dingtalk", "wecom", "feishu", "teams", "telegram"])
def test_preview_is_the_payload(server: Recorder, tmp_path: Path, kind: str) -> None:
    """preview() prints, as pretty JSON, the payload that send() posts."""
    ok = {"errcode": 0, "code": 0, "ok": True} if kind != "slack" else "ok"
    server.answer("/bot123:T0KEN/sendMessage" if kind == "telegram" else "/hook", Answer(200, ok))
    ch = channel(tmp_path, table(kind, server))
    ev = event()
    shown = json.loads(ch.preview(ev))  # type: ignore[attr-defined]
    send(ch, ev)
    assert server.requests[0].json() == shown
