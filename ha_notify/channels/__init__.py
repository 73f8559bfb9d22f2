"""Channels: one module per service, found through the ``ha_notify.channels`` entry points.

A channel is any callable ``factory(config, context) -> Channel``; the Channel protocol is one
async ``send(event)`` that delivers once or raises ChannelError. It never retries by itself: the
spool does that.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ha_notify.errors import ConfigError

if TYPE_CHECKING:
    from ha_notify.config import ChannelConfig, GeneralConfig
    from ha_notify.event import Event
    from ha_notify.notify.render import Renderer

log = logging.getLogger(__name__)
GROUP = "ha_notify.channels"
# Used only when the package metadata is missing (running from a source tree).
BUILTIN = {
    "email": "ha_notify.channels.smtp:EmailChannel",
    "webhook": "ha_notify.channels.webhook:WebhookChannel",
    "slack": "ha_notify.channels.slack:SlackChannel",
    "dingtalk": "ha_notify.channels.dingtalk:DingTalkChannel",
    "wecom": "ha_notify.channels.wecom:WeComChannel",
    "feishu": "ha_notify.channels.feishu:FeishuChannel",
    "telegram": "ha_notify.channels.telegram:TelegramChannel",
    "teams": "ha_notify.channels.teams:TeamsChannel",
    "alertmanager": "ha_notify.channels.alertmanager:AlertmanagerChannel",
    "apprise": "ha_notify.channels.apprise:AppriseChannel",
}


class Channel(Protocol):
    """Delivers one event once, or raises ChannelError (ChannelTimeoutError for timeouts)."""

    name: str

    async def send(self, event: Event) -> None: ...


@dataclass(frozen=True)
class Context:
    """What a channel may use besides its own table: the renderer and [general]."""

    renderer: Renderer
    general: GeneralConfig


class ChannelFactory(Protocol):
    def __call__(self, config: ChannelConfig, context: Context) -> Channel: ...


def _load(ref: str) -> ChannelFactory:
    module, _, attr = ref.partition(":")
    factory: ChannelFactory = getattr(importlib.import_module(module), attr)
    return factory


def entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` (importlib.metadata's API differs on Python 3.9)."""
    from importlib import metadata

    eps: Any = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=group))
    return list(eps.get(group, []))  # pragma: no cover - Python 3.9


def factory_for(ctype: str) -> ChannelFactory:
    """Import the factory of one channel type (only the configured types are imported)."""
    found = [ep for ep in entry_points(GROUP) if ep.name == ctype]
    try:
        if found:
            factory: ChannelFactory = found[0].load()
            return factory
        if ctype in BUILTIN:
            return _load(BUILTIN[ctype])
    except Exception as exc:
        raise ConfigError(f"channel type {ctype!r} failed to load: {exc}") from exc
    known = sorted({ep.name for ep in entry_points(GROUP)} | set(BUILTIN))
    raise ConfigError(f"unknown channel type {ctype!r}; known types: {', '.join(known)}")


def build(config: ChannelConfig, context: Context) -> Channel:
    """Build one channel from its table; every problem is a ConfigError naming the table."""
    try:
        factory = factory_for(config.type)
    except ConfigError as exc:
        raise ConfigError(f"{config.options.where('type')}: {exc}") from exc
    try:
        channel = factory(config, context)
        config.options.reject_unknown(also_allowed=("type", "states"))
    except ConfigError:
        raise
    except Exception as exc:
        where = config.options.where("type")
        raise ConfigError(f"{where}: channel {config.name!r} could not be built: {exc}") from exc
    return channel
