"""Episode machines and the pair probe's decisions, one table row per story."""

from __future__ import annotations

from typing import Optional

import pytest

from ha_notify.errors import ProbeError
from ha_notify.watch.episodes import Episode, Rule
from ha_notify.watch.pair import PairProbe, Settings
from ha_notify.watch.serving import Bind
from ha_notify.watch.vips import Vip

# Observations: B bad, G good, - no verdict. Expected: S start, E end, . nothing.
EPISODES = [
    ("one bad probe (a failback's two holders) raises nothing", "BG", 0, "..", 0),
    ("two bad probes raise once", "BB", 0, ".S", 0),
    ("a long episode raises once, ends once", "BBBBBGG", 0, ".S....E", 0),
    ("one good probe inside an episode ends nothing", "BBGBB", 0, ".S...", 0),
    ("no verdict neither confirms nor breaks a streak", "B-B", 0, "..S", 0),
    ("hold: bad for less than hold raises nothing", "BBB", 10, "...", 1),
    ("hold: bad for hold seconds raises", "BBBBB", 3, "...S.", 1),
    ("hold restarts after a good probe", "BBGBBBB", 3, "......S", 1),
    ("two episodes, two starts, two ends", "BBGGBBGG", 0, ".S.E.S.E", 0),
]


@pytest.mark.parametrize(("story", "seen", "hold", "expected", "step"), EPISODES)
def test_episode_table(story: str, seen: str, hold: float, expected: str, step: int) -> None:
    """Each observation sequence yields exactly the starts and ends in the table."""
    ep = Episode("split_brain", "192.0.2.100", Rule(confirm=2, hold=hold))
    out = ""
    for i, c in enumerate(seen):
        bad: Optional[bool] = None if c == "-" else c == "B"
        change = ep.observe(float(i * (step or 1)), bad)
        out += "." if change is None else ("E" if change.resolved else "S")
    assert out == expected, story


def test_episode_end_carries_the_start_time() -> None:
    """The resolved change says since when the episode lasted (its first bad probe)."""
    ep = Episode("unserved", "v", Rule())
    ep.observe(10.0, True)
    start = ep.observe(11.0, True)
    ep.observe(20.0, False)
    end = ep.observe(21.0, False)
    assert start is not None and end is not None
    assert (start.since, end.since, end.at, end.resolved) == (10.0, 10.0, 21.0, True)


VIP = Vip("192.0.2.100", "eth0", "VI_1")
OTHER = "7a:51:95:c6:d6:97"


class Wire:
    """A scripted ARP answer per probe, and the GARPs the probe sent."""

    def __init__(self, *answers: set[str]) -> None:
        self.answers = list(answers)
        self.probes = 0
        self.garps: list[tuple[str, str]] = []

    def probe(self, targets: list[tuple[str, str]], wait: float) -> dict[str, set[str]]:
        assert targets == [(VIP.address, "eth0")]
        self.probes += 1
        return {VIP.address: self.answers.pop(0) if self.answers else set()}

    def garp(self, address: str, interface: str) -> None:
        self.garps.append((address, interface))


def run(probe: PairProbe, rounds: list[tuple[float, bool]]) -> list[str]:
    """Rounds of (now, this node holds the VIP); alerts as "kind" or "kind/end"."""
    out = []
    for now, holds in rounds:
        held = {VIP.address} if holds else set()
        states = {"VI_1": "master" if holds else "backup"}
        for a in probe.round(now, [VIP], held, states):
            out.append(a.kind + ("/end" if a.resolved else ""))
    return out


def test_split_brain_confirmed_quickly_and_reported_once() -> None:
    """A second answering MAC is re-probed after confirm_delay and raised once, not per probe."""
    wire = Wire({OTHER}, {OTHER}, {OTHER}, {OTHER})
    probe = PairProbe(Settings(probe_interval=5, confirm_delay=1), probe=wire.probe)
    alerts = run(probe, [(0, True), (0.5, True), (1, True), (6, True), (11, True)])
    assert alerts == ["split_brain"]
    assert wire.probes == 4  # 0.5 was not due; 1 was the quick confirmation
    assert probe.metrics()["ha_notify_split_brain"] == {VIP.address: 1}


def test_failback_with_two_holders_for_one_probe_raises_nothing() -> None:
    """A preempting failback answers once from both nodes: no alert, no GARP."""
    wire = Wire({OTHER}, set(), set())
    probe = PairProbe(Settings(), probe=wire.probe, garp=wire.garp)
    assert run(probe, [(0, True), (1, True), (6, True)]) == []
    assert wire.garps == []


def test_split_brain_end_sends_garps_from_the_node_that_keeps_the_vip() -> None:
    """The episode ends with one resolved alert and gratuitous ARPs on the VIP's interface."""
    wire = Wire({OTHER}, {OTHER}, set(), set())
    probe = PairProbe(Settings(), probe=wire.probe, garp=wire.garp)
    alerts = run(probe, [(0, True), (1, True), (6, True), (7, True)])
    assert alerts == ["split_brain", "split_brain/end"]
    assert wire.garps == [(VIP.address, "eth0")]
    assert probe.metrics()["ha_notify_split_brain"] == {VIP.address: 0}


