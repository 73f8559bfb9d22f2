"""haproxy's runtime API (the ``stats socket``): ask, parse, judge.

One connection sends ``show info;show stat`` and reads until haproxy closes it; every socket
operation gets only what is left of the check's deadline, so a socket that accepts and never
answers costs at most ``--timeout``.
"""

from __future__ import annotations

import os
import socket
from time import monotonic

from ha_notify.checks import summarize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Optional, Union

    Address = Union[str, tuple[str, int]]

COMMANDS = b"show info;show stat\n"
MAX_REPLY = 64 * 1024 * 1024  # a show stat of a very large config stays far below this
MAX_NAMES = 5  # servers named in one failure reason before "and N more"
BUSY = "all CLI slots in use: give the check its own `stats socket`"


class StatsError(Exception):
    """The runtime API could not be asked; the message is the unhealthy reason."""


class StatsReply:
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


def ask(address: str, deadline: float, timeout: float) -> StatsReply:
    """Run ``show info;show stat`` on ``address`` before ``deadline`` (a monotonic time).

    One connection. A stats socket whose connection queue is full (every CLI slot taken by
    other sessions: ``EAGAIN``) is retried until the deadline; a connection haproxy never
    accepts is told apart from one it accepted and never answered.
    """
    try:
        family, target = resolve_address(address)
    except ValueError as exc:
        raise StatsError(f"stats socket {address}: {exc}") from exc
    late = f"stats socket timed out after {timeout:g} s ({address})"
    chunks: list[bytes] = []
    size = 0
    sock = _connect(family, target, address, deadline, late)
    try:
        try:
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
        except (socket.timeout, StatsError) as exc:
            if size == 0 and isinstance(target, str):
                busy = _not_accepted(target, address, timeout)
                if busy:
                    raise StatsError(busy) from exc
            if isinstance(exc, StatsError):
                raise
            raise StatsError(late) from exc
        except OSError as exc:
            raise StatsError(f"stats socket {address}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    return parse(b"".join(chunks).decode("utf-8", "replace"), address)


def _connect(
    family: int, target: Union[str, tuple[str, int]], address: str, deadline: float, late: str
) -> socket.socket:
    """A connected socket; ``EAGAIN`` (a full connection queue) is retried until the deadline."""
    pause = 0.005
    full = ""
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(_left(deadline, full or late))
            sock.connect(target)
            return sock
        except BlockingIOError:
            sock.close()
            full = f"stats socket {address}: {BUSY} (its connection queue is full)"
            from time import sleep  # only while the queue is full

            sleep(max(min(pause, deadline - monotonic()), 0))
            pause = min(pause * 2, 0.1)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                raise _connect_error(exc, address, late) from exc
            raise


def _connect_error(exc: OSError, address: str, late: str) -> StatsError:
    if isinstance(exc, socket.timeout):
        return StatsError(late)
    if isinstance(exc, FileNotFoundError):
        return StatsError(f"stats socket {address} does not exist")
    if isinstance(exc, PermissionError):
        return StatsError(
            f"permission denied on stats socket {address} (running as uid {os.geteuid()}; "
            "give this user access with `stats socket ... mode 660 group GROUP`)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return StatsError(f"stats socket {address} refused the connection (haproxy not listening?)")
    return StatsError(f"stats socket {address}: {exc.strerror or exc}")


def _not_accepted(path: str, address: str, timeout: float) -> Optional[str]:
    """Why a unix socket connection got no answer, when haproxy never accepted it.

    /proc/net/unix lists the listener's accepted sessions (state 03) and the connections
    still waiting in its queue (state 02), ours included, all under the listener's path.
    """
    from ha_notify.checks.procfs import PROC, _read

    table = _read(f"{PROC}/net/unix", 1 << 24) or b""
    accepted = waiting = 0
    for line in table.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        name = fields[7]
        if name != path and not (name.startswith(path + ".") and name.endswith(".tmp")):
            continue
        if fields[5] == "03":
            accepted += 1
        elif fields[5] == "02":
            waiting += 1
    if not waiting:
        return None
    if accepted:
        return (
            f"stats socket {address}: {BUSY} ({accepted} sessions open, {waiting} waiting; "
            f"not accepted within {timeout:g} s)"
        )
    return f"stats socket timed out after {timeout:g} s ({address}): haproxy accepts no connection"


def _left(deadline: float, late: str) -> float:
    left = deadline - monotonic()
    if left <= 0:
        raise StatsError(late)
    return left


def parse(text: str, address: str = "stats socket") -> StatsReply:
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
    return StatsReply(info, rows)


def server_up(status: str, weight: str = "1") -> bool:
    """Whether a server takes traffic: UP, "UP 1/3" (going down) or "no check", weight > 0.

    A server at weight 0 is UP in name only: it gets no new traffic, like one in DRAIN (which
    haproxy shows as ``DRAIN``); both count as not UP.
    """
    return (status.startswith("UP") or status == "no check") and weight != "0"


def frontend_problems(reply: StatsReply) -> list[str]:
    """Frontends that are not OPEN: this node's own business (a bind, a pause)."""
    found = []
    for row in reply.rows:
        kind, status = row.get("type", ""), row.get("status", "")
        frontend = kind == "0" or (not kind and row.get("svname") == "FRONTEND")
        if frontend and status != "OPEN":
            found.append(f"frontend {row.get('pxname', '')} is {status or 'not OPEN'}")
    return found


def backend_problems(
    reply: StatsReply, min_up: int, ignore_backends: Iterable[str] = ()
) -> list[str]:
    """Backends with fewer than ``min_up`` servers taking traffic, ignored ones aside.

    A BACKEND row that haproxy itself shows DOWN (it answers 503) has no server UP, whatever
    its servers' rows say. Backends without servers (``listen stats``) are skipped.
    """
    ignored = frozenset(ignore_backends)
    servers: dict[str, list[tuple[str, str, bool]]] = {}
    down_rows: set[str] = set()
    for row in reply.rows:
        proxy, name, status = row.get("pxname", ""), row.get("svname", ""), row.get("status", "")
        kind = row.get("type", "")
        if kind == "1" or (not kind and name == "BACKEND"):
            if status.startswith("DOWN"):
                down_rows.add(proxy)
        elif kind == "2" or (not kind and name not in ("BACKEND", "FRONTEND")):
            serving = server_up(status, row.get("weight", "1"))
            servers.setdefault(proxy, []).append((name, _shown(status, row), serving))
    found: list[str] = []
    if min_up <= 0:
        return found
    for backend, members in servers.items():
        if backend in ignored:
            continue
        up = 0 if backend in down_rows else len([m for m in members if m[2]])
        if up >= min_up:
            continue
        down = [f"{name} {status}" for name, status, ok in members if not ok]
        if down:
            why = summarize(down, MAX_NAMES, ", ")
        elif backend in down_rows:
            why = "haproxy shows the backend DOWN"
        else:  # every server is UP: there are just not enough of them
            why = "lower min_up, or ignore this backend"
        found.append(
            f"backend {backend} has {up} of {len(members)} servers UP, needs {min_up} ({why})"
        )
    return found


def _shown(status: str, row: dict[str, str]) -> str:
    return f"{status} weight 0" if row.get("weight") == "0" and status != "DRAIN" else status
