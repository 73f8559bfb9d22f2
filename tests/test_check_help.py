"""`check --help` is written from the runner's own option table: the two always agree."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from ha_notify.checks import runner, usage
from ha_notify.checks.cmdline import CHECKS, OPTIONS
from ha_notify.errors import UsageError


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_help_lists_exactly_the_options_the_parser_accepts(name: str) -> None:
    """Every option in `check NAME --help` parses, and every option the parser takes is there."""
    text = usage.help_text(name)
    (arg, _), options, summary = CHECKS[name]
    assert text.startswith(f"Usage: ha-notify check {name} [OPTIONS]") and summary in text
    listed = {word.rstrip(",") for word in text.split() if word.startswith("-")}
    assert {o for o in options} | {"-h", "--help"} <= listed
    for option in options:
        metavar = OPTIONS[option][1]
        argv = [name, *([arg] if arg else []), option, *(["1"] if metavar else [])]
        runner.parse_args(argv)  # raises if the table and the parser disagreed
    for option in sorted(set(OPTIONS) - set(options)):
        assert option not in text.split()
        with pytest.raises(UsageError, match="unknown option"):
            runner.parse_args([name, *([arg] if arg else []), option, "1"])


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_usage_error_shows_the_generated_usage(name: str) -> None:
    """A wrong option's message carries the usage line made from the same table."""
    with pytest.raises(UsageError) as caught:
        runner.parse_args([name, "--bogus"])
    assert usage.usage(name) in str(caught.value)
    assert all(option in usage.usage(name) for option in CHECKS[name][1] if OPTIONS[option][2])


@pytest.mark.parametrize("argv", [["check", "haproxy", "--help"], ["check", "process", "-h"]])
def test_typer_path_prints_the_same_help(cli: Callable[..., Any], argv: list[str]) -> None:
    """Through the typer app (not __main__'s shortcut) a check's help is the runner's, exit 0."""
    result = cli(*argv)
    assert (result.code, result.out) == (0, usage.help_text(argv[1]))


def test_typer_group_lists_the_table_checks(cli: Callable[..., Any]) -> None:
    """`check --help` through typer lists each check of the table with its summary's start."""
    result = cli("check", "--help")
    assert result.code == 0
    for name, (_, _, summary) in CHECKS.items():
        assert any(line.split()[:1] == [name] for line in result.out.splitlines())
        assert summary.split()[0] in result.out


def test_main_help_lists_every_check(cli: Callable[..., Any]) -> None:
    """`ha-notify check --help` names every check of the table with its summary."""
    text = usage.help_text()
    for name, (_, _, summary) in CHECKS.items():
        assert f"{name}  {summary}" in text
