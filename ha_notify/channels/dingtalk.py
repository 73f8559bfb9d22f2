"""DingTalk (钉钉) group robot: markdown, optional signing, errors in the body's ``errcode``.

Signing: ``sign = base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}"))``,
sent as ``&timestamp=...&sign=...`` on the URL, URL-encoded exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ha_notify.channels.markup import fit
from ha_notify.channels.web import HttpChannel, url_option

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context

RATE_LIMITED = (130101,)  # "send too fast": 20 messages a minute per robot
FATAL = {
    300001: "the access_token in url is wrong; copy the robot's webhook URL again",
    300005: "the access_token in url does not exist; copy the robot's webhook URL again",
    310000: "the robot's security settings refused the message: check secret (signing), "
    "the custom keywords (the message must contain one, e.g. the cluster name) and the IP "
    "allow-list",
    400101: "the access_token in url does not exist; copy the robot's webhook URL again",
    400102: "the robot is disabled; enable it in the group's robot settings",
    400106: "the robot does not exist; copy the robot's webhook URL again",
}


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature, base64 (not yet URL-encoded)."""
    text = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), text, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkChannel(HttpChannel):
    """``type = "dingtalk"``: success is HTTP 200 with ``errcode`` 0."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        t = config.options
        self.url = url_option(t)
        self.secret = t.secret("secret")
        self.at_mobiles: tuple[str, ...] = t.get_list("at_mobiles", ())
        self.at_all: bool = t.get_bool("at_all", False)

    def targets(self) -> list[str]:
        return [self.url.reveal()]

    def payload(self, event: Event) -> dict[str, Any]:
        text = self.renderer.render("chat.md", event)
        if self.at_mobiles:  # DingTalk only notifies mobiles that the text mentions
            text += "\n\n" + " ".join(f"@{m}" for m in self.at_mobiles)
        return {
            "msgtype": "markdown",
            "markdown": {"title": self.renderer.subject(event), "text": fit(text, 18000)},
            "at": {"atMobiles": list(self.at_mobiles), "isAtAll": self.at_all},
        }

    def signed_url(self) -> str:
        url = self.url.reveal()
        if self.secret is None:
            return url
        now = int(time.time() * 1000)
        query = urlencode({"timestamp": now, "sign": sign(self.secret.reveal(), now)})
        return f"{url}{'&' if '?' in url else '?'}{query}"

    async def send(self, event: Event) -> None:
        reply = await self.http.post(self.signed_url(), self.payload(event))
        reply.body_code(RATE_LIMITED, FATAL)
