"""Jinja2 templates: built-in English and Chinese, overridable file by file.

A broken override never silences an alert: the error is logged and the built-in template
renders instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Optional

import jinja2

from ha_notify.errors import TemplateError
from ha_notify.event import Event

log = logging.getLogger(__name__)
BUILTIN_DIR = Path(__file__).parent / "templates"
TEMPLATES = ("subject.txt", "body.txt", "body.html", "chat.md")
# A pair alert (split brain, unserved, not serving) renders ``pair_<name>`` instead: an old
# override of body.txt written for state changes never describes a split brain as "MASTER".
PAIR_PREFIX = "pair_"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+|!~>])")


def md_escape(value: object) -> str:
    """Escape Markdown so that a hostile instance name cannot format or link."""
    return _MD_SPECIAL.sub(r"\\\1", str(value))


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md_escape
    return env


class Renderer:
    """Renders one template for one event, preferring an override in ``templates_dir``."""

    def __init__(self, language: str = "en", templates_dir: Optional[Path] = None) -> None:
        self.language = language
        self.templates_dir = templates_dir
        self._builtin = _environment(jinja2.FileSystemLoader(str(BUILTIN_DIR / language)))
        self._override: Optional[jinja2.Environment] = None
        if templates_dir is not None:
            # templates_dir/<language>/NAME first, then templates_dir/NAME.
            paths = [str(templates_dir / language), str(templates_dir)]
            self._override = _environment(jinja2.FileSystemLoader(paths))

    def context(self, event: Event, **extra: Any) -> dict[str, Any]:
        # ``was``: the previous state (lower case, like e.state) when it differs (no "MASTER
        # (was MASTER)" on a repeat); else "" so that a custom ``{{ was }}`` never prints "None".
        was = event.previous if event.previous and event.previous != event.state else ""
        # ``repeat``: keepalived reported the state it was already in (no "MASTER -> MASTER").
        # ``node_name``: "vm" rather than "vm (vm)" when the FQDN is the hostname.
        # ``vips_elsewhere``: MASTER said, but the configured virtual addresses are not here.
        node = event.node
        return {
            "e": event,
            "node": node,
            "STATE": event.state.upper(),
            "was": was,
            "repeat": bool(event.previous) and event.previous == event.state,
            "node_name": node.hostname
            if node.fqdn in ("", node.hostname)
            else f"{node.hostname} ({node.fqdn})",
            "vips_elsewhere": bool(event.virtual_addresses) and node.holds_vips is False,
            **extra,
        }

    def render(self, name: str, event: Event, **extra: Any) -> str:
        if event.pair is not None:
            name = PAIR_PREFIX + name
        ctx = self.context(event, **extra)
        if self._override is not None:
            try:
                return self._override.get_template(name).render(ctx).strip()
            except jinja2.TemplateNotFound:
                pass
            except Exception as exc:
                log.error(
                    "template override %s in %s is broken (%s: %s); using the built-in one",
                    name,
                    self.templates_dir,
                    type(exc).__name__,
                    exc,
                )
        try:
            return self._builtin.get_template(name).render(ctx).strip()
        except Exception as exc:
            raise TemplateError(f"built-in template {self.language}/{name}: {exc}") from exc

    def subject(self, event: Event) -> str:
        """One line, whatever a template produced."""
        return " ".join(self.render("subject.txt", event).split())
