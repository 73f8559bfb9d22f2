"""Pair probes on a real link: two network namespaces joined by a veth pair."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ha_notify.watch import arp, serving
from ha_notify.watch.pair import Alert, PairProbe, Settings
from ha_notify.watch.vips import Vip
from tests.pair_net import VIP, Node, Pair

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]
GUARD = 60.0  # seconds a capture waits at most: a hang guard, not a limit
V = Vip(VIP, "eth0", "VI_1")


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


def rounds(node: Node, probe: PairProbe, times: list[float], held: bool) -> list[Alert]:
    """Run probe rounds inside ``node`` at the given (synthetic) times."""
    alerts: list[Alert] = []
    state = {"VI_1": "master" if held else "backup"}
    for now in times:
        alerts += node.call(probe.round, now, [V], {VIP} if held else set(), state)
    return alerts


def test_each_side_sees_the_other_holders_mac(pair: Pair) -> None:
    """The backup's probe gets the holder's MAC; the holder's own probe gets no answer."""
    pair.a.hold()
    assert pair.b.call(arp.probe, [(VIP, "eth0")]) == {VIP: {pair.a.mac}}
    assert pair.a.call(arp.probe, [(VIP, "eth0")]) == {VIP: set()}
    pair.b.hold()
    assert pair.a.call(arp.probe, [(VIP, "eth0")]) == {VIP: {pair.b.mac}}


def test_split_brain_one_alert_then_one_resolved_and_garps_on_the_wire(pair: Pair) -> None:
    """Both hold: one confirmed alert naming the other MAC and IP; b lets go: one resolved
    alert, and a's gratuitous ARPs for the VIP reach b."""
    pair.a.hold()
    pair.b.hold()
    pair.a.call(serving.accepts, pair.b.address, 9, 5.0)  # a learns b's MAC for its own IP
    probe = PairProbe(Settings(probe_interval=5, confirm_delay=1))
    alerts = rounds(pair.a, probe, [0, 1, 6, 11], held=True)
    assert [(a.kind, a.resolved) for a in alerts] == [("split_brain", False)]
    assert alerts[0].pair.other_macs == (pair.b.mac,)
    assert alerts[0].pair.other_ip == pair.b.address
    assert probe.metrics()["ha_notify_split_brain"] == {VIP: 1}

    capture = pair.b.call(open_capture)
    try:
        pair.b.release()
        ended = rounds(pair.a, probe, [16, 17], held=True)
        garps = pair.b.call(read_garps, capture, pair.a.mac, 3)
    finally:
        capture.close()
    assert [(a.kind, a.resolved) for a in ended] == [("split_brain", True)]
    assert ended[0].pair.other_macs == (pair.b.mac,)  # what the episode was about
    assert garps == 3
    assert probe.metrics()["ha_notify_split_brain"] == {VIP: 0}


def open_capture() -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(arp.ETH_P_ARP))
    sock.bind(("eth0", arp.ETH_P_ARP))
    sock.settimeout(GUARD)
    return sock


def read_garps(sock: socket.socket, mac: str, wanted: int) -> int:
    """Read ARP frames until ``wanted`` gratuitous ones for the VIP from ``mac`` arrived."""
    seen = 0
    while seen < wanted:
        parsed = arp.parse(sock.recv(2048))
        if parsed and parsed[1] == mac and parsed[2] == parsed[3] == VIP:
            seen += 1
    return seen


def test_nobody_holding_is_unserved_after_unserved_after(pair: Pair) -> None:
    """No answer for the VIP: unserved raised only once unserved_after has passed."""
    probe = PairProbe(Settings(unserved_after=3, confirm_delay=1))
    assert rounds(pair.b, probe, [0, 1, 2], held=False) == []
    (alert,) = rounds(pair.b, probe, [3, 4, 8], held=False)
    assert (alert.kind, alert.resolved, alert.pair.interface) == ("unserved", False, "eth0")
    pair.a.hold()
    ended = rounds(pair.b, probe, [13, 14], held=False)
    assert [(a.kind, a.resolved) for a in ended] == [("unserved", True)]


def test_held_vip_with_a_closed_port_is_not_serving(pair: Pair, tmp_path: Path) -> None:
    """A frontend bound to a wildcard port that refuses on the VIP raises not_serving, and
    its end when the port accepts again."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "global\n  stats socket /run/x.sock\nfrontend web\n  bind *:8080\n"
        "  default_backend app\nbackend app\n  server s1 127.0.0.1:1\n"
        "listen admin\n  bind 127.0.0.1:9000\n"
    )
    pair.a.hold()
    listener = pair.a.call(listen, VIP, 8080)
    probe = PairProbe(Settings(), binds=lambda: serving.binds_from_config(str(cfg)))
    assert rounds(pair.a, probe, [0, 5], held=True) == []
    listener.close()
    (alert,) = rounds(pair.a, probe, [10, 11], held=True)
    assert (alert.kind, alert.pair.ports, alert.pair.frontends) == (
        "not_serving",
        (8080,),
        ("web",),
    )
    listener = pair.a.call(listen, VIP, 8080)
    try:
        (end,) = rounds(pair.a, probe, [16, 17], held=True)
    finally:
        listener.close()
    assert (end.kind, end.resolved, end.pair.ports) == ("not_serving", True, (8080,))


def listen(address: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(8)
    return sock


@pytest.mark.skipif(shutil.which("arping") is None, reason="needs iputils-arping")
def test_without_raw_sockets_the_probe_falls_back_to_arping(pair: Pair) -> None:
    """As an unprivileged user (no CAP_NET_RAW) the probe still finds the holder via arping."""
    pair.a.hold()
    repo = Path(__file__).resolve().parent.parent
    code = (
        f"import sys; sys.path.insert(0, {str(repo)!r}); from ha_notify.watch import arp; "
        f"print(sorted(arp.probe([({VIP!r}, 'eth0')])[{VIP!r}]))"
    )
    out = pair.b.exec("runuser", "-u", "nobody", "--", "python3", "-c", code)
    assert out.strip() == repr([pair.a.mac])


def test_probe_on_a_missing_interface_says_which() -> None:
    """An interface that does not exist is a ProbeError naming it, not a silent empty answer."""
    from ha_notify.errors import ProbeError

    with pytest.raises(ProbeError, match="nosuch0"):
        arp.probe([("192.0.2.1", "nosuch0")])
