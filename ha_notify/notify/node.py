"""Facts about this node: names and real interface addresses (not ``gethostbyname``)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Optional

from ha_notify.event import Node, clean
from ha_notify.fsutil import atomic_write

log = logging.getLogger(__name__)
FQDN_TTL = 3600.0
FQDN_TIMEOUT = 0.5  # seconds: a broken resolver at 3 a.m. must not delay the alert


def _fqdn(hostname: str, cache: Optional[Path] = None) -> str:
    """socket.getfqdn() bounded in time, remembered for an hour; falls back to the hostname."""
    if "." in hostname:
        return hostname
    if cache is not None:
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            if cached["hostname"] == hostname and time.time() - cached["at"] < FQDN_TTL:
                return str(cached["fqdn"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(socket.getfqdn(hostname)), daemon=True)
    worker.start()
    worker.join(FQDN_TIMEOUT)
    fqdn = clean(result[0]) if result else ""
    fqdn = fqdn if fqdn and not fqdn.startswith("localhost") else hostname
    if cache is not None:
        with contextlib.suppress(OSError):
            atomic_write(cache, json.dumps({"hostname": hostname, "fqdn": fqdn, "at": time.time()}))
    return fqdn


def interface_addresses() -> tuple[tuple[str, str], ...]:
    """(interface, address/prefix) for every non-loopback address of this node."""
    import psutil

    found: list[tuple[str, str]] = []
    for ifname, addrs in sorted(psutil.net_if_addrs().items()):
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = addr.address.split("%", 1)[0]
            try:
                parsed = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if parsed.is_loopback or parsed.is_link_local:
                continue
            prefix = ""
            if addr.netmask:
                try:
                    net = ipaddress.ip_network(f"{ip}/{addr.netmask}", strict=False)
                    prefix = f"/{net.prefixlen}"
                except ValueError:
                    prefix = ""
            found.append((ifname, f"{ip}{prefix}"))
    return tuple(found)


def holds(vips: tuple[str, ...], addresses: tuple[tuple[str, str], ...]) -> Optional[bool]:
    """Whether every configured virtual address is on an interface here (None: none given)."""
    if not vips:
        return None
    mine = set()
    for _ifname, addr in addresses:
        mine.add(ipaddress.ip_address(addr.split("/", 1)[0]))
    wanted = set()
    for vip in vips:
        try:
            wanted.add(ipaddress.ip_address(vip.split("/", 1)[0]))
        except ValueError:
            log.warning("virtual address %r is not an IP address; ignored", vip)
    return bool(wanted) and wanted <= mine


def gather(vips: tuple[str, ...] = (), cache_dir: Optional[Path] = None) -> Node:
    hostname = clean(socket.gethostname()) or "localhost"
    try:
        addresses = interface_addresses()
    except Exception as exc:  # never let fact-finding stop an alert
        log.warning("could not list interface addresses: %s", exc)
        addresses = ()
    return Node(
        hostname=hostname,
        fqdn=_fqdn(hostname, cache_dir / "node.json" if cache_dir else None),
        addresses=tuple(f"{ifname} {addr}" for ifname, addr in addresses),
        holds_vips=holds(vips, addresses),
    )
