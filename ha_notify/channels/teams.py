"""Microsoft Teams through a Power Automate workflow webhook: one Adaptive Card (1.4).

The old Office 365 connectors ("MessageCard") are retired; a workflow built from the
"Post to a channel when a webhook request is received" template takes this payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ha_notify.channels.markup import fit
from ha_notify.channels.web import HttpChannel, url_option

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context

CARD = "application/vnd.microsoft.card.adaptive"
STYLES = {"fault": "attention", "stop": "warning", "master": "good"}


class TeamsChannel(HttpChannel):
    """``type = "teams"``: success is HTTP 200 or 202 (any 2xx)."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        self.url = url_option(config.options)

    def targets(self) -> list[str]:
        return [self.url.reveal()]

    def payload(self, event: Event) -> dict[str, Any]:
        subject = self.renderer.subject(event)
        text = fit(self.renderer.render("chat.md", event), 20000)
        style = "emphasis" if event.is_test else STYLES.get(event.state, "emphasis")
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "fallbackText": subject,
            "msteams": {"width": "Full"},
            "body": [
                {
                    "type": "Container",
                    "style": style,
                    "items": [{"type": "TextBlock", "text": text, "wrap": True}],
                }
            ],
        }
        return {
            "type": "message",
            "summary": subject,
            "attachments": [{"contentType": CARD, "contentUrl": None, "content": card}],
        }

    async def send(self, event: Event) -> None:
        reply = await self.http.post(self.url.reveal(), self.payload(event))
        reply.check()
