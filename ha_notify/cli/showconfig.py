"""``config show``: the configuration as TOML, ``[general]`` defaults filled in, secrets masked."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ha_notify.config import Config

MASK = "********"
_SECRETISH = re.compile(r"(password|secret|token|api_key|key)$")


def mask_url(value: str) -> str:
    """Only ``scheme://host[:port]`` of an http(s) URL survives; its user, path and query
    often hold the token. Other schemes (apprise's ``tgram://TOKEN/...``) keep the scheme."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}/{MASK}"
    return f"{parts.scheme}://{MASK}" if parts.scheme else MASK


def mask(key: str, value: Any) -> Any:
    """Hide secrets: secret-named keys, every header value, and the secret parts of URLs."""
    if key.endswith(("_file", "_env")):
        return value
    if _SECRETISH.search(key):
        return MASK
    if key == "headers" and isinstance(value, dict):
        return {name: MASK for name in value}
    if key in ("url", "urls"):
        if isinstance(value, list):
            return [mask_url(str(v)) for v in value]
        return mask_url(str(value))
    return value


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (frozenset, set)) else value
        return "[" + ", ".join(_toml(v) for v in items) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def dump(config: Config) -> str:
    lines = [f"# effective config from {config.path or 'built-in defaults (no file found)'}"]
    lines.append("[general]")
    for f in dataclasses.fields(config.general):
        value = getattr(config.general, f.name)
        if value is None:
            lines.append(f"# {f.name} is not set")
        else:
            lines.append(f"{f.name} = {_toml(value)}")
    lines += ["", "[watch]"]
    for f in dataclasses.fields(config.watch):
        value = getattr(config.watch, f.name)
        if value is None:
            off = f.name == "metrics_file"
            lines.append(f'{f.name} = ""  # off' if off else f"# {f.name} is not set")
        else:
            lines.append(f"{f.name} = {_toml(value)}")
    for ch in config.channels:
        lines += ["", f"[channels.{ch.name}]", f"type = {_toml(ch.type)}"]
        lines.append(f"states = {_toml(ch.states)}")
        for key, value in ch.options.items():
            if key not in ("type", "states"):
                lines.append(f"{key} = {_toml(mask(key, value))}")
    plain = {k: v for k, v in config.checks.items() if not isinstance(v, dict)}
    if plain:
        lines += ["", "[checks]"] + [f"{k} = {_toml(mask(k, v))}" for k, v in plain.items()]
    for name, table in config.checks.items():
        if isinstance(table, dict):
            lines += ["", f"[checks.{name}]"]
            lines += [f"{k} = {_toml(mask(k, v))}" for k, v in table.items()]
    return "\n".join(lines)
