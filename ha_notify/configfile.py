"""Which config file, and its TOML read once: shared by the check, notify and watch paths.

Light on purpose (``ha-notify check`` runs every few seconds): ``tomllib`` and the error
classes are imported only when a file is really parsed or something is wrong.
"""

from __future__ import annotations

import os
import sys

from ha_notify.constants import CONFIG_ENV, CONFIG_PATH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional


def locate(explicit: Optional[str] = None) -> tuple[str, bool]:
    """The config path (``--config``, else ``$HA_NOTIFY_CONFIG``, else the default) and
    whether the user named it: a missing default file means "no config", a named one is an
    error."""
    if explicit:
        return explicit, True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env, True
    return CONFIG_PATH, False


def error(path: object, message: str) -> Exception:
    """A ConfigError naming the file (imported only when there is one)."""
    from ha_notify.errors import ConfigError

    return ConfigError(f"{path}: {message}")


def not_found(path: object) -> Exception:
    return error(path, f"config file not found (from --config or ${CONFIG_ENV})")


def read(path: str) -> dict[str, Any]:
    """Parse one TOML file; every fault is one ConfigError naming the file and the fix."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9 and 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except IsADirectoryError as exc:
        raise error(path, "is a directory; expected the TOML config file") from exc
    except PermissionError as exc:
        raise error(path, "cannot read it (permission denied)") from exc
    except OSError as exc:
        raise error(path, f"cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        byte = exc.object[exc.start]
        message = f"not UTF-8 (line {line} has byte 0x{byte:02x}); save it as UTF-8"
        raise error(path, message) from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(path, f"not valid TOML: {exc}") from exc
