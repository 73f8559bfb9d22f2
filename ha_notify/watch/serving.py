"""Does haproxy serve a VIP: which frontends bind to it (or to a wildcard), does VIP:port
accept a TCP connection.

Bind addresses come from the haproxy configuration (``bind`` lines of ``frontend`` and
``listen`` sections) and, where haproxy reports them, from ``show stat`` listener rows
(``option socket-stats``, column ``addr``). UNIX and abstract sockets are not VIP ports.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from ha_notify.errors import ProbeError

WILDCARDS = frozenset({"", "*", "0.0.0.0", "::", "[::]"})
SECTIONS = ("frontend", "listen")
OTHER_SECTIONS = (
    "global",
    "defaults",
    "backend",
    "userlist",
    "peers",
    "resolvers",
    "cache",
    "program",
    "http-errors",
    "ring",
    "mailers",
    "crt-store",
)


@dataclass(frozen=True)
class Bind:
    """One listening address of a frontend: ``host`` is "" for a wildcard."""

    frontend: str
    host: str
    port: int

    def covers(self, vip: str) -> bool:
        return self.host in WILDCARDS or _same_ip(self.host, vip)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return False


def parse_address(spec: str) -> Optional[tuple[str, int]]:
    """``host:port`` of one bind address, ``*:80``, ``:80``, ``[::]:443``, ``ipv4@x:80``,
    ``10.0.0.1:8000-8010`` (the first port); None for UNIX/abstract sockets and ``fd@``."""
    prefix, sep, rest = spec.partition("@")
    if sep:
        if prefix not in ("ipv4", "ipv6", "tcp", "tcp4", "tcp6"):
            return None
        spec = rest
    if spec.startswith(("/", ".")) or ":" not in spec:
        return None
    host, _, ports = spec.rpartition(":")
    first = ports.split("-", 1)[0]
    if not first.isdigit() or not 0 < int(first) < 65536:
        return None
    host = host.strip("[]") if host not in ("[::]",) else "::"
    return ("" if host in WILDCARDS else host), int(first)


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".cfg"))
    return [path]


def binds_from_config(path: str) -> list[Bind]:
    """Every TCP bind of every frontend/listen section in haproxy.cfg (file or folder).

    Raises ProbeError when the configuration cannot be read.
    """
    found: list[Bind] = []
    for name in _files(path):
        try:
            with open(name, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError as exc:
            raise ProbeError(f"haproxy config {name}: {exc.strerror or exc}") from exc
        section: Optional[str] = None
        for line in lines:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] in SECTIONS:
                section = words[1] if len(words) > 1 else words[0]
            elif words[0] in OTHER_SECTIONS:
                section = None
            elif words[0] == "bind" and section is not None and len(words) > 1:
                for spec in words[1].strip("\"'").split(","):
                    parsed = parse_address(spec)
                    if parsed is not None:
                        found.append(Bind(section, *parsed))
    return found


def binds_from_stats(rows: Iterable[dict[str, str]]) -> list[Bind]:
    """Listener rows of ``show stat`` (type 3) that carry an address."""
    found = []
    for row in rows:
        if row.get("type") != "3" or not row.get("addr"):
            continue
        parsed = parse_address(row["addr"])
        if parsed is not None:
            found.append(Bind(row.get("pxname", "?"), *parsed))
    return found


def ports_for(vip: str, binds: Iterable[Bind]) -> dict[int, tuple[str, ...]]:
    """The ports haproxy should serve on ``vip``, each with the frontends that bind it."""
    ports: dict[int, list[str]] = {}
    for bind in binds:
        if bind.covers(vip):
            names = ports.setdefault(bind.port, [])
            if bind.frontend not in names:
                names.append(bind.frontend)
    return {port: tuple(names) for port, names in sorted(ports.items())}


def accepts(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when ``address:port`` accepts a TCP connection within ``timeout`` seconds."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError:  # refused, unreachable, timed out
            return False
    return True


def refused(address: str, ports: Iterable[int], timeout: float = 1.0) -> list[int]:
    """The ports of ``address`` that do not accept a connection."""
    return [port for port in ports if not accepts(address, port, timeout)]
