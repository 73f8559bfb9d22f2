"""WeCom (企业微信) group robot: markdown, errors in the body's ``errcode``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ha_notify.channels.markup import fit
from ha_notify.channels.web import HttpChannel, url_option

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context

RATE_LIMITED = (45009,)  # 20 messages a minute per robot
FATAL = {
    93000: "the key in url is wrong or the robot was removed; copy the robot's webhook URL again",
    93004: "the robot is disabled; enable it in the group's robot settings",
    40008: "the service refused the message type",
    44004: "the message is empty; check the chat.md template override",
}


class WeComChannel(HttpChannel):
    """``type = "wecom"``: success is HTTP 200 with ``errcode`` 0."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        self.url = url_option(config.options)

    def targets(self) -> list[str]:
        return [self.url.reveal()]

    def payload(self, event: Event) -> dict[str, Any]:
        text = self.renderer.render("chat.md", event)
        return {"msgtype": "markdown", "markdown": {"content": fit(text, 4096, utf8=True)}}

    async def send(self, event: Event) -> None:
        reply = await self.http.post(self.url.reveal(), self.payload(event))
        reply.body_code(RATE_LIMITED, FATAL)
