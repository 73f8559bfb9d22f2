"""TOML configuration turned into frozen dataclasses; the last place raw dicts exist.

Every error names the file, the key and what is expected, in one line.
"""

from __future__ import annotations

import ipaddress
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union, overload

from ha_notify import configfile
from ha_notify.constants import CONFIG_PATH, MAX_SECONDS, PAIR_KINDS, STATES
from ha_notify.errors import ConfigError

DEFAULT_PATH = Path(CONFIG_PATH)
LANGUAGES = ("en", "zh_CN")
SECRET_KEYS = ("password", "secret", "token", "api_key", "webhook_key")
_MISSING: Any = object()
MAX_PORT = 65535
MIN_INTERVAL = 0.01  # seconds: [watch] interval below this is a typo that burns a core
T = TypeVar("T")
D = TypeVar("D")  # the type of a getter's default: None makes the result Optional


class Secret:
    """A secret value that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def check_private(path: Path, what: str, *, key: str) -> None:
    """Refuse a secrets file that group or others can read."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(f"{key}: {what} {path} does not exist") from exc
    except PermissionError as exc:
        raise ConfigError(f"{key}: {what} {path} cannot be read (permission denied)") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{key}: {what} {path} is readable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); fix it with: chmod 600 {path}"
        )


class Table:
    """Typed, read-once access to one TOML table; errors say file, key and expectation."""

    def __init__(self, data: dict[str, Any], path: Optional[Path], prefix: str) -> None:
        self._data = data
        self.path = path
        self.prefix = prefix
        self._read: set[str] = set()

    def where(self, key: str) -> str:
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        return f"{self.path}: {dotted}" if self.path else dotted

    def error(self, key: str, expected: str, got: Any = _MISSING) -> ConfigError:
        shown = "" if got is _MISSING else f", got {got!r}"
        return ConfigError(f"{self.where(key)}: expected {expected}{shown}")

    def _get(self, key: str, default: Any, expected: str, ok: Callable[[Any], bool]) -> Any:
        self._read.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise ConfigError(f"{self.where(key)}: missing; expected {expected}")
            return default
        value = self._data[key]
        if not ok(value):
            raise self.error(key, expected, value)
        return value

    def has(self, key: str) -> bool:
        return key in self._data

    def items(self) -> list[tuple[str, Any]]:
        """The raw keys and values, for ``config show`` (which masks secrets)."""
        return list(self._data.items())

    @overload
    def get_str(self, key: str, *, choices: tuple[str, ...] = ()) -> str: ...
    @overload
    def get_str(self, key: str, default: D, *, choices: tuple[str, ...] = ()) -> Union[str, D]: ...
    def get_str(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] = ()) -> Any:
        """A non-empty string (one of ``choices`` if given)."""
        expected = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
        value = self._get(key, default, expected, lambda v: isinstance(v, str) and v != "")
        if choices and value is not None and value not in choices:
            raise self.error(key, expected, value)
        return value

    @overload
    def get_int(self, key: str, *, minimum: int = 0, maximum: Optional[int] = None) -> int: ...
    @overload
    def get_int(
        self, key: str, default: D, *, minimum: int = 0, maximum: Optional[int] = None
    ) -> Union[int, D]: ...
    def get_int(
        self, key: str, default: Any = _MISSING, *, minimum: int = 0, maximum: Optional[int] = None
    ) -> Any:
        """A whole number from ``minimum`` (to ``maximum``); never a bool."""

        def ok(v: Any) -> bool:
            whole = isinstance(v, int) and not isinstance(v, bool)
            return whole and v >= minimum and (maximum is None or v <= maximum)

        expected = f"a whole number {minimum}-{maximum}" if maximum is not None else None
        return self._get(key, default, expected or f"a whole number >= {minimum}", ok)

    @overload
    def get_port(self, key: str) -> int: ...
    @overload
    def get_port(self, key: str, default: D) -> Union[int, D]: ...
    def get_port(self, key: str, default: Any = _MISSING) -> Any:
        """A TCP port, 1-65535."""
        return self.get_int(key, default, minimum=1, maximum=MAX_PORT)

    def check_ports(self) -> None:
        """Every ``port`` or ``*_port`` key holds a TCP port, 1-65535, whoever reads it later."""
        for key, value in self._data.items():
            if key == "port" or key.endswith("_port"):
                whole = isinstance(value, int) and not isinstance(value, bool)
                if not whole or not 1 <= value <= MAX_PORT:
                    raise self.error(key, f"a port number 1-{MAX_PORT}", value)

    @overload
    def get_float(self, key: str, *, positive: bool = True) -> float: ...
    @overload
    def get_float(self, key: str, default: D, *, positive: bool = True) -> Union[float, D]: ...
    def get_float(self, key: str, default: Any = _MISSING, *, positive: bool = True) -> Any:
        """A finite number (> 0 unless ``positive=False``) up to the one duration cap."""

        def ok(v: Any) -> bool:
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            return number and math.isfinite(v) and abs(v) <= MAX_SECONDS and (v > 0 or not positive)

        expected = f"a number {'> 0 and ' if positive else ''}<= {MAX_SECONDS:g}"
        value = self._get(key, default, expected, ok)
        return None if value is None else float(value)

    @overload
    def get_bool(self, key: str) -> bool: ...
    @overload
    def get_bool(self, key: str, default: D) -> Union[bool, D]: ...
    def get_bool(self, key: str, default: Any = _MISSING) -> Any:
        """true or false."""
        return self._get(key, default, "true or false", lambda v: isinstance(v, bool))

    @overload
    def get_list(self, key: str, *, allow_str: bool = True) -> tuple[str, ...]: ...
    @overload
    def get_list(
        self, key: str, default: D, *, allow_str: bool = True
    ) -> Union[tuple[str, ...], D]: ...
    def get_list(self, key: str, default: Any = _MISSING, *, allow_str: bool = True) -> Any:
        """A list of non-empty strings, as a tuple (one string alone if ``allow_str``)."""

        def ok(v: Any) -> bool:
            if allow_str and isinstance(v, str) and v:
                return True
            return isinstance(v, list) and all(isinstance(x, str) and x for x in v)

        value = self._get(key, default, "a list of strings", ok)
        if isinstance(value, str):
            return (value,)
        return None if value is None else tuple(value)

    def table(self, key: str) -> dict[str, Any]:
        return dict(self._get(key, {}, "a table", lambda v: isinstance(v, dict)))

    @overload
    def get_path(self, key: str) -> Path: ...
    @overload
    def get_path(self, key: str, default: D) -> Union[Path, D]: ...
    def get_path(self, key: str, default: Any = _MISSING) -> Any:
        """An absolute path (keepalived runs scripts from /)."""
        value = self.get_str(key, default)
        if value is not None and "\x00" in str(value):
            raise self.error(key, "a path without NUL characters")
        if value is not None and not os.path.isabs(value):
            # keepalived runs scripts from /, so a relative path would mean something else there
            raise self.error(key, "an absolute path", value)
        return None if value is None else Path(value)

    @overload
    def get_path_or_off(self, key: str) -> Optional[Path]: ...
    @overload
    def get_path_or_off(self, key: str, default: D) -> Union[Path, D, None]: ...
    def get_path_or_off(self, key: str, default: Any = _MISSING) -> Any:
        """Like :meth:`get_path`, but ``""`` means "off" (None)."""
        if self._data.get(key) == "":
            self._read.add(key)
            return None
        return self.get_path(key, default)

    def secret(self, key: str, *, required: bool = False) -> Optional[Secret]:
        """Read ``key``, ``key_file`` or ``key_env``; permissions are checked, never logged."""
        given = [k for k in (key, f"{key}_file", f"{key}_env") if k in self._data]
        for k in (key, f"{key}_file", f"{key}_env"):
            self._read.add(k)
        if len(given) > 1:
            raise ConfigError(f"{self.where(key)}: set only one of {', '.join(given)}")
        if not given:
            if required:
                raise ConfigError(f"{self.where(key)}: missing; set {key}, {key}_file or {key}_env")
            return None
        name = given[0]
        value = self._data[name]
        if not isinstance(value, str) or not value:
            # Never echo the value: it may be the secret itself.
            raise ConfigError(f"{self.where(name)}: expected a non-empty string")
        if name == key:
            if self.path is not None:
                check_private(self.path, "config file holding a secret", key=self.where(key))
            return Secret(value)
        if name.endswith("_env"):
            env_value = os.environ.get(value)
            if not env_value:
                raise ConfigError(f"{self.where(name)}: environment variable {value} is not set")
            return Secret(env_value)
        secret_path = Path(value)
        text = self._secrets_file(name, secret_path).strip()
        if not text:
            raise ConfigError(f"{self.where(name)}: {secret_path} is empty")
        return Secret(text)

    def secret_list(self, key: str) -> tuple[Secret, ...]:
        """``key = [...]`` inline (the config file must then be private) or ``key_file``
        (one per line, ``#`` comments; permissions checked): URLs that carry credentials."""
        given = [k for k in (key, f"{key}_file") if k in self._data]
        self._read.update((key, f"{key}_file"))
        if len(given) > 1:
            raise ConfigError(f"{self.where(key)}: set only one of {key}, {key}_file")
        if not given:
            return ()
        if given[0] == key:
            raw = self._data[key]
            if not (isinstance(raw, list) and all(isinstance(v, str) and v for v in raw)):
                # Never echo the value: it holds credentials.
                raise ConfigError(f"{self.where(key)}: expected a list of strings")
            values: tuple[str, ...] = tuple(raw)
            if self.path is not None:
                check_private(self.path, "config file holding a secret", key=self.where(key))
        else:
            name = f"{key}_file"
            text = self._secrets_file(name, self.get_path(name))
            lines = (line.strip() for line in text.splitlines())
            values = tuple(line for line in lines if line and not line.startswith("#"))
        return tuple(Secret(v) for v in values)

    def _secrets_file(self, name: str, path: Path) -> str:
        check_private(path, "secrets file", key=self.where(name))
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.where(name)}: cannot read {path}: {exc}") from exc

    def reject_unknown(self, also_allowed: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self._data) - self._read - set(also_allowed))
        if unknown:
            known = ", ".join(sorted(self._read | set(also_allowed)))
            raise ConfigError(f"{self.where(unknown[0])}: unknown key; known keys: {known}")


