"""Server answers are redacted before they are stored or shown.

A server's error body can echo the request (``Cannot POST /services/T000/B000/SECRET``): every
secret a channel holds -- passwords, tokens, keys, and the path and query of its URLs, which
often are the token -- is replaced wherever it appears, before the text reaches a log line,
stderr, a spool file or ``status --json``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from ha_notify.config import Secret

MASK = "[redacted]"
MIN_LEN = 4  # shorter values would mask ordinary words
_TOKENISH = re.compile(r"(?=.*\d)|(?=.*[A-Z])(?=.*[a-z])")


def _url_parts(url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return []
    found = [parts.path, parts.query] if parts.path not in ("", "/") else [parts.query]
    found += [v for _, v in parse_qsl(parts.query)]
    for segment in parts.path.split("/"):
        if len(segment) >= 16 or (len(segment) >= 8 and _TOKENISH.match(segment)):
            found.append(segment)
    return found


def _collect(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, Secret):
        out.append(value.reveal())
        out.extend(_url_parts(value.reveal()))
    elif isinstance(value, str):
        out.extend(_url_parts(value))
    elif isinstance(value, (tuple, list, set, frozenset)):
        for item in value:
            _collect(item, out, depth)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, out, depth)
    elif depth > 0 and hasattr(value, "__dict__") and not isinstance(value, type):
        for item in vars(value).values():
            _collect(item, out, depth - 1)


def secrets_of(channel: Any) -> list[str]:
    """Every secret ``channel`` holds (also in its HTTP and auth helpers), longest first."""
    found: list[str] = []
    if hasattr(channel, "__dict__"):
        for name, value in vars(channel).items():
            if name not in ("renderer",):
                _collect(value, found, 2)
    variants = {quote(s, safe="") for s in found} | {quote(s) for s in found} | set(found)
    return sorted((s for s in variants if len(s) >= MIN_LEN), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def error_text(channel: Any, exc: BaseException) -> str:
    """``str(exc)`` with every secret of ``channel`` masked."""
    return redact(str(exc), secrets_of(channel))
