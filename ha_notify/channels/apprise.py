"""Apprise, for the long tail of services: ``urls = ["tgram://...", "mailto://..."]``.

Optional: ``pip install 'ha-notify[apprise]'``; imported only when such a channel is
configured. ``urls`` are secrets like a password: inline in a private config, or one per line
in ``urls_file``. Apprise reports success per URL but not why a URL failed (it logs that to the
``apprise`` logger), so a failure is retried. Errors name a URL by position and scheme only:
Apprise URLs carry credentials.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from ha_notify.channels.markup import unescape
from ha_notify.errors import ChannelError, ChannelTimeoutError, ConfigError

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig
    from ha_notify.event import Event
    from ha_notify.plugin import Context


def _apprise(where: str) -> Any:
    try:
        return importlib.import_module("apprise")
    except ImportError as exc:
        raise ConfigError(
            f"{where}: the apprise channel needs the apprise package: "
            "pip install 'ha-notify[apprise]'"
        ) from exc


class AppriseChannel:
    """``type = "apprise"``: success when every URL's service accepted the message."""

    def __init__(self, config: ChannelConfig, context: Context) -> None:
        t = config.options
        self.name = config.name
        self.renderer = context.renderer
        urls = t.secret_list("urls")  # Apprise URLs carry credentials
        self.timeout: float = t.get_float("timeout", 10.0)
        self.lib = _apprise(t.where("type"))
        self.targets: list[tuple[str, Any]] = []
        for i, secret in enumerate(urls):
            url = secret.reveal()
            target = self.lib.Apprise()
            scheme = url.partition("://")[0][:20]
            if not target.add(url):
                raise ConfigError(
                    f"{t.where('urls')}[{i}]: apprise does not accept this {scheme}:// URL; "
                    "see https://github.com/caronc/apprise/wiki"
                )
            self.targets.append((f"urls[{i}] ({scheme}://)", target))
        if not self.targets:
            raise ConfigError(f"{t.where('urls')}: set urls or urls_file: at least one Apprise URL")

    def message(self, event: Event) -> dict[str, str]:
        return {
            "title": self.renderer.subject(event),
            "body": unescape(self.renderer.render("chat.md", event)),
        }

    def preview(self, event: Event) -> str:
        msg = self.message(event)
        return f"{msg['title']}\n\n{msg['body']}"

    async def send(self, event: Event) -> None:
        msg = self.message(event)
        kind = "failure" if event.state in ("fault", "stop") and not event.is_test else "info"

        async def one(target: Any) -> bool:
            return bool(await target.async_notify(notify_type=kind, body_format="markdown", **msg))

        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(target) for _, target in self.targets)), self.timeout
            )
        except asyncio.TimeoutError as exc:
            raise ChannelTimeoutError(f"apprise did not finish within {self.timeout:g}s") from exc
        failed = [label for (label, _), ok in zip(self.targets, results) if not ok]
        if failed:
            raise ChannelError(
                f"apprise could not deliver to {', '.join(failed)}; the apprise log says why"
            )
