"""The Prometheus textfile: what the watcher knows, for node_exporter's textfile collector.

Sources are read through one small function each (:func:`vrrp_states`, :func:`spool_depth`),
and only when their files changed (a ``stat`` per round, no JSON parsing of an idle spool).
A transition time that is not a finite number (JSON lets ``NaN`` and ``Infinity`` through) is
left out, never published. Every series carries ``cluster`` and ``node``; none is called
``instance`` (Prometheus owns that label). The file is replaced atomically every round
(:class:`~ha_notify.watch.trackfile.
AtomicFile`), mode 0644 so the ``prometheus`` user can read it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ha_notify.constants import SCRIPT_STATES
from ha_notify.watch.probe import RoundContext, Sample, VrrpState
from ha_notify.watch.trackfile import AtomicFile

if TYPE_CHECKING:
    from ha_notify.notify.inbox import Filter

VRRP_STATES = SCRIPT_STATES
# Series that change every round by design: alone, they do not make the file worth rewriting.
STAMP, ROUNDS = "ha_notify_watch_last_round_timestamp_seconds", "ha_notify_watch_rounds_total"
ROUND_SERIES = frozenset({STAMP, ROUNDS})
INF, NAN = math.inf, math.nan
# name: (type, help). The order is the order in the file.
FAMILIES: dict[str, tuple[str, str]] = {
    "ha_notify_vrrp_state": ("gauge", "1 for the VRRP instance's current state, 0 for the others."),
    "ha_notify_vrrp_transitions_total": ("counter", "State changes recorded for the instance."),
    "ha_notify_vrrp_last_transition_timestamp_seconds": (
        "gauge",
        "Unix time of the VRRP instance's last state change.",
    ),
    "ha_notify_vip_held": ("gauge", "1 when this node holds the virtual address."),
    "ha_notify_split_brain": ("gauge", "1 during a split_brain episode for the virtual address."),
    "ha_notify_vip_unserved": ("gauge", "1 during an unserved episode for the virtual address."),
    "ha_notify_check_healthy": ("gauge", "1 when the check is healthy, 0 when not."),
    "ha_notify_spool_pending": ("gauge", "Notifications waiting in the spool, per channel."),
    "ha_notify_spool_dead": ("gauge", "Notifications given up on (dead letters), per channel."),
    "ha_notify_watch_last_round_timestamp_seconds": (
        "gauge",
        "Unix time of the watcher's last completed round.",
    ),
    "ha_notify_watch_rounds_total": ("counter", "Rounds the watcher has run since it started."),
}


def vrrp_states(state_dir: Path) -> dict[str, VrrpState]:
    """Last state per VRRP instance from the state store (groups are left out)."""
    from ha_notify.notify.store import StateStore

    found = {}
    for key, entry in StateStore(state_dir).snapshot().items():
        kind, _, name = str(key).partition(":")
        if kind != "INSTANCE" or not isinstance(entry, dict) or "state" not in entry:
            continue
        try:
            seq, since = int(entry.get("seq", 0)), float(entry.get("since", 0.0))
        except (TypeError, ValueError, OverflowError):  # a damaged entry: skip it, keep the rest
            continue
        # JSON lets NaN and Infinity through: an unknown time, never a sample.
        found[name] = VrrpState(str(entry["state"]), seq, since if math.isfinite(since) else NAN)
    return found


def spool_depth(state_dir: Path, filters: Iterable[Filter] = ()) -> dict[str, tuple[int, int]]:
    """(pending, dead) deliveries per channel in the spool; an event queued in the inbox
    (not numbered yet) is pending for every channel of ``filters`` that wants it."""
    from ha_notify.notify.inbox import Inbox, waiting
    from ha_notify.notify.spool import Spool

    spool = Spool(state_dir)
    depth: dict[str, list[int]] = {}
    for column, deliveries in enumerate((spool.list_pending(), spool.list_dead())):
        for delivery in deliveries:
            depth.setdefault(delivery.channel, [0, 0])[column] += 1
    for _, names in waiting(Inbox(state_dir, spool.quarantine), spool, filters):
        for name in names:
            depth.setdefault(name, [0, 0])[0] += 1
    return {channel: (pair[0], pair[1]) for channel, pair in depth.items()}


def _stamp(*paths: str) -> tuple[object, ...]:
    """What changes when a file or a folder's list of files changes."""
    stamps: list[object] = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError as exc:
            stamps.append(exc.errno)
    return tuple(stamps)


