"""The ``[checks]`` part of the config file, read on the hot path without the full config.

Only ``[checks]``, ``[checks.haproxy]``, ``[checks.process.NAME]`` and a third-party check's
own ``[checks.NAME]`` are read and validated here; ``ha_notify.config`` owns the rest.
Parsing TOML means importing ``tomllib`` (and with it ``typing``, ``datetime``, ``re``...),
which costs about as much as starting Python: so the parsed ``[checks]`` table is cached
with ``marshal`` in the run directory, keyed by the config file's inode, size and times,
and only trusted when this user owns it and nobody else can write it.
"""

from __future__ import annotations

import marshal
import os
import stat

from ha_notify import configfile
from ha_notify.checks import _Frozen
from ha_notify.checks.files import write_replace
from ha_notify.constants import MAX_SECONDS, RUN_DIR, RUN_DIR_ENV

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

CACHE_FORMAT = 1

# key: (expected type(s), what the error message says is expected)
_HAPROXY_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "pidfile": ((str,), 'a path, or "" to scan /proc only'),
    "socket": ((str,), "a socket path or host:port"),
    "haproxy_config": ((str,), "the path of haproxy.cfg"),
    "deep": ((bool,), "true or false"),
    "timeout": ((int, float), f"a number of seconds > 0 and <= {MAX_SECONDS:g}"),
    "min_up": ((int,), "an integer >= 0"),
    "ignore_backends": ((list,), "a list of backend names"),
}
_PROCESS_KEYS = {key: _HAPROXY_KEYS[key] for key in ("pidfile", "timeout")}


class CheckSettings(_Frozen):
    """One check's settings from the config file; None means "not set there"."""

    __slots__ = (
        "deep",
        "haproxy_config",
        "ignore_backends",
        "min_up",
        "pidfile",
        "socket",
        "table",
        "timeout",
    )
    pidfile: Optional[str]
    socket: Optional[str]
    haproxy_config: Optional[str]
    deep: Optional[bool]
    timeout: Optional[float]
    min_up: Optional[int]
    ignore_backends: tuple[str, ...]
    table: dict[str, Any]

    def __init__(self, table: Optional[dict[str, Any]] = None) -> None:
        raw = table or {}
        timeout = raw.get("timeout")
        values = {
            "pidfile": raw.get("pidfile"),
            "socket": raw.get("socket"),
            "haproxy_config": raw.get("haproxy_config"),
            "deep": raw.get("deep"),
            "timeout": None if timeout is None else float(timeout),
            "min_up": raw.get("min_up"),
            "ignore_backends": tuple(raw.get("ignore_backends", ())),
            "table": raw,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)


class ChecksSettings(_Frozen):
    """``[checks]``: where it came from, the run directory and the per-check tables."""

    __slots__ = ("checks", "path", "run_dir")
    path: Optional[str]
    run_dir: str
    checks: dict[str, Any]

    def __init__(self, path: Optional[str], run_dir: str, checks: dict[str, Any]) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "run_dir", run_dir)
        object.__setattr__(self, "checks", checks)

    def for_check(self, name: str, args: tuple[str, ...] = ()) -> CheckSettings:
        """Settings of ``check NAME ARGS`` (``[checks.process.ARG]`` for ``process``)."""
        table = self.checks.get(name)
        if name == "process":
            table = (table or {}).get(args[0]) if len(args) == 1 else None
        return CheckSettings(table if isinstance(table, dict) else None)


def bootstrap_run_dir() -> str:
    """The run directory before the config is read: ``$HA_NOTIFY_RUN_DIR`` or the default."""
    return os.environ.get(RUN_DIR_ENV) or RUN_DIR


