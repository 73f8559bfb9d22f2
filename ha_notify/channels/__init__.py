"""Channels: one module per service, found by type name; the contract is :mod:`ha_notify.plugin`.

A channel is any callable ``factory(config, context) -> Channel``; the Channel protocol is one
async ``send(event)`` that delivers once or raises ChannelError. It never retries by itself: the
spool does that. Built-in types are imported by name and win over a plugin of the same name;
other types come from the ``ha_notify.channels`` entry points.
"""

from __future__ import annotations

import importlib

from ha_notify import discovery
from ha_notify.config import ChannelConfig
from ha_notify.constants import CHANNELS_GROUP
from ha_notify.errors import ConfigError
from ha_notify.plugin import Channel, ChannelFactory, Context

__all__ = ["BUILTIN", "Channel", "ChannelFactory", "Context", "build", "factory_for"]
GROUP = CHANNELS_GROUP
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


def _load(ref: str) -> ChannelFactory:
    module, _, attr = ref.partition(":")
    factory: ChannelFactory = getattr(importlib.import_module(module), attr)
    return factory


def factory_for(ctype: str) -> ChannelFactory:
    """Import the factory of one channel type (only the configured types are imported)."""
    try:
        plugin = discovery.third_party(GROUP, ctype, BUILTIN)
        if ctype in BUILTIN:
            return _load(BUILTIN[ctype])
        if plugin is not None:
            factory: ChannelFactory = plugin.load()
            return factory
    except Exception as exc:
        raise ConfigError(f"channel type {ctype!r} failed to load: {exc}") from exc
    known = sorted({ep.name for ep in discovery.entry_points(GROUP)} | set(BUILTIN))
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
