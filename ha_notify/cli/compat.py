"""typer 0.19 (the last release for Python 3.9) with click 8.5: arguments keep their help.

click 8.5 gives ``Argument`` a ``help`` of its own: its constructor resets the help typer has
just set (typer does not pass it on), and its new "Positional arguments" section would repeat
typer's "Arguments" section. Both are undone here, once, when the CLI is imported.
"""

from __future__ import annotations

from typing import Any

import click
import typer.core

_argument_init = typer.core.TyperArgument.__init__


def _argument_keeps_help(self: typer.core.TyperArgument, **kwargs: Any) -> None:
    _argument_init(self, **kwargs)
    self.help = kwargs.get("help")


def _no_second_section(*_: Any) -> None:
    """typer's own "Arguments" section already lists them."""


def apply() -> None:
    if getattr(typer.core.TyperArgument, "_ha_notify_compat", False):
        return
    typer.core.TyperArgument.__init__ = _argument_keeps_help
    typer.core.TyperArgument._ha_notify_compat = True
    if hasattr(click.Command, "format_arguments"):  # click 8.5+
        for cls in (typer.core.TyperCommand, typer.core.TyperGroup):
            cls.format_arguments = _no_second_section
