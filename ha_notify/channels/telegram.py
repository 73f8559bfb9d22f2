"""Telegram bot ``sendMessage``: HTML with every value escaped; ``ok`` in the body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from ha_notify.channels.markup import fit, telegram_html
from ha_notify.channels.web import HttpChannel, check_url, snippet
from ha_notify.errors import ChannelError, ConfigError

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig, Table
    from ha_notify.event import Event
    from ha_notify.plugin import Context

API_URL = "https://api.telegram.org"


def chat_id(t: Table) -> Union[int, str]:
    """A numeric chat id (groups are negative) or ``@channelname``."""
    if not t.has("chat_id"):
        return str(t.get_str("chat_id"))
    try:
        return int(t.get_int("chat_id", minimum=-(2**63)))
    except ConfigError:
        return str(t.get_str("chat_id"))


class TelegramChannel(HttpChannel):
    """``type = "telegram"``: success is ``"ok": true``; 429 waits ``retry_after``."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        super().__init__(config, context)
        t = config.options
        self.token = t.secret("token", required=True)
        self.chat_id = chat_id(t)
        self.api_url: str = check_url(t, "api_url", t.get_str("api_url", API_URL)).rstrip("/")
        self.thread_id = t.get_int("message_thread_id", None, minimum=1)
        self.silent: bool = t.get_bool("disable_notification", False)

    def targets(self) -> list[str]:
        return [self.api_url]

    def payload(self, event: Event) -> dict[str, Any]:
        body: dict[str, Any] = {
            "chat_id": self.chat_id,
            "text": telegram_html(fit(self.renderer.render("chat.md", event), 4000)),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "disable_notification": self.silent,
        }
        if self.thread_id is not None:
            body["message_thread_id"] = self.thread_id
        return body

    async def send(self, event: Event) -> None:
        assert self.token is not None  # required=True
        url = f"{self.api_url}/bot{self.token.reveal()}/sendMessage"
        reply = await self.http.post(url, self.payload(event))
        parameters = reply.field("parameters")
        wait = parameters.get("retry_after") if isinstance(parameters, dict) else None
        reply.check(
            detail=str(reply.field("description") or ""),
            hint_after=float(wait) if isinstance(wait, (int, float)) else None,
        )
        if reply.field("ok") is not True:
            raise ChannelError(f"{reply.where} did not answer ok: true: {snippet(reply.text)}")
