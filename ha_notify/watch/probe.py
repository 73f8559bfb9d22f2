"""What a probe of the watcher is handed each round, and what it gives back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional, Protocol

from ha_notify.checks import CheckResult
from ha_notify.watch.vips import Vip


@dataclass(frozen=True)
class Sample:
    """One Prometheus sample: a metric name from the DESIGN, its own labels and a value.

    ``cluster`` and ``node`` are added by the metrics writer; never use ``instance``.
    """

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class VrrpState:
    """The last state keepalived reported for one VRRP instance (state store or FIFO)."""

    state: str  # master, backup, fault, stop, deleted
    transitions: int  # events recorded for the instance so far
    since: float  # wall-clock time of the last transition


@dataclass(frozen=True)
class RoundContext:
    """Everything a probe may look at in one round, gathered once for all probes.

    ``now`` is ``time.monotonic()``, ``wall`` is ``time.time()``; ``held`` are the addresses of
    ``vips`` this node holds now; ``fifo_lines`` are the raw keepalived FIFO lines read since
    the last round (``INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100`` included).
    """

    now: float
    wall: float
    vips: tuple[Vip, ...]
    held: frozenset[str]
    verdict: Optional[CheckResult]
    vrrp: Mapping[str, VrrpState] = field(default_factory=dict)
    fifo_lines: tuple[str, ...] = ()


class WatchProbe(Protocol):
    """Something the watcher runs once per round (see the package docstring)."""

    def round(self, ctx: RoundContext) -> None: ...

    def metrics(self) -> Iterable[Sample]: ...