def test_no_garp_when_disabled_or_when_this_node_lost_the_vip() -> None:
    """garp_after_split_brain = false sends none; the node that gave the VIP up sends none."""
    for settings, keeps in ((Settings(garp_after_split_brain=False), True), (Settings(), False)):
        wire = Wire({OTHER}, {OTHER}, set(), set())
        probe = PairProbe(settings, probe=wire.probe, garp=wire.garp)
        alerts = run(probe, [(0, True), (1, True), (6, keeps), (7, keeps)])
        assert alerts == ["split_brain", "split_brain/end"]
        assert wire.garps == []


def test_unserved_waits_unserved_after_and_only_off_the_holder() -> None:
    """No answer from a non-holder raises after unserved_after; the holder never raises it."""
    wire = Wire()
    probe = PairProbe(Settings(unserved_after=10), probe=wire.probe)
    rounds = [(float(t), False) for t in range(0, 12)]
    assert run(probe, rounds) == ["unserved"]
    assert probe.metrics()["ha_notify_vip_unserved"] == {VIP.address: 1}
    holder = PairProbe(Settings(unserved_after=10), probe=Wire().probe)
    assert run(holder, [(float(t * 5), True) for t in range(6)]) == []


def test_unserved_ends_when_a_node_answers_again() -> None:
    """Answers return: one resolved alert, whose since is the first silent probe."""
    wire = Wire(set(), set(), set(), {OTHER}, {OTHER})
    probe = PairProbe(Settings(unserved_after=2, confirm_delay=1), probe=wire.probe)
    alerts = []
    for now in (0, 1, 2, 7, 8):  # 2: raised; 7: the next regular probe; 8: confirmed
        alerts += probe.round(float(now), [VIP], set(), {"VI_1": "backup"})
    assert [(a.kind, a.resolved) for a in alerts] == [("unserved", False), ("unserved", True)]
    assert alerts[0].pair.since == alerts[1].pair.since


def test_fifo_signal_alone_confirms_a_split_brain() -> None:
    """MASTER_RX_LOWER_PRI twice (no ARP answer: VRRP dropped one way) is a split brain."""
    probe = PairProbe(Settings(), probe=Wire().probe)
    probe.next_probe = 100.0
    probe.signal("VI_1", 3.0)
    assert probe.next_probe == 3.0  # the next round probes at once
    first = probe.round(3.0, [VIP], {VIP.address}, {"VI_1": "master"})
    probe.signal("VI_1", 4.0)
    (alert,) = first + probe.round(4.0, [VIP], {VIP.address}, {"VI_1": "master"})
    assert (alert.kind, alert.pair.fifo_signal, alert.pair.peer_state) == (
        "split_brain",
        True,
        "master",
    )


def test_signal_for_another_instance_is_not_this_vip() -> None:
    """A signal names a VRRP instance; VIPs of other instances are not in split brain."""
    probe = PairProbe(Settings(), probe=Wire().probe)
    for now in (0.0, 1.0):
        probe.signal("VI_2", now)
        assert probe.round(now, [VIP], {VIP.address}, {}) == []


def test_probe_error_learns_nothing() -> None:
    """An ARP probe that cannot run neither raises nor ends an episode."""

    def broken(targets: list[tuple[str, str]], wait: float) -> dict[str, set[str]]:
        raise ProbeError("ARP probe on eth0: No such device")

    probe = PairProbe(Settings(), probe=broken)
    assert run(probe, [(float(t * 5), False) for t in range(5)]) == []


def test_not_serving_when_a_bound_port_refuses() -> None:
    """A held VIP whose frontend port refuses TCP raises not_serving with port and frontend."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    vip = Vip("127.0.0.1", None, None)  # nothing listens on ``port`` any more
    probe = PairProbe(Settings(), binds=lambda: [Bind("web", "", port)])
    alerts = []
    for now in (0.0, 1.0):
        alerts += probe.round(now, [vip], {"127.0.0.1"}, {})
    (alert,) = alerts
    assert (alert.kind, alert.pair.ports, alert.pair.frontends) == (
        "not_serving",
        (port,),
        ("web",),
    )


def test_forgotten_vip_leaves_the_metrics() -> None:
    """A VIP no longer configured is no longer reported."""
    probe = PairProbe(Settings(), probe=Wire().probe)
    probe.round(0.0, [VIP], set(), {})
    assert probe.metrics()["ha_notify_vip_unserved"] == {VIP.address: 0}
    probe.round(10.0, [], set(), {})
    assert probe.metrics() == {"ha_notify_split_brain": {}, "ha_notify_vip_unserved": {}}
