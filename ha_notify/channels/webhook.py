"""Generic JSON webhook: the event plus rendered text, optionally signed with HMAC-SHA256.

The body is the event's JSON with ``version``, ``event_id`` (stable across retries),
``title``, ``text`` and ``sent_at``. With ``secret`` set, ``X-HA-Notify-Signature`` is
``sha256=<hex HMAC-SHA256 of the raw body>`` and ``X-HA-Notify-Timestamp`` repeats
``sent_at``, which the signature covers (a receiver can refuse old replays).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import TYPE_CHECKING, Any

from ha_notify.channels.web import Auth, HttpChannel, check_url, compact
from ha_notify.errors import ConfigError

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig, Table
    from ha_notify.event import Event
    from ha_notify.plugin import Context

VERSION = 1
SIGNATURE = "X-HA-Notify-Signature"
TIMESTAMP = "X-HA-Notify-Timestamp"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name


def extra_headers(t: Table, key: str = "headers") -> dict[str, str]:
    """A ``headers = { Name = "value" }`` table, checked so that no value starts a new line."""
    table = t.table(key)
    for name, value in table.items():
        if not _TOKEN.match(name) or not isinstance(value, str) or re.search(r"[\r\n\0]", value):
            raise ConfigError(
                f"{t.where(key)}.{name}: expected a header name and a one-line string value"
            )
    return dict(table)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookChannel(HttpChannel):
    """``type = "webhook"``: POST a JSON envelope to ``url``; any 2xx is success."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        t = config.options
        self.url: str = check_url(t, "url", t.get_str("url"))
        self.secret = t.secret("secret")
        self.headers = extra_headers(t)
        self.auth = Auth(t)

    def targets(self) -> list[str]:
        return [self.url]

    def payload(self, event: Event, sent_at: int = 0) -> dict[str, Any]:
        return {
            **event.to_json(),
            "version": VERSION,
            "event_id": event.id,
            "title": self.renderer.subject(event),
            "text": self.renderer.render("chat.md", event),
            "sent_at": sent_at or int(time.time()),
        }

    async def send(self, event: Event) -> None:
        now = int(time.time())
        body = compact(self.payload(event, now))
        headers = {**self.headers, **self.auth.headers(), "X-HA-Notify-Event": event.id}
        if self.secret is not None:
            headers[TIMESTAMP] = str(now)
            headers[SIGNATURE] = signature(self.secret.reveal(), body)
        reply = await self.http.post(self.url, body, headers)
        reply.check()
