"""Pair awareness for the watcher: split brain, a VIP nobody serves, a MASTER that does not
serve, probed every ``probe_interval`` and turned into one alert per episode start and end.

``PairProbe.round`` is called once per watcher round with what the watcher knows (the VIPs,
the addresses this node holds, the VRRP state per instance); it probes when due, feeds the
episode machines, sends gratuitous ARPs after a split brain ends on the node that keeps the
VIP, and returns the alerts; ``deliver`` hands them to the notify engine (spool, retry, every
channel). A suspected change is re-probed after ``confirm_delay`` instead of a whole
``probe_interval``, so a split brain is reported within about ``probe_interval`` + 2 s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Optional

from ha_notify.errors import ProbeError
from ha_notify.event import NOT_SERVING, SPLIT_BRAIN, UNSERVED, VIP_KIND, Event, Node, Pair
from ha_notify.watch import arp, serving
from ha_notify.watch.episodes import Change, Episode, Rule
from ha_notify.watch.vips import Vip

if TYPE_CHECKING:
    from ha_notify.notify.delivery import Delivery
    from ha_notify.notify.engine import Notifier

log = logging.getLogger(__name__)
METRICS = {SPLIT_BRAIN: "ha_notify_split_brain", UNSERVED: "ha_notify_vip_unserved"}
Probe = Callable[[list[arp.Target], float], "dict[str, set[str]]"]
Garp = Callable[[str, str], None]


@dataclass(frozen=True)
class Settings:
    """The ``[watch]`` keys the pair probe uses, and its own bounded waits."""

    probe_interval: float = 5.0
    unserved_after: float = 10.0
    garp_after_split_brain: bool = True
    confirm_delay: float = 1.0  # re-probe this soon when a change is suspected
    arp_wait: float = 1.0  # how long one ARP probe listens for answers
    connect_timeout: float = 1.0  # per VIP:port TCP connect


@dataclass(frozen=True)
class Alert:
    """One episode start or end, ready to become an Event."""

    kind: str
    resolved: bool
    vip: Vip
    holds: bool
    pair: Pair


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


class PairProbe:
    """Episode machines per (kind, VIP), probed at ``probe_interval``."""

    def __init__(
        self,
        settings: Settings = Settings(),
        *,
        binds: Callable[[], Iterable[serving.Bind]] = lambda: (),
        probe: Optional[Probe] = None,
        garp: Optional[Garp] = None,
    ) -> None:
        self.settings = settings
        self.binds = binds
        self.probe = probe or (lambda targets, wait: arp.probe(targets, wait))
        self.garp = garp or (lambda address, interface: arp.garp(address, interface))
        self.next_probe = 0.0
        self.episodes: dict[tuple[str, str], Episode] = {}
        self.signals: dict[str, float] = {}  # VRRP instance -> last MASTER_RX_LOWER_PRI
        self.garps_sent: list[str] = []  # VIPs announced (for the watcher's log and tests)

    def signal(self, instance: str, now: float) -> None:
        """keepalived said ``MASTER_RX_LOWER_PRI`` for ``instance``: probe at the next round."""
        self.signals[instance] = now
        self.next_probe = min(self.next_probe, now)

    def _episode(self, kind: str, vip: str) -> Episode:
        key = (kind, vip)
        if key not in self.episodes:
            hold = self.settings.unserved_after if kind == UNSERVED else 0.0
            self.episodes[key] = Episode(kind, vip, Rule(confirm=2, hold=hold))
        return self.episodes[key]

    def _signalled(self, vip: Vip, vips: list[Vip], now: float) -> bool:
        recent = now - self.settings.probe_interval - self.settings.confirm_delay
        if vip.instance is not None:
            return self.signals.get(vip.instance, float("-inf")) >= recent
        if any(v.instance for v in vips):
            return False
        return any(t >= recent for t in self.signals.values())  # one unnamed instance

    def round(
        self, now: float, vips: Iterable[Vip], held: Iterable[str], states: dict[str, str]
    ) -> list[Alert]:
        """Probe if due; the alerts of every episode that started or ended (wall clock)."""
        if now < self.next_probe and self.next_probe - now <= self.settings.probe_interval:
            return []  # not due (a wall clock stepped back never stops the probes)
        vips, held_set = list(vips), set(held)
        targets = [(v.address, v.interface) for v in vips if v.interface]
        try:
            answers = self.probe(targets, self.settings.arp_wait) if targets else {}
        except ProbeError as exc:
            log.error("pair probe: %s", exc)
            answers = {}
        binds = list(self.binds())
        alerts: list[Alert] = []
        for vip in vips:
            alerts += self._observe(now, vip, vips, vip.address in held_set, answers, binds, states)
        known = {v.address for v in vips}
        self.episodes = {k: e for k, e in self.episodes.items() if k[1] in known}
        pending = any(e.pending for e in self.episodes.values())
        delay = self.settings.confirm_delay if pending else self.settings.probe_interval
        self.next_probe = now + delay
        return alerts

    def _observe(
        self,
        now: float,
        vip: Vip,
        vips: list[Vip],
        holds: bool,
        answers: dict[str, set[str]],
        binds: list[serving.Bind],
        states: dict[str, str],
    ) -> list[Alert]:
        macs = answers.get(vip.address)
        signalled = self._signalled(vip, vips, now)
        local = states.get(vip.instance) if vip.instance else None
        if local is None:
            local = "master" if holds else None
        split = signalled or bool(macs) if holds else False
        if holds and macs is None and not signalled:
            split_verdict: Optional[bool] = None  # not probed: learn nothing
        else:
            split_verdict = split
        others = tuple(sorted(macs or ()))
        base = Pair(
            vip=vip.address,
            interface=vip.interface,
            instance=vip.instance,
            other_macs=others,
            other_ip=arp.neighbour_ip(others[0], vip.interface, (vip.address,)) if others else None,
            local_state=local,
            peer_state="master" if split else None,
            fifo_signal=signalled,
        )
        found: list[tuple[Change, Pair]] = []
        change = self._episode(SPLIT_BRAIN, vip.address).observe(now, split_verdict, {"p": base})
        if change:
            found.append((change, base))
        unserved: Optional[bool] = False if holds else (None if macs is None else not macs)
        change = self._episode(UNSERVED, vip.address).observe(now, unserved, {"p": base})
        if change:
            found.append((change, base))
        ports = serving.ports_for(vip.address, binds) if holds else {}
        refused = serving.refused(vip.address, ports, self.settings.connect_timeout)
        names = tuple(sorted({n for p in refused for n in ports[p]}))
        detail = replace(base, ports=tuple(refused), frontends=names)
        verdict: Optional[bool] = bool(refused) if ports else (None if holds else False)
        change = self._episode(NOT_SERVING, vip.address).observe(now, verdict, {"p": detail})
        if change:
            found.append((change, detail))
        alerts = []
        for change, now_pair in found:
            pair = now_pair
            if change.resolved:  # say what the episode was about, not the healthy probe
                started = change.detail.get("p")
                pair = replace(started, local_state=local) if isinstance(started, Pair) else pair
            pair = replace(pair, since=_iso(change.since))
            alerts.append(Alert(change.kind, change.resolved, vip, holds, pair))
            self._log(change, vip)
            if change.kind == SPLIT_BRAIN and change.resolved and holds:
                self._announce(vip)
        return alerts

    def _log(self, change: Change, vip: Vip) -> None:
        what = "ended" if change.resolved else "started"
        level = logging.INFO if change.resolved else logging.WARNING
        log.log(level, "%s on VIP %s (%s) %s", change.kind, vip.address, vip.interface, what)

    def _announce(self, vip: Vip) -> None:
        if not self.settings.garp_after_split_brain or not vip.interface:
            return
        try:
            self.garp(vip.address, vip.interface)
            self.garps_sent.append(vip.address)
        except ProbeError as exc:
            log.error("gratuitous ARP after the split brain on %s: %s", vip.address, exc)

    def metrics(self) -> dict[str, dict[str, int]]:
        """``{metric name: {vip: 0 or 1}}`` for ha_notify_split_brain and _vip_unserved."""
        out: dict[str, dict[str, int]] = {name: {} for name in METRICS.values()}
        for (kind, vip), episode in sorted(self.episodes.items()):
            if kind in METRICS:
                out[METRICS[kind]][vip] = int(episode.active)
        return out


def to_event(alert: Alert, cluster: str, node: Node) -> Event:
    """The Event of one pair alert; its order group is the VIP (kind ``VIP``)."""
    state = alert.pair.local_state or ("master" if alert.holds else "backup")
    return Event(
        state=state,
        name=alert.vip.address,
        cluster=cluster,
        node=replace(node, holds_vips=alert.holds),
        kind=VIP_KIND,
        virtual_addresses=(alert.vip.address,),
        subject=alert.kind,
        resolved=alert.resolved,
        pair=alert.pair,
    )


def deliver(notifier: Notifier, alerts: Iterable[Alert], deadline: float) -> list[Delivery]:
    """Spool each alert for every channel that wants its kind, in order, then deliver by
    ``deadline`` (a ``time.monotonic()`` instant); what is not sent stays spooled."""
    facts = notifier.node()
    mine: list[Delivery] = []
    for alert in alerts:
        event = to_event(alert, notifier.config.general.cluster, facts)
        mine += notifier.spool_alert(event, deadline)
    if mine:
        notifier.deliver({d.group for d in mine}, deadline)
    return mine
