"""Options shared by the typer sub-apps."""

from __future__ import annotations

import typer

ConfigOpt = typer.Option(
    None,
    "--config",
    "-c",
    help="Config file [default: $HA_NOTIFY_CONFIG, then /etc/ha-notify/config.toml]",
    show_default=False,
)