@dataclass(frozen=True)
class GeneralConfig:
    cluster: str = "haproxy"
    state_dir: Path = Path("/var/lib/ha-notify")
    language: str = "en"
    deadline: float = 20.0
    templates_dir: Optional[Path] = None
    virtual_addresses: tuple[str, ...] = ()
    instance: str = "default"
    max_age: float = 86400.0
    flap_threshold: int = 5
    flap_window: float = 120.0


@dataclass(frozen=True)
class ChannelConfig:
    """One ``[channels.NAME]`` table: its name, type, state filter and its own options."""

    name: str
    type: str
    states: frozenset[str]
    options: Table = field(compare=False, repr=False)

    def wants(self, state: str) -> bool:
        """``state`` is a VRRP state or a pair alert kind (``Event.filter_key``).

        A ``states`` list that names no pair kind still gets every pair alert: a filter
        written for failover mails must not silence a split brain.
        """
        if state in PAIR_KINDS and not self.states & frozenset(PAIR_KINDS):
            return True
        return state in self.states


@dataclass(frozen=True)
class WatchConfig:
    """``[watch]``: the resident watcher (``ha-notify watch``); times in seconds."""

    interval: float = 1.0
    track_file: Path = Path("/run/ha-notify/track/haproxy")
    probe_interval: float = 5.0
    unserved_after: float = 10.0
    garp_after_split_brain: bool = True
    metrics_file: Optional[Path] = Path("/var/lib/prometheus/node-exporter/ha-notify.prom")
    fifo: Optional[Path] = None
    keepalived_config: Optional[Path] = None


