"""Parsing and judging haproxy's runtime API answers (`show info`, `show stat`), table-driven."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ha_notify.checks import stats

INFO = "Name: HAProxy\nVersion: 2.6.12\nPid: 42\nStopping: 0\n\n"
HEADER = "# pxname,svname,qcur,status,type\n"


def reply(*rows: str) -> stats.Reply:
    """A parsed answer with these `show stat` rows (pxname,svname,qcur,status,type)."""
    return stats.parse(INFO + HEADER + "".join(row + "\n" for row in rows) + "\n")


@pytest.mark.parametrize(
    ("rows", "min_up", "ignore", "expected"),
    [
        (["fe,FRONTEND,,OPEN,0", "be,s1,0,UP,2", "be,BACKEND,0,UP,1"], 1, (), []),
        (["fe,FRONTEND,,PAUSED,0"], 1, (), ["frontend fe is PAUSED"]),
        (["fe,FRONTEND,,FULL,0"], 1, (), ["frontend fe is FULL"]),
        (
            ["be,s1,0,DOWN,2", "be,s2,0,MAINT,2", "be,BACKEND,0,DOWN,1"],
            1,
            (),
            ["backend be has 0 of 2 servers UP, needs 1 (s1 DOWN, s2 MAINT)"],
        ),
        (["be,s1,0,DOWN,2"], 1, ("be",), []),
        (["be,s1,0,DOWN,2"], 0, (), []),
        (["be,s1,0,UP 1/3,2", "be,s2,0,no check,2"], 2, (), []),
        (
            ["be,s1,0,DRAIN,2", "be,s2,0,UP,2", "be,s3,0,NOLB,2"],
            2,
            (),
            ["backend be has 1 of 3 servers UP, needs 2 (s1 DRAIN, s3 NOLB)"],
        ),
        (["stats,FRONTEND,,OPEN,0", "stats,BACKEND,0,UP,1"], 1, (), []),
        (
            [f"be,s{i},0,DOWN,2" for i in range(7)],
            1,
            (),
            [
                "backend be has 0 of 7 servers UP, needs 1 "
                "(s0 DOWN, s1 DOWN, s2 DOWN, s3 DOWN, s4 DOWN, and 2 more)"
            ],
        ),
    ],
)
def test_problems(
    rows: list[str], min_up: int, ignore: tuple[str, ...], expected: list[str]
) -> None:
    """Each failing frontend/backend is named; UP, "UP 1/3" and "no check" count as UP."""
    assert stats.problems(reply(*rows), min_up, ignore) == expected


def test_parse_reads_info_fields() -> None:
    """show info fields are split at the first colon."""
    assert reply().info["Pid"] == "42"
    assert reply().info["Stopping"] == "0"


@pytest.mark.parametrize(
    "text", ["", "Unknown command: 'show'\n", "Permission denied\n", INFO + "no stat\n"]
)
def test_unexpected_answer(text: str) -> None:
    """Anything that is not show info + show stat is an error that quotes the answer."""
    with pytest.raises(stats.StatsError, match="did not answer show info/show stat"):
        stats.parse(text, "/s")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/run/haproxy/admin.sock", (socket.AF_UNIX, "/run/haproxy/admin.sock")),
        ("unix@/run/a.sock", (socket.AF_UNIX, "/run/a.sock")),
        ("relative.sock", (socket.AF_UNIX, "relative.sock")),
        ("abns@stats", (socket.AF_UNIX, "\0stats")),
        ("127.0.0.1:9999", (socket.AF_INET, ("127.0.0.1", 9999))),
        ("ipv4@127.0.0.1:9999", (socket.AF_INET, ("127.0.0.1", 9999))),
        ("ipv6@::1:9999", (socket.AF_INET6, ("::1", 9999))),
        ("[::1]:9999", (socket.AF_INET6, ("::1", 9999))),
    ],
)
def test_resolve_address(spec: str, expected: tuple[int, object]) -> None:
    """haproxy's socket address forms map to a family and an address."""
    assert stats.resolve_address(spec) == expected


@pytest.mark.parametrize("spec", ["fd@3", "sockpair@4", "unix@", "ipv4@host:port"])
def test_resolve_address_refuses(spec: str) -> None:
    """Forms a check cannot connect to are refused."""
    with pytest.raises(ValueError):
        stats.resolve_address(spec)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "global\n  stats socket /run/haproxy/admin.sock mode 660 level admin\n",
            "/run/haproxy/admin.sock",
        ),
        (
            "global\n  # stats socket /old.sock\n  stats socket ipv4@127.0.0.1:9999\n",
            "ipv4@127.0.0.1:9999",
        ),
        ('global\n  stats socket "/q.sock" level user\n', "/q.sock"),
        (
            "global\n  stats timeout 30s\n  stats socket /a.sock\n  stats socket /b.sock\n",
            "/a.sock",
        ),
    ],
)
def test_socket_from_config(tmp_path: Path, text: str, expected: str) -> None:
    """The first `stats socket` line of haproxy.cfg names the socket."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    assert stats.socket_from_config(str(cfg)) == expected


def test_socket_from_config_directory(tmp_path: Path) -> None:
    """A configuration directory (haproxy -f DIR) is read in file-name order."""
    (tmp_path / "10-global.cfg").write_text("global\n  daemon\n")
    (tmp_path / "20-stats.cfg").write_text("global\n  stats socket /d.sock\n")
    assert stats.socket_from_config(str(tmp_path)) == "/d.sock"


def test_socket_from_config_without_socket(tmp_path: Path) -> None:
    """A haproxy.cfg without a stats socket raises LookupError."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("global\n  daemon\n")
    with pytest.raises(LookupError):
        stats.socket_from_config(str(cfg))
