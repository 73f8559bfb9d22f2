"""The virtual addresses of this pair, and which of them this node holds right now.

:func:`discover` reads them once (at start and on SIGHUP): from ``[watch] keepalived_config``
(``virtual_ipaddress`` blocks of each ``vrrp_instance``, with their ``dev``), else from
``[general] virtual_addresses`` and the interface that carries each one now. :func:`held` runs
every round: one netlink ``RTM_GETADDR`` dump on a socket kept open, no fork, no ``ip``.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ha_notify.errors import ConfigError
from ha_notify.keepalived_conf import MAX_INCLUDE_DEPTH, tokens

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ha_notify.config import Config

RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_ATTR = struct.Struct("=HH")  # rtattr: len, type
VIP_BLOCKS = ("virtual_ipaddress", "virtual_ipaddress_excluded")


@dataclass(frozen=True)
class Vip:
    """One virtual address: the bare IP, the interface it goes on, its VRRP instance."""

    address: str
    interface: Optional[str]
    instance: Optional[str]


def _canonical(text: str) -> str:
    """``192.168.0.130/24`` -> ``192.168.0.130``; IPv6 in its compressed form."""
    return str(ipaddress.ip_interface(text).ip)


class AddressTable:
    """This node's addresses per interface, read over one reused netlink socket."""

    def __init__(self) -> None:
        self._sock: Optional[socket.socket] = None
        self._seq = 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, 0))
            sock.settimeout(2.0)  # the kernel answers at once; never hang a round on it
            self._sock = sock
        return self._sock

    def dump(self) -> list[tuple[int, str, int]]:
        """(interface index, address, prefix length) for every address on this node."""
        try:
            return self._dump()
        except OSError:
            self.close()  # a broken socket is replaced next time
            raise

    def _dump(self) -> list[tuple[int, str, int]]:
        sock = self._socket()
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        body = _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        flags = NLM_F_REQUEST | NLM_F_DUMP
        sock.send(_HEADER.pack(_HEADER.size + len(body), RTM_GETADDR, flags, self._seq, 0) + body)
        found: list[tuple[int, str, int]] = []
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError("netlink: malformed message")
                if seq == self._seq:
                    if kind == NLMSG_DONE:
                        return found
                    if kind == NLMSG_ERROR:
                        (errno,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                        raise OSError(-errno, os.strerror(-errno))
                    if kind == RTM_NEWADDR:
                        found.append(_address(data, offset + _HEADER.size, offset + length))
                offset += (length + 3) & ~3

    def addresses(self) -> set[str]:
        return {address for _index, address, _prefix in self.dump()}

    def interface_of(self, address: str) -> Optional[str]:
        """The interface that carries ``address``, else the one whose subnet contains it
        (where keepalived puts the VIP on a node that does not hold it yet)."""
        rows = self.dump()
        index = next((i for i, found, _ in rows if found == address), None)
        if index is None:
            ip = ipaddress.ip_address(address)
            for i, found, prefix in rows:
                try:
                    net = ipaddress.ip_interface(f"{found}/{prefix}").network
                except ValueError:
                    continue
                if net.version == ip.version and ip in net and net.num_addresses > 1:
                    index = i
                    break
        if index is None:
            return None
        try:
            return socket.if_indextoname(index)
        except OSError:
            return None


def _address(data: bytes, start: int, end: int) -> tuple[int, str, int]:
    family, prefix, _flags, _scope, index = _IFADDR.unpack_from(data, start)
    offset = start + _IFADDR.size
    values: dict[int, bytes] = {}
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        values[kind] = data[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    # IPv4: IFA_LOCAL is the address (IFA_ADDRESS is the peer on point-to-point links).
    raw = values.get(IFA_LOCAL) or values.get(IFA_ADDRESS, b"")
    try:
        return index, socket.inet_ntop(family, raw), prefix
    except (ValueError, OSError):
        return index, "", prefix


_TABLE = AddressTable()
atexit.register(_TABLE.close)


def held(vips: Iterable[Vip]) -> set[str]:
    """The addresses of ``vips`` this node holds now (one netlink dump; raises OSError)."""
    wanted = {vip.address for vip in vips}
    if not wanted:
        return set()
    return wanted & _TABLE.addresses()


def discover(config: Config) -> list[Vip]:
    """The pair's virtual addresses: keepalived.conf when configured, else [general]."""
    path = config.watch.keepalived_config
    if path is not None:
        return from_keepalived(path)
    found = []
    for text in config.general.virtual_addresses:
        address = _canonical(text)
        try:
            interface = _TABLE.interface_of(address)
        except OSError:
            interface = None
        found.append(Vip(address, interface, None))
    return found


def from_keepalived(path: Path) -> list[Vip]:
    """``virtual_ipaddress`` entries of every ``vrrp_instance`` in ``path`` and its includes."""
    walker = _Walker()
    walker.file(path, 0)
    if not walker.files:
        raise ConfigError(f"[watch] keepalived_config: cannot read {path}")
    return list(dict.fromkeys(walker.vips))


class _Walker:
    """Follows blocks across lines and includes, collecting virtual addresses."""

    def __init__(self) -> None:
        self.stack: list[list[str]] = []
        self.files: list[Path] = []
        self.vips: list[Vip] = []
        self.words: list[str] = []

    def file(self, path: Path, depth: int) -> None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        self.files.append(path)
        for raw in text.splitlines():
            self.line(path, [t.text for t in tokens(raw)], depth)

    def line(self, path: Path, words: list[str], depth: int) -> None:
        for word in [*words, "\n"]:
            if word == "{":
                self.stack.append(self.words)
                self.words = []
            elif word == "}":
                self.statement()
                if self.stack:
                    self.stack.pop()
            elif word == "\n":
                self.statement(path, depth)
            else:
                self.words.append(word)

    def statement(self, path: Optional[Path] = None, depth: int = 0) -> None:
        words, self.words = self.words, []
        if words and words[0].startswith("@"):
            words = words[1:]  # keepalived's per-node condition
        if not words:
            return
        if words[0] == "include" and len(words) > 1 and path is not None:
            if depth < MAX_INCLUDE_DEPTH:
                import glob

                base = words[1] if os.path.isabs(words[1]) else str(path.parent / words[1])
                for match in sorted(glob.glob(base)):
                    self.file(Path(match), depth + 1)
            return
        names = [frame[0] if frame else "" for frame in self.stack]
        if len(names) >= 2 and names[-1] in VIP_BLOCKS and names[-2] == "vrrp_instance":
            instance = self.stack[-2][1] if len(self.stack[-2]) > 1 else None
            try:
                address = _canonical(words[0])
            except ValueError:
                return  # not an address (a keyword keepalived may add later)
            dev = words[words.index("dev") + 1] if "dev" in words[:-1] else None
            self.vips.append(Vip(address, dev, instance))
