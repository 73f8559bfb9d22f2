"""The Prometheus textfile: what the watcher knows, for node_exporter's textfile collector.

Sources are read through one small function each (:func:`vrrp_states`, :func:`spool_depth`),
and only when their files changed (a ``stat`` per round, no JSON parsing of an idle spool).
Every series carries ``cluster`` and ``node``; none is called ``instance`` (Prometheus owns
that label). The file is replaced atomically each round (:class:`~ha_notify.watch.trackfile.
AtomicFile`), mode 0644 so the ``prometheus`` user can read it.
"""

from __future__ import annotations

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
ROUND_SERIES = frozenset(
    {"ha_notify_watch_last_round_timestamp_seconds", "ha_notify_watch_rounds_total"}
)
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
            found[name] = VrrpState(str(entry["state"]), seq, since)
        except (TypeError, ValueError):
            continue
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


def _stamp(*paths: Path) -> tuple[object, ...]:
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
        self._vrrp_stamp: Optional[tuple[object, ...]] = None
        self._spool_stamp: Optional[tuple[object, ...]] = None
        self.vrrp: dict[str, VrrpState] = {}
        self.spool: dict[str, tuple[int, int]] = {}
        self.ctx: Optional[RoundContext] = None
        self.rounds = 0

    def refresh(self) -> dict[str, VrrpState]:
        """Re-read what changed since the last round; the VRRP states for the round context."""
        stamp = _stamp(self.state_dir / "state.json")
        if stamp != self._vrrp_stamp:
            try:
                self.vrrp = vrrp_states(self.state_dir)
                self._vrrp_stamp = stamp
            except Exception:  # a damaged store is logged by it; try again next round
                self._vrrp_stamp = None
        spool = self.state_dir / "spool"
        stamp = _stamp(spool / "pending", spool / "dead", self.state_dir / "inbox")
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
    if value != value:
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(samples: Iterable[Sample], cluster: str, node: str) -> str:
    """The text exposition format, one family at a time, HELP and TYPE first."""
    base = f'cluster="{_escape(cluster)}",node="{_escape(node)}"'
    families: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for sample in samples:
        labels = base + "".join(f',{key}="{_escape(value)}"' for key, value in sample.labels)
        row = f"{sample.name}{{{labels}}} {_number(sample.value)}"
        families.setdefault(sample.name, []).append(row)
    lines = []
    for name, rows in families.items():
        if not rows:
            continue
        kind, text = FAMILIES.get(name, ("untyped", "Published by a watcher probe."))
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *rows]
    return "\n".join(lines) + "\n"


class MetricsFile(AtomicFile):
    """``[watch] metrics_file`` (node_exporter reads ``*.prom`` in its textfile folder).

    Rewritten in the round where anything but the round's own timestamp and counter changed,
    and otherwise every ``HEARTBEAT`` seconds: replacing a file on a disk file system every
    second cost a third of the watcher's CPU, and node_exporter is scraped every 15 s or more.
    """

    HEARTBEAT = 5.0

    def __init__(self, path: Path) -> None:
        super().__init__(path, "metrics_file")
        self._last: Optional[tuple[Sample, ...]] = None
        self._written = float("-inf")

    def publish(self, samples: Iterable[Sample], cluster: str, node: str, now: float) -> bool:
        """Write the file if it changed or the heartbeat is due; ``now`` is monotonic."""
        taken = tuple(samples)
        same = tuple(s for s in taken if s.name not in ROUND_SERIES)
        if same == self._last and now - self._written < self.HEARTBEAT and not self.trouble:
            return True
        if not self.write(render(taken, cluster, node).encode("utf-8")):
            return False
        self._last, self._written = same, now
        return True
