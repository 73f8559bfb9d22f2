"""Parsing and judging haproxy's runtime API answers (`show info`, `show stat`), table-driven."""

from __future__ import annotations

import socket

import pytest

from ha_notify.checks import stats, summarize

INFO = "Name: HAProxy\nVersion: 2.6.12\nPid: 42\nStopping: 0\n\n"
HEADER = "# pxname,svname,qcur,status,type\n"


def reply(*rows: str) -> stats.StatsReply:
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
    answer = reply(*rows)
    found = stats.frontend_problems(answer) + stats.backend_problems(answer, min_up, ignore)
    assert found == expected


WEIGHTED = "# pxname,svname,status,weight,type\n"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["be,a,UP,0,2", "be,b,no check,0,2", "be,BACKEND,DOWN,0,1"], "a UP weight 0"),
        (["be,a,DRAIN,1,2", "be,b,DRAIN,1,2", "be,BACKEND,DOWN,0,1"], "a DRAIN, b DRAIN"),
        (["be,a,UP,1,2", "be,BACKEND,DOWN,0,1"], "haproxy shows the backend DOWN"),
    ],
)
def test_weight_zero_drain_and_backend_down_alike(rows: list[str], expected: str) -> None:
    """Weight 0, DRAIN and a BACKEND row DOWN all mean no server takes traffic."""
    answer = stats.parse(INFO + WEIGHTED + "".join(row + "\n" for row in rows))
    (problem,) = stats.backend_problems(answer, 1)
    assert problem.startswith("backend be has 0 of ")
    assert expected in problem


def test_empty_backend_is_not_judged() -> None:
    """A backend without servers (`listen stats`, haproxy shows it UP) is skipped."""
    answer = stats.parse(INFO + WEIGHTED + "empty,BACKEND,UP,0,1\n")
    assert stats.backend_problems(answer, 1) == []


def test_summarize_bounds_the_line() -> None:
    """200 problems become the first five and `and 195 more`."""
    items = [f"backend b{i} has 0 of 1 servers UP" for i in range(200)]
    line = summarize(items)
    assert line.endswith("; and 195 more")
    assert line.count("backend") == 5
    assert summarize(items[:2]) == "; ".join(items[:2])


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
