"""ARP on a VIP's interface: who answers for it, and gratuitous ARPs after a split brain.

The probe is a duplicate-address-detection request (sender IP 0.0.0.0, like ``arping -D``)
sent from an in-process raw socket; every MAC that answers for the VIP is collected until a
bounded wait ends. The kernel of a node that holds the VIP does not answer its own probe, so
on the holder the answer set is empty unless another host claims the VIP too. Without
CAP_NET_RAW the probe falls back to iputils ``arping``. ARP is IPv4 only: IPv6 VIPs are not
probed.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterable
from typing import Optional

from ha_notify.errors import ProbeError

log = logging.getLogger(__name__)
ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ZERO_IP = b"\x00" * 4
REQUEST, REPLY = 1, 2
PACKET_OUTGOING = 4
_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")  # Ethernet header + ARP for IPv4 over Ethernet
_ARPING_REPLY = re.compile(r"reply from (\S+) \[([0-9A-Fa-f:]{17})\]")
Target = tuple[str, str]  # (VIP address, interface)


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def frame(src: bytes, dst: bytes, op: int, spa: bytes, tpa: bytes, tha: bytes = ZERO_MAC) -> bytes:
    """An Ethernet frame carrying one ARP packet (IPv4 over Ethernet)."""
    return _ARP.pack(dst, src, ETH_P_ARP, 1, 0x0800, 6, 4, op, src, spa, tha, tpa)


def parse(data: bytes) -> Optional[tuple[int, str, str, str]]:
    """(op, sender MAC, sender IP, target IP) of an ARP frame; None for anything else."""
    if len(data) < _ARP.size:
        return None
    _, _, etype, htype, ptype, hlen, plen, op, sha, spa, _, tpa = _ARP.unpack_from(data)
    if (etype, htype, ptype, hlen, plen) != (ETH_P_ARP, 1, 0x0800, 6, 4):
        return None
    return op, mac_text(sha), socket.inet_ntoa(spa), socket.inet_ntoa(tpa)


def is_ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def _open(interface: str) -> tuple[socket.socket, bytes]:
    """A raw ARP socket bound to ``interface``, and the interface's own MAC."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind((interface, ETH_P_ARP))
        mac: bytes = sock.getsockname()[4]
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock, mac


def probe(targets: Iterable[Target], wait: float = 1.0, count: int = 2) -> dict[str, set[str]]:
    """The MACs (``aa:bb:..``) other than ours that answer ARP for each VIP within ``wait`` s.

    ``count`` requests per VIP are spread over the wait. Falls back to ``arping`` when raw
    sockets are not allowed; raises ProbeError when neither can run (no such interface).
    """
    wanted = [(vip, iface) for vip, iface in targets if is_ipv4(vip)]
    if not wanted:
        return {}
    try:
        return _probe_raw(wanted, wait, count)
    except PermissionError:
        log.debug("no raw sockets here (CAP_NET_RAW); probing with arping")
        return _probe_arping(wanted, wait, count)


def _probe_raw(targets: list[Target], wait: float, count: int) -> dict[str, set[str]]:
    socks: dict[str, tuple[socket.socket, bytes]] = {}
    found: dict[str, set[str]] = {vip: set() for vip, _ in targets}
    try:
        for _, iface in targets:
            if iface not in socks:
                try:
                    socks[iface] = _open(iface)
                except PermissionError:
                    raise
                except OSError as exc:
                    raise ProbeError(f"ARP probe on {iface}: {exc.strerror or exc}") from exc
        by_fd = {s.fileno(): (s, mac) for s, mac in socks.values()}
        start = time.monotonic()
        sent = 0
        while True:
            now = time.monotonic()
            if sent < count and now >= start + sent * wait / count:
                for vip, iface in targets:
                    sock, mac = socks[iface]
                    request = frame(mac, BROADCAST, REQUEST, ZERO_IP, socket.inet_aton(vip))
                    try:
                        sock.send(request)
                    except OSError as exc:  # interface down: no answer is the answer
                        log.debug("ARP probe on %s: %s", iface, exc)
                sent += 1
            left = start + wait - now
            if left <= 0:
                return found
            due = start + sent * wait / count - now if sent < count else left
            ready, _, _ = select.select(list(by_fd), [], [], max(0.0, min(left, due)))
            for fd in ready:
                sock, mac = by_fd[fd]
                _collect(sock, mac, found)
    finally:
        for sock, _ in socks.values():
            sock.close()


def _collect(sock: socket.socket, own: bytes, found: dict[str, set[str]]) -> None:
    """Read every frame waiting on ``sock``; replies (and gratuitous ARPs) for a VIP count."""
    while True:
        try:
            data, address = sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        if address[2] == PACKET_OUTGOING:
            continue
        parsed = parse(data)
        if parsed is None:
            continue
        op, sha, spa, tpa = parsed
        if sha == mac_text(own) or spa not in found:
            continue
        if op == REPLY or (op == REQUEST and spa == tpa):
            found[spa].add(sha)


def _probe_arping(targets: list[Target], wait: float, count: int) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {vip: set() for vip, _ in targets}
    deadline = max(1, int(wait + 0.999))
    procs = []
    for vip, iface in targets:
        cmd = ["arping", "-D", "-c", str(count), "-w", str(deadline), "-I", iface, vip]
        try:
            procs.append((vip, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)))
        except OSError as exc:
            raise ProbeError(f"ARP probe: cannot run arping ({exc.strerror or exc})") from exc
    for vip, proc in procs:
        try:
            out, _ = proc.communicate(timeout=deadline + 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for ip, mac in _ARPING_REPLY.findall(out or ""):
            if ip == vip:
                found[vip].add(mac.lower())
    return found


def garp(address: str, interface: str, count: int = 3, spacing: float = 0.2) -> None:
    """Announce that this host's MAC has ``address``: ``count`` gratuitous ARPs, spaced.

    Switches and neighbours then forget the MAC another node announced during a split brain.
    """
    if not is_ipv4(address):
        return
    ip = socket.inet_aton(address)
    try:
        sock, mac = _open(interface)
    except PermissionError:
        cmd = ["arping", "-U", "-c", str(count), "-I", interface, address]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=count + 5, check=False)
        if done.returncode not in (0, 1):
            raise ProbeError(f"gratuitous ARP for {address}: {done.stderr.strip()}") from None
        return
    except OSError as exc:
        raise ProbeError(f"gratuitous ARP on {interface}: {exc.strerror or exc}") from exc
    try:
        for n in range(count):
            if n:
                time.sleep(spacing)  # spacing packets on the wire, not waiting for an event
            sock.send(frame(mac, BROADCAST, REQUEST, ip, ip))
    except OSError as exc:
        raise ProbeError(f"gratuitous ARP on {interface}: {exc.strerror or exc}") from exc
    finally:
        sock.close()


def neighbour_ip(mac: str, interface: Optional[str], exclude: Iterable[str] = ()) -> Optional[str]:
    """An IP the kernel's ARP table maps to ``mac`` (on ``interface``), if it knows one."""
    skip = set(exclude)
    text = ""
    for path in ("/proc/thread-self/net/arp", "/proc/net/arp"):
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                text = handle.read()
            break
        except OSError:
            continue
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6 or fields[2] == "0x0":  # incomplete entry
            continue
        ip, hw, device = fields[0], fields[3].lower(), fields[5]
        if hw == mac.lower() and ip not in skip and (interface is None or device == interface):
            return ip
    return None