def load(path: Optional[str] = None) -> ChecksSettings:
    """Read ``[checks]`` from ``path``, else ``$HA_NOTIFY_CONFIG``, else the default file.

    A missing default file means defaults; every other problem raises ConfigError naming the
    file, the key and what is expected.
    """
    chosen, named = configfile.locate(path)
    try:
        info = os.stat(chosen)
    except FileNotFoundError:
        if named:
            raise configfile.not_found(chosen) from None
        return ChecksSettings(None, bootstrap_run_dir(), {})
    except OSError as exc:
        raise _error(chosen, None, f"cannot read it: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):  # a FIFO would hold the check forever
        from ha_notify.checks.bounded import kind

        raise _error(chosen, None, f"is {kind(info.st_mode)}; expected the TOML config file")
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    checks = _cache_read(chosen, key)
    if checks is None:
        checks = _parse(chosen)
        validate(checks, chosen)
        _cache_write(chosen, key, checks)
    else:
        validate(checks, chosen)
    return ChecksSettings(chosen, run_dir(checks), checks)


def run_dir(checks: dict[str, Any]) -> str:
    """``$HA_NOTIFY_RUN_DIR``, else ``[checks] run_dir``, else the default."""
    return os.environ.get(RUN_DIR_ENV) or checks.get("run_dir") or RUN_DIR


def _error(path: str, key: Optional[str], expected: str) -> Exception:
    from ha_notify.errors import ConfigError

    where = f"{path}: {key}: " if key else f"{path}: "
    return ConfigError(where + expected)


def _parse(path: str) -> dict[str, Any]:
    checks = configfile.read(path).get("checks", {})
    if not isinstance(checks, dict):
        raise _error(path, "checks", "expected a table [checks]")
    return checks


def validate(checks: dict[str, Any], path: str) -> None:
    """Raise ConfigError for the first wrong key of ``[checks]`` (third-party tables aside)."""
    run_dir = checks.get("run_dir")
    if run_dir is not None and (not isinstance(run_dir, str) or not run_dir):
        raise _error(path, "checks.run_dir", "expected the path of a directory")
    for name, value in checks.items():
        if name == "run_dir":
            continue
        if not isinstance(value, dict):
            raise _error(path, f"checks.{name}", "expected a table [checks.NAME] or run_dir")
        if name == "haproxy":
            _validate_table(value, _HAPROXY_KEYS, path, "checks.haproxy")
        elif name == "process":
            for daemon, table in value.items():
                where = f"checks.process.{daemon}"
                if not isinstance(table, dict):
                    raise _error(path, where, "expected a table [checks.process.NAME]")
                _validate_table(table, _PROCESS_KEYS, path, where)


def _validate_table(
    table: dict[str, Any], keys: dict[str, tuple[tuple[type, ...], str]], path: str, where: str
) -> None:
    for key, value in table.items():
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise _error(path, f"{where}.{key}", f"unknown key; expected one of {known}")
        types, expected = keys[key]
        bad = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if not bad and key == "timeout":
            import math  # only when a timeout is set

            bad = not math.isfinite(value) or not 0 < value <= MAX_SECONDS
        elif not bad and key == "min_up":
            bad = value < 0
        elif not bad and key == "ignore_backends":
            bad = not all(isinstance(item, str) for item in value)
        elif not bad and key in ("socket", "haproxy_config"):
            bad = not value
        if bad:
            raise _error(path, f"{where}.{key}", f"expected {expected}, got {value!r}")


def _cache_path(path: str) -> str:
    return os.path.join(bootstrap_run_dir(), "config-" + path.replace("/", "_") + ".cache")


def _cache_read(path: str, key: tuple[int, ...]) -> Optional[dict[str, Any]]:
    try:
        fd = os.open(_cache_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None
        data = os.read(fd, 1 << 20)
        entry = marshal.loads(data)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)
    if (
        isinstance(entry, tuple)
        and len(entry) == 4
        and entry[:3] == (CACHE_FORMAT, path, key)
        and isinstance(entry[3], dict)
    ):
        return entry[3]
    return None


def _cache_write(path: str, key: tuple[int, ...], checks: dict[str, Any]) -> None:
    """Best effort: a run directory we cannot write only means parsing TOML every run."""
    try:
        data = marshal.dumps((CACHE_FORMAT, path, key, checks))
    except ValueError:  # a TOML date somewhere in [checks]: not worth caching
        return
    write_replace(_cache_path(path), data, 0o600)