@dataclass(frozen=True)
class Config:
    path: Optional[Path]
    general: GeneralConfig = field(default_factory=GeneralConfig)
    channels: tuple[ChannelConfig, ...] = ()
    checks: dict[str, Any] = field(default_factory=dict, compare=False)
    watch: WatchConfig = field(default_factory=WatchConfig)

    def channel(self, name: str) -> ChannelConfig:
        for ch in self.channels:
            if ch.name == name:
                return ch
        known = ", ".join(c.name for c in self.channels) or "none configured"
        raise ConfigError(f"{self.path}: no channel named {name!r}; channels: {known}")


def _addresses(t: Table) -> tuple[str, ...]:
    addresses: tuple[str, ...] = t.get_list("virtual_addresses", ())
    for address in addresses:
        try:
            ipaddress.ip_interface(address)
        except ValueError:
            raise t.error(
                "virtual_addresses", "IP addresses such as 192.168.0.130", address
            ) from None
    return addresses


def _general(data: dict[str, Any], path: Path) -> GeneralConfig:
    t = Table(data, path, "general")
    d = GeneralConfig()
    general = GeneralConfig(
        cluster=t.get_str("cluster", d.cluster),
        state_dir=t.get_path("state_dir", d.state_dir),
        language=t.get_str("language", d.language, choices=LANGUAGES),
        deadline=t.get_float("deadline", d.deadline),
        templates_dir=t.get_path("templates_dir", None),
        virtual_addresses=_addresses(t),
        instance=t.get_str("instance", d.instance),
        max_age=t.get_float("max_age", d.max_age),
        flap_threshold=t.get_int("flap_threshold", d.flap_threshold, minimum=2),
        flap_window=t.get_float("flap_window", d.flap_window),
    )
    t.reject_unknown()
    return general


