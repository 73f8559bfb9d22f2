"""``ha-notify check`` in typer: help and options only.

``ha_notify.__main__`` sends every ``ha-notify check ...`` without -h/--help straight to
``ha_notify.checks.runner`` (no typer on the hot path); these commands exist so that -h/--help
lists them, and forward to the same runner if reached.
"""

from __future__ import annotations

from typing import Optional

import typer

from ha_notify.cli.options import ConfigOpt

check_app = typer.Typer(
    help="Health checks for keepalived's vrrp_script: exit 0 healthy, 1 unhealthy, "
    "2 usage or config error.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

CheckPidfileOpt = typer.Option(
    None,
    "--pidfile",
    metavar="PATH",
    help="Pidfile to verify [default: [checks.*] pidfile, then /run/NAME.pid, "
    "/var/run/NAME.pid, /run/NAME/NAME.pid; /proc scan if none exists]",
    show_default=False,
)
CheckNoPidfileOpt = typer.Option(
    False, "--no-pidfile", help="Ignore pidfiles; find the process by exact name in /proc."
)
CheckTimeoutOpt = typer.Option(
    None,
    "--timeout",
    metavar="SECONDS",
    help="Bound the whole check, in seconds [default: config, then 2]",
    show_default=False,
)
CheckSocketOpt = typer.Option(
    None,
    "--socket",
    metavar="PATH|HOST:PORT",
    help="haproxy stats socket for --deep [default: [checks.haproxy] socket, then the "
    "`stats socket` of --haproxy-config or /etc/haproxy/haproxy.cfg]",
    show_default=False,
)
CheckHaproxyConfigOpt = typer.Option(
    None,
    "--haproxy-config",
    metavar="FILE",
    help="haproxy.cfg to read the stats socket from.",
    show_default=False,
)
CheckDeepOpt = typer.Option(
    None,
    "--deep/--no-deep",
    help="Also ask the runtime API: show info answers, not stopping, every frontend OPEN; "
    "backends with no server UP are reported, not failed (the pair shares them) "
    "[default: [checks.haproxy] deep, else off]",
    show_default=False,
)
CheckMinUpOpt = typer.Option(
    None,
    "--min-up",
    min=0,
    metavar="N",
    help="Fail the node when a backend has fewer than N servers UP (only for backends that "
    "differ per node; by default they are reported, not failed)",
    show_default=False,
)
CheckIgnoreBackendOpt = typer.Option(
    None,
    "--ignore-backend",
    metavar="NAME",
    help="A backend --deep does not judge; repeatable, added to [checks.haproxy] ignore_backends.",
    show_default=False,
)
CheckProcessNameArg = typer.Argument(
    ..., metavar="NAME", help="Exact process name, as killall matches it."
)


def _run_check(name: str, *args: str, **options: object) -> int:
    """Rebuild the command line and hand it to the check runner (the real parser)."""
    from ha_notify.checks.runner import main as check_main

    argv = [name, *args]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return check_main(argv)


@check_app.command("haproxy")
def check_haproxy(
    pidfile: Optional[str] = CheckPidfileOpt,
    no_pidfile: bool = CheckNoPidfileOpt,
    socket: Optional[str] = CheckSocketOpt,
    haproxy_config: Optional[str] = CheckHaproxyConfigOpt,
    deep: Optional[bool] = CheckDeepOpt,
    min_up: Optional[int] = CheckMinUpOpt,
    ignore_backend: Optional[list[str]] = CheckIgnoreBackendOpt,
    timeout: Optional[float] = CheckTimeoutOpt,
    config: Optional[str] = ConfigOpt,
) -> int:
    """Is haproxy alive (pidfile or /proc, master-worker aware) and, with --deep, serving?"""
    return _run_check(
        "haproxy",
        pidfile=pidfile,
        no_pidfile=no_pidfile,
        socket=socket,
        haproxy_config=haproxy_config,
        deep=deep,
        no_deep=deep is False,
        min_up=min_up,
        ignore_backend=ignore_backend,
        timeout=timeout,
        config=config,
    )


@check_app.command("process")
def check_process(
    name: str = CheckProcessNameArg,
    pidfile: Optional[str] = CheckPidfileOpt,
    no_pidfile: bool = CheckNoPidfileOpt,
    timeout: Optional[float] = CheckTimeoutOpt,
    config: Optional[str] = ConfigOpt,
) -> int:
    """Is a live (not zombie) process called NAME running? Pidfile first, then /proc."""
    return _run_check(
        "process", name, pidfile=pidfile, no_pidfile=no_pidfile, timeout=timeout, config=config
    )
