"""Command-line forms that typer cannot express: ``-c FILE`` before the subcommand, and an
option whose value may be left out (``flush --retry-dead [ID]``).

Imported by ``ha-notify check``'s hot path too, so it imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms per check
if TYPE_CHECKING:
    from collections.abc import Collection

GROUPS = ("config", "check")  # commands whose first argument names a subcommand
ALL = "*"  # the value of ``--retry-dead`` given without an ID (no dead letter id has a *)


def _leading_config(args: list[str]) -> tuple[list[str], list[str]]:
    """Split leading ``-c FILE`` / ``--config FILE`` / ``--config=FILE`` / ``-cFILE`` off."""
    taken: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word in ("-c", "--config") and i + 1 < len(args):
            taken = ["--config", args[i + 1]]
            i += 2
        elif word.startswith("--config="):
            taken = ["--config", word[len("--config=") :]]
            i += 1
        elif word.startswith("-c") and len(word) > 2 and not word.startswith("--"):
            taken = ["--config", word[2:]]
            i += 1
        else:
            break
    return taken, args[i:]


def hoist_config(args: list[str], groups: Collection[str] = GROUPS) -> list[str]:
    """``ha-notify -c FILE status`` means ``ha-notify status --config FILE``.

    The option moves behind the command (and behind the subcommand of a group such as
    ``config check``); the last one given wins, as for any option.
    """
    if not args or not args[0].startswith("-"):
        return args
    taken, rest = _leading_config(args)
    if not taken or not rest or rest[0].startswith("-"):
        return args
    path = 2 if rest[0] in groups and len(rest) > 1 and not rest[1].startswith("-") else 1
    return [*rest[:path], *taken, *rest[path:]]


def optional_value(args: list[str], option: str, default: str = ALL) -> list[str]:
    """``OPTION`` with no value after it (last, or before another option) gets ``default``."""
    out: list[str] = []
    for i, word in enumerate(args):
        out.append(word)
        if word == option and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(default)
    return out
