"""Episodes of a pair problem per (kind, VIP): one "start" and one "end", never one per probe.

A machine is fed one observation per probe: ``bad`` (the problem is seen now) or not. It
changes its mind only after ``confirm`` observations in a row say so (a preempting failback
briefly has two holders, one lost ARP reply is not a VIP nobody serves) and, when raising,
after the problem has lasted ``hold`` seconds since it was first seen (``unserved_after``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Change:
    """An episode started (``resolved`` False) or ended; ``since`` is when it was first seen."""

    kind: str
    vip: str
    resolved: bool
    since: float
    at: float
    detail: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Rule:
    """How sure a machine must be: observations in a row, and seconds bad before raising."""

    confirm: int = 2
    hold: float = 0.0


class Episode:
    """The state machine of one (kind, VIP)."""

    def __init__(self, kind: str, vip: str, rule: Rule) -> None:
        self.kind = kind
        self.vip = vip
        self.rule = rule
        self.active = False
        self.since: Optional[float] = None  # first bad observation of the streak or episode
        self.streak = 0  # observations in a row that disagree with ``active``
        self.detail: dict[str, object] = {}

    @property
    def pending(self) -> bool:
        """True while a change is suspected but not confirmed: probe again soon."""
        return self.streak > 0

    def observe(
        self, now: float, bad: Optional[bool], detail: Optional[dict[str, object]] = None
    ) -> Optional[Change]:
        """Feed one observation; the Change it confirms, if any. ``bad=None``: no verdict."""
        if bad is None:  # e.g. not applicable on this node right now: nothing learned
            return None
        if bad:
            self.detail = dict(detail or {})
        if bad == self.active:
            self.streak = 0
            if not bad:
                self.since = None
            return None
        self.streak += 1
        if bad and self.since is None:
            self.since = now
        if self.streak < self.rule.confirm:
            return None
        since = self.since if self.since is not None else now
        if bad and now - since < self.rule.hold:
            return None
        self.streak = 0
        self.active = bool(bad)
        if not bad:
            self.since = None
        return Change(self.kind, self.vip, not bad, since, now, dict(self.detail))
