"""Slack incoming webhook: ``text`` always (notifications and fallbacks), plus blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ha_notify.channels.markup import fit, slack_mrkdwn
from ha_notify.channels.web import HttpChannel, snippet, url_option
from ha_notify.errors import ChannelError

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context


class SlackChannel(HttpChannel):
    """``type = "slack"``: success is HTTP 200 with the body ``ok``."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        self.url = url_option(config.options)

    def targets(self) -> list[str]:
        return [self.url.reveal()]

    def payload(self, event: Event) -> dict[str, Any]:
        text = fit(slack_mrkdwn(self.renderer.render("chat.md", event)), 3000)
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }

    async def send(self, event: Event) -> None:
        reply = await self.http.post(self.url.reveal(), self.payload(event))
        reply.check()  # Slack's reason is the body: invalid_payload, no_service, ...
        if reply.text.strip() != "ok" and reply.field("ok") is not True:
            raise ChannelError(f"{reply.where} answered {snippet(reply.text)!r}, not 'ok'")
