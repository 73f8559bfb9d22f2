"""The chat template's Markdown, turned into what each service renders.

``chat.md`` is Markdown in which every value from the event went through the ``md`` filter
(a backslash before each special character). Services that speak Markdown get it as is;
Telegram gets HTML, Slack its ``mrkdwn``, Alertmanager plain text. Only ``**bold**`` and the
filter's escapes are translated: untrusted values stay inert text in every flavour.
"""

from __future__ import annotations

import html
import re
from typing import Callable

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]<>()#+|!~])")
_BOLD = re.compile(r"(?<!\\)\*\*(.+?)(?<!\\)\*\*")


def _convert(md: str, escape: Callable[[str], str], bold: Callable[[str], str]) -> str:
    out, last = [], 0
    for match in _BOLD.finditer(md):
        out.append(escape(unescape(md[last : match.start()])))
        out.append(bold(escape(unescape(match.group(1)))))
        last = match.end()
    out.append(escape(unescape(md[last:])))
    return "".join(out)


def unescape(md: str) -> str:
    """Drop the ``md`` filter's backslashes."""
    return _ESCAPE.sub(r"\1", md)


def plain(md: str) -> str:
    """Plain text: no markers, no escapes."""
    return _convert(md, lambda s: s, lambda s: s)


def telegram_html(md: str) -> str:
    """Telegram's HTML: text escaped, bold as ``<b>``."""
    return _convert(md, lambda s: html.escape(s, quote=False), lambda s: f"<b>{s}</b>")


def slack_mrkdwn(md: str) -> str:
    """Slack's mrkdwn: ``&``, ``<`` and ``>`` escaped (no links or mentions), bold as ``*``."""

    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return _convert(md, escape, lambda s: f"*{s}*")


def fit(text: str, limit: int, *, utf8: bool = False) -> str:
    """Cut ``text`` to a service's size limit (characters, or UTF-8 bytes) with a marker."""
    size = len(text.encode("utf-8")) if utf8 else len(text)
    if size <= limit:
        return text
    marker = "\n…(truncated)"
    if not utf8:
        return text[: limit - len(marker)] + marker
    room = limit - len(marker.encode("utf-8"))
    cut = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + marker
