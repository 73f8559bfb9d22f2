"""The event handed to every channel, and keepalived's argument forms that produce it."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from ha_notify.constants import PAIR_KINDS, STATES
from ha_notify.errors import UsageError

KINDS = ("INSTANCE", "GROUP")
# What an event is about: a state change, a flapping summary, the end of flapping, a test.
TRANSITION, FLAPPING, STABLE, TEST = "transition", "flapping", "stable", "test"
# Pair alerts (the watcher): an episode starts, and ends with ``resolved``.
SPLIT_BRAIN, UNSERVED, NOT_SERVING = PAIR_KINDS
VIP_KIND = "VIP"  # Event.kind of a pair alert: its order group is the VIP
MAX_NAME = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Lone surrogates: what Python makes of non-UTF-8 bytes in argv (surrogateescape). They
# cannot be encoded as UTF-8, so a spool file, a mail or a JSON body would fail to write.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean(text: str, limit: int = MAX_NAME) -> str:
    """Make untrusted text safe for a header, a log line or a JSON payload.

    Control characters (newlines included) become spaces and the text is cut to ``limit``
    characters: an instance name can never start a new mail header or log line. Bytes that
    were not UTF-8 (surrogate-escaped by Python) become U+FFFD.
    """
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_state(text: str) -> str:
    """Return the lower-case state, or raise naming the accepted ones (``falut`` is an error)."""
    state = text.strip().lower()
    if state not in STATES:
        raise UsageError(
            f"unknown state {clean(text, 40)!r}: expected one of {', '.join(STATES)} (any case)"
        )
    return state


def parse_kind(text: str) -> str:
    kind = text.strip().upper()
    if kind not in KINDS:
        raise UsageError(f"unknown type {clean(text, 40)!r}: expected INSTANCE or GROUP")
    return kind


def parse_priority(text: Optional[str]) -> Optional[int]:
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"priority {clean(text, 40)!r}: expected a whole number 0-255") from None
    if not 0 <= value <= 255:
        raise UsageError(f"priority {value}: expected a whole number 0-255")
    return value


def parse_name(text: str) -> str:
    name = clean(text)
    if not name:
        raise UsageError("instance or group name is empty: pass the keepalived instance name")
    return name


@dataclass(frozen=True)
class Transition:
    """One recorded state change of an instance (used in flapping summaries)."""

    state: str
    previous: Optional[str]
    seq: int
    timestamp: str


@dataclass(frozen=True)
class Node:
    """Facts about this machine, gathered once per event."""

    hostname: str
    fqdn: str
    addresses: tuple[str, ...] = ()
    holds_vips: Optional[bool] = None


@dataclass(frozen=True)
class Pair:
    """What a pair alert is about: the VIP, who else answers for it, since when.

    ``local_state`` is this node's VRRP state; ``peer_state`` what the wire says about the
    other node ("master" when it answers ARP for the VIP or keepalived reports its adverts).
    """

    vip: str
    interface: Optional[str] = None
    instance: Optional[str] = None
    other_macs: tuple[str, ...] = ()
    other_ip: Optional[str] = None
    since: str = ""
    local_state: Optional[str] = None
    peer_state: Optional[str] = None
    ports: tuple[int, ...] = ()
    frontends: tuple[str, ...] = ()
    fifo_signal: bool = False


@dataclass(frozen=True)
class Event:
    """A failover event: immutable, JSON round-trippable, the same on every retry."""

    state: str
    name: str
    cluster: str
    node: Node
    kind: str = "INSTANCE"
    previous: Optional[str] = None
    priority: Optional[int] = None
    seq: int = 0
    virtual_addresses: tuple[str, ...] = ()
    haproxy: tuple[str, ...] = ()
    subject: str = TRANSITION
    transitions: tuple[Transition, ...] = ()
    timestamp: str = field(default_factory=lambda: datetime.now().astimezone().isoformat())
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    resolved: bool = False
    pair: Optional[Pair] = None

    @property
    def key(self) -> str:
        """Identifies the instance or group across events (ordering and state)."""
        return f"{self.kind}:{self.name}"

    @property
    def is_test(self) -> bool:
        return self.subject == TEST

    @property
    def filter_key(self) -> str:
        """What a channel's ``states`` list is matched against: the kind of a pair alert,
        else the state."""
        return self.subject if self.subject in PAIR_KINDS else self.state

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        data = dict(data)
        node = data.pop("node")
        data["node"] = Node(
            hostname=node["hostname"],
            fqdn=node["fqdn"],
            addresses=tuple(node.get("addresses", ())),
            holds_vips=node.get("holds_vips"),
        )
        data["transitions"] = tuple(Transition(**t) for t in data.get("transitions", ()))
        for name in ("virtual_addresses", "haproxy"):
            data[name] = tuple(data.get(name, ()))
        pair = data.get("pair")
        if pair is not None:
            for name in ("other_macs", "ports", "frontends"):
                pair[name] = tuple(pair.get(name, ()))
            data["pair"] = Pair(**pair)
        return cls(**data)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class FifoLine:
    """One parsed line of keepalived's notify FIFO."""

    kind: str
    name: str
    state: str
    priority: Optional[int]


_FIFO = re.compile(r'^(INSTANCE|GROUP)\s+"?([^"\s]*)"?\s+(\w+)(?:\s+(\d+))?\s*$')
# FIFO states that are not a VRRP state change: priority changes and the like.
FIFO_INFO = ("MASTER_RX_LOWER_PRI", "MASTER_PRIORITY", "BACKUP_PRIORITY")
# keepalived's MASTER got an advert from a lower-priority MASTER: both nodes are MASTER.
RX_LOWER_PRI = "MASTER_RX_LOWER_PRI"


@dataclass(frozen=True)
class FifoSignal:
    """A FIFO line that is a signal rather than a state: ``MASTER_RX_LOWER_PRI`` (split brain)."""

    kind: str
    name: str
    signal: str
    priority: Optional[int]


def parse_fifo_signal(line: str) -> Optional[FifoSignal]:
    """``INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150`` as a signal; None for any other line."""
    match = _FIFO.match(line.strip())
    if match is None or match.group(3).upper() != RX_LOWER_PRI:
        return None
    kind, name, _, prio = match.groups()
    try:
        return FifoSignal(kind, parse_name(name), RX_LOWER_PRI, parse_priority(prio))
    except UsageError:
        return None


def parse_fifo_line(line: str) -> Optional[FifoLine]:
    """Parse ``INSTANCE "VI_1" MASTER 100``; None for well-formed lines that are not states.

    Raises UsageError for a malformed line (the reader logs it and goes on).
    """
    text = line.strip()
    if not text:
        return None
    match = _FIFO.match(text)
    if match is None:
        if text.split(maxsplit=1)[0] in ("VS", "RS"):  # LVS events: not ours
            return None
        raise UsageError(f"malformed notify FIFO line: {clean(text, 80)!r}")
    kind, name, state, prio = match.groups()
    if state.upper() in FIFO_INFO:
        return None
    return FifoLine(kind, parse_name(name), parse_state(state), parse_priority(prio))
