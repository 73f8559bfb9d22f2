"""``ha-notify check`` in typer: one forwarding command per check of the runner's table.

``ha_notify.__main__`` sends every ``ha-notify check ...`` straight to
``ha_notify.checks.runner`` (no typer on the hot path), ``--help`` included. These commands
exist so that ``ha-notify --help`` and shell completion list the checks; they hand their
arguments, unparsed, to the same runner, whose option table (checks/cmdline.py) is the one
definition of the check command line and its help.
"""

from __future__ import annotations

import typer

from ha_notify.checks.cmdline import CHECKS, SUMMARY

FORWARD = {"ignore_unknown_options": True, "allow_extra_args": True}
check_app = typer.Typer(
    help=SUMMARY, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]}
)


def _forward(name: str) -> None:
    def command(ctx: typer.Context) -> int:
        from ha_notify.checks.runner import main as check_main

        return check_main([name, *ctx.args])

    summary = CHECKS[name][2]
    check_app.command(name, help=summary, add_help_option=False, context_settings=FORWARD)(command)


for _name in CHECKS:
    _forward(_name)
