"""The plugin API: what a third-party channel or check implements and may use.

A **channel** is a factory ``(config: ChannelConfig, context: Context) -> Channel``
registered in the ``ha_notify.channels`` entry-point group; a class whose ``__init__`` takes
those two arguments is one. It reads its options from ``config.options`` (typed getters that
raise a ConfigError naming file, key and what is expected) and delivers an event once per
``send`` or raises ChannelError: it never retries by itself (the spool does). Two optional
capabilities, found by their methods: :class:`Preview` (``ha-notify render``) and
:class:`Probe` (``ha-notify doctor``: a handshake, never a message).

A **check** is a function ``(options: CheckOptions) -> CheckResult`` registered in the
``ha_notify.checks`` group. It runs every few seconds: at run time import ``CheckOptions``
and ``CheckResult`` from :mod:`ha_notify.checks` (light); this module is for type checking
and channels.

Built-in names win: a plugin registering ``email`` or ``haproxy`` is ignored, with a warning
(``ha-notify doctor`` lists every plugin found and any it ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ha_notify.checks import CheckOptions, CheckResult
from ha_notify.checks.base import Check
from ha_notify.config import ChannelConfig, GeneralConfig, Secret, Table
from ha_notify.constants import CHANNELS_GROUP, CHECKS_GROUP
from ha_notify.errors import (
    ChannelError,
    ChannelTimeoutError,
    CheckError,
    ConfigError,
    HaNotifyError,
    PartialDelivery,
)
from ha_notify.event import Event, Node

if TYPE_CHECKING:
    from ha_notify.notify.render import Renderer

__all__ = [
    "CHANNELS_GROUP",
    "CHECKS_GROUP",
    "FAIL",
    "OK",
    "WARN",
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "ChannelFactory",
    "ChannelTimeoutError",
    "Check",
    "CheckError",
    "CheckOptions",
    "CheckResult",
    "ConfigError",
    "Context",
    "Event",
    "GeneralConfig",
    "HaNotifyError",
    "Node",
    "PartialDelivery",
    "Preview",
    "Probe",
    "ProbeResult",
    "Secret",
    "Table",
]

OK, WARN, FAIL = "ok", "warn", "fail"


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
    """Builds a channel from its ``[channels.NAME]`` table; raises ConfigError there."""

    def __call__(self, config: ChannelConfig, context: Context) -> Channel: ...


@runtime_checkable
class Preview(Protocol):
    """Optional: exactly what ``send`` would deliver, as text (``ha-notify render``)."""

    def preview(self, event: Event) -> str: ...


@dataclass(frozen=True)
class ProbeResult:
    """One line of ``doctor``: ``status`` is OK, WARN or FAIL; ``fix`` says what to do.
    Never put a secret (a token in a URL path) into ``detail``."""

    status: str
    detail: str
    fix: str = ""


@runtime_checkable
class Probe(Protocol):
    """Optional: can the channel reach its server? A handshake, never a message
    (``ha-notify doctor``); bounded by the channel's own timeout."""

    async def probe(self) -> list[ProbeResult]: ...
