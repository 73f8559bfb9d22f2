"""Feishu / Lark (飞书) custom bot: an interactive card, optional signing, ``code`` in the body.

Signing differs from DingTalk's: ``f"{timestamp}\\n{secret}"`` is the HMAC-SHA256 *key* over
an empty message, base64; ``timestamp`` is in seconds; both go into the JSON body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

from ha_notify.channels.markup import fit
from ha_notify.channels.web import HttpChannel, pretty, url_option

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context

RATE_LIMITED = (11232, 9499)  # 100 a minute and 5 a second per bot
FATAL = {
    19001: "the hook id in url is wrong; copy the bot's webhook URL again",
    19021: "the signature was refused: check secret, and that this node's clock is right "
    "(the timestamp must be within an hour)",
    19022: "this node's IP address is not in the bot's IP allow-list",
    19024: "the message lacks the bot's custom keyword (use e.g. the cluster name as keyword)",
}
COLOURS = {"fault": "red", "stop": "orange", "master": "green", "backup": "blue"}


def sign(secret: str, timestamp: int) -> str:
    """Feishu's signature: the string to sign is the HMAC key, the message is empty."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuChannel(HttpChannel):
    """``type = "feishu"``: success is ``code`` (or ``StatusCode``) 0 in the body."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        self.url = url_option(config.options)
        self.secret = config.options.secret("secret")

    def targets(self) -> list[str]:
        return [self.url.reveal()]

    def payload(self, event: Event) -> dict[str, Any]:
        title = {"tag": "plain_text", "content": self.renderer.subject(event)}
        text = fit(self.renderer.render("chat.md", event), 15000, utf8=True)
        colour = "grey" if event.is_test else COLOURS.get(event.state, "grey")
        return {
            "msg_type": "interactive",
            "card": {
                "header": {"title": title, "template": colour},
                "elements": [{"tag": "markdown", "content": text}],
            },
        }

    def signed(self, event: Event) -> dict[str, Any]:
        body = self.payload(event)
        if self.secret is not None:
            now = int(time.time())
            body.update(timestamp=str(now), sign=sign(self.secret.reveal(), now))
        return body

    def preview(self, event: Event) -> str:
        body = self.payload(event)
        if self.secret is not None:
            body.update(timestamp="<seconds, at send time>", sign="<signature, at send time>")
        return pretty(body)

    async def send(self, event: Event) -> None:
        reply = await self.http.post(self.url.reveal(), self.signed(event))
        reply.body_code(
            RATE_LIMITED, FATAL, code=("code", "StatusCode"), message=("msg", "StatusMessage")
        )