class NodeMetrics:
    """The probe behind the node's own series: VRRP states, VIPs held, spool depth."""

    def __init__(
        self, state_dir: Path, channels: Iterable[str], filters: Iterable[Filter] = ()
    ) -> None:
        """``filters``: the channels' configs, to count inbox events as pending."""
        self.state_dir = state_dir
        self.channels = tuple(channels)
        self.filters = tuple(filters)
        # What is stat'ed each round, as ready strings (no path joins per round).
        self._store = str(state_dir / "state.json")
        self._queues = (
            str(state_dir / "spool" / "pending"),
            str(state_dir / "spool" / "dead"),
            str(state_dir / "inbox"),
        )
        self._vrrp_stamp: Optional[tuple[object, ...]] = None
        self._spool_stamp: Optional[tuple[object, ...]] = None
        self.vrrp: dict[str, VrrpState] = {}
        self.spool: dict[str, tuple[int, int]] = {}
        self.ctx: Optional[RoundContext] = None
        self.rounds = 0

    def refresh(self) -> dict[str, VrrpState]:
        """Re-read what changed since the last round; the VRRP states for the round context."""
        stamp = _stamp(self._store)
        if stamp != self._vrrp_stamp:
            try:
                self.vrrp = vrrp_states(self.state_dir)
                self._vrrp_stamp = stamp
            except Exception:  # a damaged store is logged by it; try again next round
                self._vrrp_stamp = None
        stamp = _stamp(*self._queues)
        if stamp != self._spool_stamp:
            try:
                self.spool = spool_depth(self.state_dir, self.filters)
                self._spool_stamp = stamp
            except Exception:  # unreadable (permissions): keep the last figures, retry
                self._spool_stamp = None
        return self.vrrp

    def round(self, ctx: RoundContext) -> None:
        self.ctx = ctx
        self.rounds += 1

    def metrics(self) -> Iterable[Sample]:
        ctx = self.ctx
        if ctx is None:
            return
        for name, vrrp in sorted(ctx.vrrp.items()):
            for state in VRRP_STATES:
                labels = (("vrrp_instance", name), ("state", state))
                yield Sample("ha_notify_vrrp_state", labels, float(vrrp.state == state))
            mine = (("vrrp_instance", name),)
            yield Sample("ha_notify_vrrp_transitions_total", mine, float(vrrp.transitions))
            if math.isfinite(vrrp.since):
                yield Sample("ha_notify_vrrp_last_transition_timestamp_seconds", mine, vrrp.since)
        for vip in dict.fromkeys(v.address for v in ctx.vips):
            yield Sample("ha_notify_vip_held", (("vip", vip),), float(vip in ctx.held))
        for channel in sorted(set(self.channels) | set(self.spool)):
            pending, dead = self.spool.get(channel, (0, 0))
            yield Sample("ha_notify_spool_pending", (("channel", channel),), float(pending))
            yield Sample("ha_notify_spool_dead", (("channel", channel),), float(dead))
        yield Sample("ha_notify_watch_last_round_timestamp_seconds", (), round(ctx.wall, 3))
        yield Sample("ha_notify_watch_rounds_total", (), float(self.rounds))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    """A sample value in the text format: NaN and +Inf/-Inf spelled as Prometheus reads them."""
    if value != value:
        return "NaN"
    if value in (INF, -INF):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _family(name: str, rows: list[str]) -> list[str]:
    kind, text = FAMILIES.get(name, ("untyped", "Published by a watcher probe."))
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *rows]


def _base(cluster: str, node: str) -> str:
    return f'cluster="{_escape(cluster)}",node="{_escape(node)}"'


def _body(samples: Iterable[Sample], base: str) -> str:
    """Every family but the round's own two, one family at a time, HELP and TYPE first."""
    families: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for sample in samples:
        labels = base + "".join(f',{key}="{_escape(value)}"' for key, value in sample.labels)
        row = f"{sample.name}{{{labels}}} {_number(sample.value)}"
        families.setdefault(sample.name, []).append(row)
    lines = [line for name, rows in families.items() if rows for line in _family(name, rows)]
    return "".join(line + "\n" for line in lines)


class _Tail:
    """The round's own series (last round's time, rounds so far): constant text but two numbers.

    The time has a fixed three decimals, so the file keeps its length from one round to the
    next while nothing else changes (what the in-place fallback on a full disk needs).
    """

    def __init__(self, base: str) -> None:
        self.stamp = "\n".join(_family(STAMP, [f"{STAMP}{{{base}}} "]))
        self.count = "\n".join(_family(ROUNDS, [f"{ROUNDS}{{{base}}} "]))

    def render(self, wall: Optional[float], rounds: Optional[float]) -> str:
        text = ""
        if wall is not None:
            text += self.stamp + (f"{wall:.3f}" if math.isfinite(wall) else _number(wall)) + "\n"
        if rounds is not None:
            text += f"{self.count}{_number(rounds)}\n"
        return text


def _split(
    samples: Iterable[Sample],
) -> tuple[tuple[Sample, ...], Optional[float], Optional[float]]:
    """(the samples that change only with events, last round's time, rounds so far)."""
    body: list[Sample] = []
    wall: Optional[float] = None
    rounds: Optional[float] = None
    for sample in samples:
        if sample.name == STAMP and not sample.labels:
            wall = sample.value
        elif sample.name == ROUNDS and not sample.labels:
            rounds = sample.value
        else:
            body.append(sample)
    return tuple(body), wall, rounds


def render(samples: Iterable[Sample], cluster: str, node: str) -> str:
    """The text exposition format: each family's HELP and TYPE, then its rows."""
    base = _base(cluster, node)
    body, wall, rounds = _split(samples)
    return _body(body, base) + _Tail(base).render(wall, rounds)


class MetricsFile(AtomicFile):
    """``[watch] metrics_file`` (node_exporter reads ``*.prom`` in its textfile folder).

    Replaced whole every round, so ``ha_notify_watch_last_round_timestamp_seconds`` is at most
    one interval old when node_exporter reads it. A round costs little: the text of every
    series but the round's two is kept as bytes and made again only when a sample changed;
    the round's two lines are patched into a fixed template. No fsync: the file is made again
    every round, so a power cut can at worst leave an old or empty file until the watcher's
    first round after boot, which replaces it; syncing every second would cost a disk flush
    per round for nothing. A sample whose value is NaN never equals itself, so its round
    renders the text again (correct, only slower).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "metrics_file")
        self._key: Optional[tuple[object, ...]] = None
        self._body = b""
        self._tail: Optional[_Tail] = None

    def publish(self, samples: Iterable[Sample], cluster: str, node: str) -> bool:
        """Write this round's file; False (logged once per episode) when it could not be."""
        body, wall, rounds = _split(samples)
        key = (cluster, node, body)
        if key != self._key or self._tail is None:
            base = _base(cluster, node)
            self._body, self._tail = _body(body, base).encode("utf-8"), _Tail(base)
            self._key = key
        return self.write(self._body + self._tail.render(wall, rounds).encode("utf-8"))
