"""What the spool stores: an event file with one leg per channel, and the delivery views.

A leg records one channel's status (``pending``, ``sent``, ``dead``, or ``dropped`` by the
operator), attempts, backoff and when it was last tried, and for email which recipients
already have the message or refused it for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ha_notify.event import Event
from ha_notify.fsutil import instant

PENDING, SENT, DEAD, DROPPED = "pending", "sent", "dead", "dropped"
STATUSES = (PENDING, SENT, DEAD, DROPPED)


@dataclass(frozen=True)
class Leg:
    """One channel's part of an event: status, attempts, and recipients already settled."""

    status: str = PENDING
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    sent_to: tuple[str, ...] = ()  # recipients that accepted (never sent to again)
    dead_to: dict[str, str] = field(default_factory=dict)  # recipient -> permanent refusal
    last_try: float = 0.0  # when it last failed or was given up (0: never)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt": self.next_attempt,
            "last_error": self.last_error,
            "sent_to": list(self.sent_to),
            "dead_to": dict(self.dead_to),
            "last_try": self.last_try,
        }

    @classmethod
    def from_json(cls, data: Any) -> Leg:
        if not isinstance(data, dict) or data.get("status", PENDING) not in STATUSES:
            raise ValueError(f"a channel entry must be an object with a status, not {data!r:.60}")
        dead_to = data.get("dead_to", {})
        if not isinstance(dead_to, dict):
            raise ValueError("dead_to must be an object")
        return cls(
            status=str(data.get("status", PENDING)),
            attempts=int(data.get("attempts", 0)),
            next_attempt=instant(data.get("next_attempt", 0.0)),
            last_error=str(data.get("last_error", "")),
            sent_to=tuple(str(r) for r in data.get("sent_to", ())),
            dead_to={str(k): str(v) for k, v in dead_to.items()},
            last_try=instant(data.get("last_try", 0.0)),
        )


@dataclass(frozen=True)
class Delivery:
    """One event to be sent through one channel (a view of one leg of an event file)."""

    path: Path
    channel: str
    event: Event
    created: float
    leg: Leg = field(default_factory=Leg)

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.channel}"

    @property
    def group(self) -> tuple[str, str]:
        return (self.channel, self.event.key)

    @property
    def attempts(self) -> int:
        return self.leg.attempts

    @property
    def next_attempt(self) -> float:
        return self.leg.next_attempt

    @property
    def last_error(self) -> str:
        return self.leg.last_error


@dataclass(frozen=True)
class EventFile:
    """One spool file: the event and one leg per wanted channel."""

    path: Path
    event: Event
    created: float
    legs: dict[str, Leg]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 2,
            "event": self.event.to_json(),
            "created": self.created,
            "channels": {name: leg.to_json() for name, leg in self.legs.items()},
        }

    def deliveries(self, status: str = PENDING) -> list[Delivery]:
        return [
            Delivery(self.path, name, self.event, self.created, leg)
            for name, leg in self.legs.items()
            if leg.status == status
        ]


def parse(path: Path, data: Any) -> EventFile:
    """An event file from its JSON (also the one-file-per-channel form of earlier versions)."""
    if not isinstance(data, dict) or not isinstance(data.get("event"), dict):
        raise ValueError("not a spool entry (no event object)")
    event = Event.from_json(data["event"])
    if not isinstance(event.seq, int) or not isinstance(event.state, str):
        raise ValueError("the event has no whole sequence number or state")
    if "channels" in data:
        if not isinstance(data["channels"], dict) or not data["channels"]:
            raise ValueError("channels must be a non-empty object")
        legs = {str(k): Leg.from_json(v) for k, v in data["channels"].items()}
    else:  # version 1: one file per (event, channel); its folder was its status
        status = DEAD if path.parent.name == "dead" else PENDING
        legs = {str(data["channel"]): Leg.from_json({**data, "status": status})}
    return EventFile(path, event, instant(data["created"]), legs)
