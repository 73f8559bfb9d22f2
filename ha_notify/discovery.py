"""Plugins found through entry points, and which built-in names they would shadow.

Built-ins always win: a plugin that registers a built-in name is ignored, with a warning.
``importlib.metadata`` is imported only here, and only when a plugin is looked for (never by
``ha-notify check haproxy``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugin:
    """One entry point: its group, name and ``module:attr``; ``shadowed`` when a built-in
    of the same name wins over it."""

    group: str
    name: str
    value: str
    shadowed: bool

    def line(self) -> str:
        return f"{self.name} ({self.value})"


def entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` (importlib.metadata's API differs on Python 3.9)."""
    from importlib import metadata

    eps: Any = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=group))
    return list(eps.get(group, []))  # pragma: no cover - Python 3.9


def plugins(group: str, builtin: Mapping[str, str]) -> list[Plugin]:
    """Third-party entry points of ``group`` (ours, with a built-in's own value, left out)."""
    found = []
    for ep in entry_points(group):
        if builtin.get(ep.name) == ep.value:
            continue
        found.append(Plugin(group, ep.name, ep.value, ep.name in builtin))
    return sorted(found, key=lambda p: (p.name, p.value))


def shadow_warning(plugin: Plugin) -> str:
    return (
        f"plugin {plugin.value} registers {plugin.name!r} in {plugin.group}, which is built in: "
        "the built-in is used; rename the plugin's entry point"
    )


def third_party(group: str, name: str, builtin: Mapping[str, str]) -> Any:
    """The entry point called ``name`` that is not a built-in, or None. A plugin that
    registers a built-in name is logged as a warning and ignored."""
    if name in builtin:
        for plugin in plugins(group, builtin):
            if plugin.name == name:
                log.warning("%s", shadow_warning(plugin))
        return None
    found = [ep for ep in entry_points(group) if ep.name == name]
    return found[0] if found else None
