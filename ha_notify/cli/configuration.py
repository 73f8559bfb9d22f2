"""``ha-notify config check|show``: the config sub-app, joined to the CLI with add_typer."""

from __future__ import annotations

from typing import Optional

import typer

from ha_notify.cli.options import ConfigOpt
from ha_notify.config import load
from ha_notify.errors import ExitCode

config_app = typer.Typer(
    help="Validate or show the configuration.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@config_app.command("check")
def config_check(config: Optional[str] = ConfigOpt) -> int:
    """Validate the config and every channel's settings (secrets included)."""
    from ha_notify.channels import Context as ChannelContext
    from ha_notify.channels import build
    from ha_notify.notify.render import Renderer

    cfg = load(config)
    if cfg.path is None:
        print("no config file found; ha-notify will only log and record states")
        return ExitCode.OK
    renderer = Renderer(cfg.general.language, cfg.general.templates_dir)
    for ch in cfg.channels:
        build(ch, ChannelContext(renderer, cfg.general))
    names = ", ".join(c.name for c in cfg.channels) or "none"
    count = len(cfg.channels)
    print(f"{cfg.path}: ok ({count} channel{'' if count == 1 else 's'}: {names})")
    return ExitCode.OK


@config_app.command("show")
def config_show(config: Optional[str] = ConfigOpt) -> int:
    """Print the config as loaded: [general] with its defaults, secrets masked."""
    from ha_notify.cli.showconfig import dump

    print(dump(load(config)))
    return ExitCode.OK
