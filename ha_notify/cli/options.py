"""Options shared by the typer sub-apps."""

from __future__ import annotations

import typer

from ha_notify.checks.cmdline import OPTIONS

ConfigOpt = typer.Option(
    None,
    "--config",
    "-c",
    help=OPTIONS["--config"][2],
    show_default=False,
)
