"""Can each channel reach its server? A handshake, never a message (unless ``--send``).

Each channel probes itself through the optional Probe capability of :mod:`ha_notify.plugin`
(the built-ins' handshakes are in :mod:`ha_notify.channels.handshake`); a channel without it
gets a warning that suggests ``--send``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ha_notify.doctor import Finding, fail, ok, warn
from ha_notify.plugin import Probe

if TYPE_CHECKING:
    from ha_notify.doctor.local import Environment


async def _probe(channel: Any) -> list[Finding]:
    """The channel's own Probe capability (built-in or plugin), one finding per result."""
    name = f"channel {channel.name}"
    if not isinstance(channel, Probe):
        return [
            warn(
                name,
                "this channel type cannot be probed",
                "use doctor --send to really send a test",
            )
        ]
    try:
        results = await channel.probe()
    except Exception as exc:  # a plugin's bug: one failed line, not a crashed doctor
        detail = f"its probe crashed: {type(exc).__name__}: {exc}"
        return [fail(name, detail, "report this to the channel's author; use doctor --send")]
    return [Finding(name, r.status, r.detail, r.fix) for r in results]


def channel_findings(env: Environment, *, send: bool) -> list[Finding]:
    """One line per channel (or per URL), and with ``send`` one line per test sent."""
    usable = {n: c for n, c in env.channels.items() if not isinstance(c, Exception)}
    found: list[Finding] = []
    for name in env.channels:
        if name not in usable:
            found.append(
                fail(
                    f"channel {name}",
                    "not checked: its configuration is invalid",
                    "see the config line above",
                )
            )

    async def every() -> list[list[Finding]]:
        return list(await asyncio.gather(*(_probe(c) for c in usable.values())))

    if usable:
        for findings in asyncio.run(every()):
            found += findings
    if send and env.config is not None and usable:
        found += _send(env)
    return found


def _send(env: Environment) -> list[Finding]:
    from ha_notify.notify.engine import Notifier
    from ha_notify.notify.report import SENT

    assert env.config is not None
    found = []
    for r in Notifier(env.config).test(None):
        if r.status == SENT:
            found.append(ok(f"send {r.channel}", "test notification delivered"))
        else:
            fix = f"fix [channels.{r.channel}], then: ha-notify test --channel {r.channel}"
            found.append(fail(f"send {r.channel}", r.why, fix))
    return found
