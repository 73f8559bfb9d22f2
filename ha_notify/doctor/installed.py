"""Third-party plugins: each channel type and check found, whether it loads, and any that a
built-in of the same name shadows (built-ins always win)."""

from __future__ import annotations

from ha_notify import discovery
from ha_notify.channels import BUILTIN as BUILTIN_CHANNELS
from ha_notify.checks.runner import BUILTIN as BUILTIN_CHECKS
from ha_notify.constants import CHANNELS_GROUP, CHECKS_GROUP
from ha_notify.doctor import Finding, ok, warn

KINDS = (
    (CHANNELS_GROUP, "channel type", BUILTIN_CHANNELS),
    (CHECKS_GROUP, "check", BUILTIN_CHECKS),
)


def findings() -> list[Finding]:
    """One line per plugin: ok when it loads, warn when it is broken or shadowed."""
    found = []
    for group, kind, builtin in KINDS:
        for plugin in discovery.plugins(group, builtin):
            name = f"plugin {kind} {plugin.name}"
            if plugin.shadowed:
                fix = "rename the plugin's entry point"
                found.append(warn(name, discovery.shadow_warning(plugin), fix))
                continue
            try:
                discovery.third_party(group, plugin.name, builtin).load()
            except Exception as exc:  # a broken plugin is reported, never a crash
                detail = f"{plugin.value} fails to load: {type(exc).__name__}: {exc}"
                fix = "reinstall or remove the plugin's package"
                found.append(warn(name, detail, fix))
                continue
            found.append(ok(name, f"{plugin.value} (from {group})"))
    return found