def _watch(data: dict[str, Any], path: Path) -> WatchConfig:
    t = Table(data, path, "watch")
    d = WatchConfig()
    metrics = t.get_path_or_off("metrics_file", d.metrics_file)
    if metrics is not None and metrics.suffix != ".prom":
        # node_exporter's textfile collector reads only *.prom files: anything else is ignored.
        raise t.error("metrics_file", 'a path ending in .prom (or "" to disable)', str(metrics))
    watch = WatchConfig(
        interval=t.get_float("interval", d.interval),
        track_file=t.get_path("track_file", d.track_file),
        probe_interval=t.get_float("probe_interval", d.probe_interval),
        unserved_after=t.get_float("unserved_after", d.unserved_after),
        garp_after_split_brain=t.get_bool("garp_after_split_brain", d.garp_after_split_brain),
        metrics_file=metrics,
        fifo=t.get_path("fifo", None),
        keepalived_config=t.get_path("keepalived_config", None),
    )
    if watch.interval < MIN_INTERVAL:
        raise t.error("interval", f"a number of seconds >= {MIN_INTERVAL:g}", watch.interval)
    if watch.track_file == watch.metrics_file:
        raise t.error("metrics_file", "a different file than track_file", str(metrics))
    t.reject_unknown()
    return watch


def _channel(name: str, data: Any, path: Path) -> ChannelConfig:
    where = f"{path}: channels.{name}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table [channels.{name}]")
    t = Table(data, path, f"channels.{name}")
    ctype = t.get_str("type")
    t.check_ports()
    states = t.get_list("states", STATES)
    bad = [s for s in states if not isinstance(s, str) or s.lower() not in STATES + PAIR_KINDS]
    if bad:
        raise t.error("states", "a list of " + ", ".join(STATES + PAIR_KINDS), bad[0])
    return ChannelConfig(
        name=name, type=ctype, states=frozenset(s.lower() for s in states), options=t
    )


def parse(data: dict[str, Any], path: Path) -> Config:
    """Turn a parsed TOML document into a Config (channel options are checked later)."""
    unknown = sorted(set(data) - {"general", "channels", "checks", "watch"})
    if unknown:
        raise ConfigError(
            f"{path}: {unknown[0]}: unknown table; expected [general], [channels.NAME], "
            "[checks], [watch]"
        )
    watch = data.get("watch", {})
    if not isinstance(watch, dict):
        raise ConfigError(f"{path}: watch: expected a table [watch]")
    general = data.get("general", {})
    if not isinstance(general, dict):
        raise ConfigError(f"{path}: general: expected a table [general]")
    channels = data.get("channels", {})
    if not isinstance(channels, dict):
        raise ConfigError(f"{path}: channels: expected tables [channels.NAME]")
    checks = data.get("checks", {})
    if not isinstance(checks, dict):
        raise ConfigError(f"{path}: checks: expected tables [checks.NAME]")
    from ha_notify.checks.settings import validate

    validate(checks, str(path))  # the same rules `ha-notify check` applies
    return Config(
        path=path,
        general=_general(general, path),
        channels=tuple(_channel(n, c, path) for n, c in channels.items()),
        checks=checks,
        watch=_watch(watch, path),
    )


def load(explicit: Optional[str] = None) -> Config:
    """Load the effective config; a missing default file means "no channels"."""
    where, named = configfile.locate(explicit)
    path = Path(where)
    if not path.exists():
        if named:
            raise configfile.not_found(path)
        return Config(path=None)
    return parse(configfile.read(where), path)
