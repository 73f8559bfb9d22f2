"""Health checks for keepalived's ``vrrp_script``: ``ha-notify check NAME``.

A check is any callable that takes a :class:`CheckOptions` and returns a :class:`CheckResult`
(the :class:`~ha_notify.checks.base.Check` protocol). Built-in checks (``haproxy``,
``process``) are imported directly by name; third-party ones are found through the
``ha_notify.checks`` entry-point group.

This package sits on the hot path (keepalived runs it every few seconds, forever), so it
imports nothing beyond what the interpreter has already loaded: the two value types below are
hand-written frozen classes because ``dataclasses`` (through ``inspect``) costs about as much
as starting Python itself.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from ha_notify.checks.base import Check

__all__ = ["Check", "CheckOptions", "CheckResult", "shared_line", "summarize"]


class _Frozen:
    """Immutable, slotted value object: equality, hash and repr from ``__slots__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen; cannot delete {name!r}")

    def _names(self) -> tuple[str, ...]:
        return type(self).__slots__  # each subclass sets its own

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Frozen)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"


class CheckResult(_Frozen):
    """What a check found: ``healthy`` and a one-line ``reason`` an operator can act on.

    ``notes`` are problems reported but not judged: for the haproxy check, backends whose
    servers the pair shares (failing over cannot help them). They go to stderr, syslog (on
    change) and ``status``, never into the verdict.
    """

    __slots__ = ("healthy", "notes", "reason")
    healthy: bool
    reason: str
    notes: tuple[str, ...]

    def __init__(self, healthy: bool, reason: str, notes: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "healthy", healthy)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "notes", notes)


class CheckOptions(_Frozen):
    """Effective settings of one check run: command line over config file over defaults.

    ``deadline`` is a ``time.monotonic()`` value: the whole check must finish by then.
    ``no_pidfile`` means "scan /proc, ignore every pidfile". ``min_up`` is the number of
    servers UP a backend needs; ``backends_fail`` says whether a backend below it fails the
    check (the operator set ``min_up``) or is only reported in the result's notes. ``args``
    are the positional arguments after the check name (``process NAME``); third-party
    checks also get their raw ``[checks.NAME]`` table as ``table``.
    """

    __slots__ = (
        "args",
        "backends_fail",
        "deadline",
        "deep",
        "haproxy_config",
        "ignore_backends",
        "min_up",
        "name",
        "no_pidfile",
        "pidfile",
        "socket",
        "table",
        "timeout",
    )
    name: str
    args: tuple[str, ...]
    pidfile: Optional[str]
    no_pidfile: bool
    socket: Optional[str]
    haproxy_config: Optional[str]
    deep: bool
    timeout: float
    deadline: float
    min_up: int
    backends_fail: bool
    ignore_backends: frozenset[str]
    table: Mapping[str, object]

    def __init__(
        self,
        *,
        name: str,
        args: tuple[str, ...] = (),
        pidfile: Optional[str] = None,
        no_pidfile: bool = False,
        socket: Optional[str] = None,
        haproxy_config: Optional[str] = None,
        deep: bool = False,
        timeout: float = 2.0,
        deadline: float,
        min_up: int = 1,
        backends_fail: bool = False,
        ignore_backends: frozenset[str] = frozenset(),
        table: Optional[Mapping[str, object]] = None,
    ) -> None:
        values = {
            "name": name,
            "args": args,
            "pidfile": pidfile,
            "no_pidfile": no_pidfile,
            "socket": socket,
            "haproxy_config": haproxy_config,
            "deep": deep,
            "timeout": timeout,
            "deadline": deadline,
            "min_up": min_up,
            "backends_fail": backends_fail,
            "ignore_backends": ignore_backends,
            "table": {} if table is None else table,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __hash__(self) -> int:
        return hash((self.name, self.args, self.deadline))


MAX_PROBLEMS = 5  # problems named in one line before "and N more"


def summarize(items: list[str], limit: int = MAX_PROBLEMS, sep: str = "; ") -> str:
    """The first ``limit`` items joined, then ``and N more``: a line of bounded length."""
    more = len(items) - limit
    head = sep.join(items[:limit])
    return head + (f"{sep}and {more} more" if more > 0 else "")


def shared_line(notes: tuple[str, ...]) -> str:
    """The one line that reports ``notes``: what the pair shares, reported, not failed over."""
    return f"reported, not failed over (both nodes share it): {summarize(list(notes))}"


def __getattr__(name: str) -> object:
    """Load the :class:`Check` protocol (and ``typing``) only for those who ask for it."""
    if name == "Check":
        from ha_notify.checks.base import Check

        return Check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
