"""``ha-notify check`` usage lines and ``--help``, written from the one option table
(:mod:`ha_notify.checks.cmdline`); imported only for help and usage errors."""

from __future__ import annotations

import textwrap

from ha_notify.checks.cmdline import CHECKS, OPTIONS, REPEATABLE, SUMMARY

WIDTH = 100
HELP_FLAGS = ("-h", "--help")


def usage(name: str) -> str:
    """One line: ``ha-notify check haproxy [--pidfile PATH | --no-pidfile] ...``."""
    if name not in CHECKS:
        return f"ha-notify check {name} [ARGS]"
    (arg, _), options, _ = CHECKS[name]
    words = ["ha-notify check", name] + ([arg] if arg else [])
    listed = [o for o in options if OPTIONS[o][2]]
    for option in listed:
        if option.startswith("--no-") and "--" + option[5:] in listed:
            continue  # shown with its positive form: [--deep | --no-deep]
        metavar = OPTIONS[option][1]
        word = f"{option} {metavar}" if metavar else option
        negative = "--no-" + option[2:]
        if negative in listed:
            word += f" | {negative}"
        words.append(f"[{word}]" + ("..." if option in REPEATABLE else ""))
    return " ".join(words)


def _para(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent="  ")


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    left = max(len(k) for k, _ in rows) + 4
    out = []
    for key, text in rows:
        wrapped = textwrap.wrap(text, WIDTH - left) or [""]
        out.append(f"  {key:<{left - 2}}{wrapped[0]}")
        out += [" " * left + more for more in wrapped[1:]]
    return out


def help_text(name: str = "") -> str:
    """``check --help`` (every check) or ``check NAME --help`` (its options)."""
    if name not in CHECKS:
        lines = ["Usage: ha-notify check NAME [ARGS] [OPTIONS]", "", *_para(SUMMARY), ""]
        lines += ["Commands:", *_rows([(n, spec[2]) for n, spec in CHECKS.items()])]
        lines += ["", "See ha-notify check NAME --help for a check's options."]
        return "\n".join(lines) + "\n"
    (arg, arg_help), options, summary = CHECKS[name]
    lines = [f"Usage: ha-notify check {name} [OPTIONS]" + (f" {arg}" if arg else ""), ""]
    lines += [*_para(summary), "", *_para(SUMMARY), ""]
    if arg:
        lines += ["Arguments:", *_rows([(arg, arg_help)]), ""]
    rows = []
    for option in options:
        attribute, metavar, text = OPTIONS[option]
        aliases = [o for o in options if OPTIONS[o][0] == attribute and not OPTIONS[o][2]]
        if not text:
            continue
        key = ", ".join([*aliases, option]) + (f" {metavar}" if metavar else "")
        rows.append((key, text))
    rows.append((", ".join(HELP_FLAGS), "Show this message and exit."))
    lines += ["Options:", *_rows(rows)]
    return "\n".join(lines) + "\n"
