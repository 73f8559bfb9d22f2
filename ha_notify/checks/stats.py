"""haproxy's runtime API (the ``stats socket``): ask, parse, judge.

One connection sends ``show info;show stat`` and reads until haproxy closes it; every socket
operation gets only what is left of the check's deadline, so a socket that accepts and never
answers costs at most ``--timeout``.
"""

from __future__ import annotations

import os
import socket
from time import monotonic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Union

    Address = Union[str, tuple[str, int]]

COMMANDS = b"show info;show stat\n"
MAX_REPLY = 64 * 1024 * 1024  # a show stat of a very large config stays far below this
MAX_NAMES = 5  # servers named in one failure reason before "and N more"


class StatsError(Exception):
    """The runtime API could not be asked; the message is the unhealthy reason."""


class Reply:
    """What ``show info`` and ``show stat`` answered."""

    __slots__ = ("info", "rows")

    def __init__(self, info: dict[str, str], rows: list[dict[str, str]]) -> None:
        self.info = info
        self.rows = rows


def resolve_address(address: str) -> tuple[int, Address]:
    """Socket family and address for a haproxy-style socket spec.

    ``/path``, ``unix@/path``, ``abns@name``, ``ipv4@host:port``, ``ipv6@host:port`` and
    ``host:port`` are understood. Raises ValueError for anything else.
    """
    prefix, sep, rest = address.partition("@")
    if not sep:
        prefix, rest = "", address
    if prefix == "unix" or (not prefix and (rest.startswith(("/", ".")) or ":" not in rest)):
        if not rest:
            raise ValueError("an empty socket path")
        return socket.AF_UNIX, rest
    if prefix == "abns":
        return socket.AF_UNIX, "\0" + rest
    if prefix in ("", "ipv4", "ipv6"):
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"{address!r} is not host:port")
        family = socket.AF_INET6 if prefix == "ipv6" or ":" in host else socket.AF_INET
        return family, (host, int(port))
    raise ValueError(f"{prefix}@ sockets are not supported, use a path or host:port")


def ask(address: str, deadline: float, timeout: float) -> Reply:
    """Run ``show info;show stat`` on ``address`` before ``deadline`` (a monotonic time)."""
    try:
        family, target = resolve_address(address)
    except ValueError as exc:
        raise StatsError(f"stats socket {address}: {exc}") from exc
    late = f"stats socket timed out after {timeout:g} s ({address})"
    chunks: list[bytes] = []
    size = 0
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(_left(deadline, late))
            sock.connect(target)
            sock.settimeout(_left(deadline, late))
            sock.sendall(COMMANDS)
            while True:
                sock.settimeout(_left(deadline, late))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY:
                    raise StatsError(f"stats socket {address} answered more than 64 MiB")
        except socket.timeout as exc:
            raise StatsError(late) from exc
        except FileNotFoundError as exc:
            raise StatsError(f"stats socket {address} does not exist") from exc
        except PermissionError as exc:
            raise StatsError(
                f"permission denied on stats socket {address} (running as uid {os.geteuid()}; "
                "give this user access with `stats socket ... mode 660 group GROUP`)"
            ) from exc
        except ConnectionRefusedError as exc:
            raise StatsError(
                f"stats socket {address} refused the connection (haproxy not listening?)"
            ) from exc
        except OSError as exc:
            raise StatsError(f"stats socket {address}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    return parse(b"".join(chunks).decode("utf-8", "replace"), address)


def _left(deadline: float, late: str) -> float:
    left = deadline - monotonic()
    if left <= 0:
        raise StatsError(late)
    return left


def parse(text: str, address: str = "stats socket") -> Reply:
    """Split the answer into ``show info`` fields and ``show stat`` CSV rows."""
    head, marker, csv = text.partition("# pxname,")
    info: dict[str, str] = {}
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    if "Pid" not in info or not marker:
        first = text.strip().splitlines()[0][:120] if text.strip() else "nothing"
        raise StatsError(f"stats socket {address} did not answer show info/show stat: {first}")
    lines = csv.splitlines()
    header = ["pxname", *lines[0].rstrip(",").split(",")] if lines else []
    rows = []
    for line in lines[1:]:
        if not line or line.startswith("#"):
            continue
        rows.append(dict(zip(header, line.split(","))))
    return Reply(info, rows)


def server_up(status: str) -> bool:
    """UP, "UP 1/3" (going down) and "no check" (unchecked, so used) serve traffic."""
    return status.startswith("UP") or status == "no check"


def problems(reply: Reply, min_up: int, ignore_backends: Iterable[str] = ()) -> list[str]:
    """Why haproxy is not healthy, one item per frontend or backend, empty when healthy."""
    ignored = frozenset(ignore_backends)
    found: list[str] = []
    servers: dict[str, list[tuple[str, str]]] = {}
    for row in reply.rows:
        proxy, name, status = row.get("pxname", ""), row.get("svname", ""), row.get("status", "")
        kind = row.get("type", "")
        if kind == "0" or (not kind and name == "FRONTEND"):
            if status != "OPEN":
                found.append(f"frontend {proxy} is {status or 'not OPEN'}")
        elif kind == "2" or (not kind and name not in ("BACKEND", "FRONTEND")):
            servers.setdefault(proxy, []).append((name, status))
    if min_up > 0:
        for backend, members in servers.items():
            if backend in ignored:
                continue
            up = sum(1 for _, status in members if server_up(status))
            if up < min_up:
                down = [f"{name} {status}" for name, status in members if not server_up(status)]
                more = len(down) - MAX_NAMES
                if down:
                    why = ", ".join(down[:MAX_NAMES]) + (f", and {more} more" if more > 0 else "")
                else:  # every server is UP: there are just not enough of them
                    why = "lower min_up, or ignore this backend"
                found.append(
                    f"backend {backend} has {up} of {len(members)} servers UP, "
                    f"needs {min_up} ({why})"
                )
    return found


def socket_from_config(path: str) -> str:
    """The first ``stats socket`` address in a haproxy configuration file or directory.

    Raises OSError when it cannot be read and LookupError when it names no stats socket.
    """
    files = [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".cfg"))
    for name in files:
        with open(name, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "stats" and words[1] == "socket":
                    return words[2].strip("\"'")
    raise LookupError(f"{path} has no `stats socket` line")
