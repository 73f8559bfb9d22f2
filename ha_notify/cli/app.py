"""The typer CLI: wires commands to functions; the one place errors become exit codes."""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
import typer.core
import typer.main

from ha_notify import __version__
from ha_notify import log as logsetup
from ha_notify.argv import hoist_config, optional_value
from ha_notify.cli import compat as cli_compat
from ha_notify.cli.check import check_app
from ha_notify.cli.configuration import config_app
from ha_notify.cli.flush import flush
from ha_notify.cli.options import ConfigOpt
from ha_notify.config import load
from ha_notify.constants import STATES
from ha_notify.errors import ConfigError, ExitCode, HaNotifyError, UsageError, exit_code
from ha_notify.event import Event, parse_kind, parse_name, parse_priority, parse_state
from ha_notify.notify.engine import Notifier, StateChange
from ha_notify.notify.report import SENT

# typer escapes "[required]" for rich whenever rich is importable, even with
# rich_markup_mode=None, and plain help showed "\[required]". This CLI never uses rich.
typer.core.HAS_RICH = False
cli_compat.apply()
HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="ha-notify",
    help="Failover notifications and health checks for HAProxy + keepalived pairs. "
    "Add --verbose anywhere (except to check) to log to stderr too; -c FILE may also come "
    "before the command.",
    context_settings=HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
app.add_typer(check_app, name="check")
log = logging.getLogger("ha_notify.cli")


def _version(value: bool) -> None:
    if value:
        print(f"ha-notify {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Options before the command (the app's help text is Typer(help=...) above)."""


InstanceOpt = typer.Option(None, "--instance", "-i", help="keepalived instance name.")
PriorityOpt = typer.Option(None, "--priority", "-p", help="VRRP priority (0-255).")
DryRunOpt = typer.Option(False, "--dry-run", help="Print what would be sent; send nothing.")


def _notify(
    state: str,
    instance: Optional[str],
    priority: Optional[int],
    config: Optional[str],
    dry_run: bool,
    kind: str = "INSTANCE",
) -> int:
    parse_priority(None if priority is None else str(priority))
    parsed = parse_state(state)
    try:
        cfg = load(config)
    except ConfigError as exc:
        # Say loudly which failover went unreported, not only what to fix.
        what = f"{kind} {instance or '(default instance)'} {parsed.upper()}"
        raise ConfigError(f"{exc} -- the {what} event was NOT sent") from exc
    name = parse_name(instance) if instance is not None else cfg.general.instance
    req = StateChange(parsed, name, kind, priority)
    notifier = Notifier(cfg)
    if dry_run:
        _print_rendered(notifier, notifier.preview(req), None)
        _print_folded(notifier, req)
        return ExitCode.OK
    report = notifier.notify(req)
    for line in report.lines():
        print(f"ha-notify: {line}", file=sys.stderr)
    return ExitCode.FAILED if report.failed else ExitCode.OK


def _state_command(state: str) -> None:
    def command(
        instance: Optional[str] = InstanceOpt,
        priority: Optional[int] = PriorityOpt,
        config: Optional[str] = ConfigOpt,
        dry_run: bool = DryRunOpt,
    ) -> int:
        return _notify(state, instance, priority, config, dry_run)

    command.__doc__ = (
        f"Notify that this node entered {state.upper()} (for notify_{state})."
        if state != "deleted"
        else "Notify that keepalived DELETED the instance (it reports so through notify only)."
    )
    app.command(name=state)(command)


for _state in STATES:  # deleted too: keepalived's DELETED state
    _state_command(_state)


@app.command()
def notify(
    type_: str = typer.Argument(..., metavar="TYPE", help="INSTANCE or GROUP"),
    name: str = typer.Argument(..., help="Instance or group name, e.g. VI_1"),
    state: str = typer.Argument(..., help="MASTER, BACKUP, FAULT, STOP or DELETED"),
    priority: Optional[str] = typer.Argument(
        None, help="VRRP priority 0-255 (keepalived appends it)"
    ),
    config: Optional[str] = ConfigOpt,
    dry_run: bool = DryRunOpt,
) -> int:
    """keepalived's generic form: notify "/opt/ha-notify/bin/ha-notify notify" appends TYPE NAME
    STATE PRIORITY."""
    kind = parse_kind(type_)
    prio = parse_priority(priority)
    return _notify(state, parse_name(name), prio, config, dry_run, kind)


@app.command()
def fifo(
    fifo_path: Path = typer.Argument(
        ...,
        metavar="FIFO_PATH",
        help="keepalived's notify FIFO (global_defs notify_fifo), created if missing",
    ),
    config: Optional[str] = ConfigOpt,
) -> int:
    """Read keepalived's notify FIFO in order, forever (for notify_fifo_script)."""
    from ha_notify.notify.fifo import serve

    return serve(fifo_path, load(config))


app.command()(flush)


@app.command("test")
def test_(
    channel: Optional[str] = typer.Option(None, "--channel", help="Only this channel."),
    config: Optional[str] = ConfigOpt,
) -> int:
    """Send a clearly marked test notification through the channels."""
    cfg = load(config)
    if not cfg.channels:
        raise UsageError(f"no channel is configured (config: {cfg.path or 'none found'})")
    results = Notifier(cfg).test(channel)
    for r in results:
        print(f"{r.channel}: {'ok' if r.status == SENT else f'FAILED: {r.why}'}")
    return ExitCode.OK if all(r.status == SENT for r in results) else ExitCode.FAILED


def _print_rendered(notifier: Notifier, event: Event, channel: Optional[str]) -> None:
    from ha_notify.channels import Context as ChannelContext
    from ha_notify.channels import build
    from ha_notify.plugin import Preview

    names = [channel] if channel else [c.name for c in notifier.config.channels]
    if not names:
        r = notifier.renderer
        print(f"Subject: {r.subject(event)}\n\n{r.render('body.txt', event)}")
        return
    for name in names:
        cfg = notifier.config.channel(name)
        built = build(cfg, ChannelContext(notifier.renderer, notifier.config.general))
        print(f"===== channel {name} ({cfg.type}) =====")
        if isinstance(built, Preview):  # the optional capability of ha_notify.plugin
            print(built.preview(event))
        else:
            print(notifier.renderer.render("chat.md", event))


@app.command()
def render(
    state: str = typer.Argument(..., help="master, backup, fault, stop or deleted (any case)"),
    channel: Optional[str] = typer.Option(None, "--channel", help="Only this channel."),
    instance: Optional[str] = InstanceOpt,
    config: Optional[str] = ConfigOpt,
) -> int:
    """Print exactly what would be sent for STATE; send nothing, record nothing."""
    cfg = load(config)
    notifier = Notifier(cfg)
    name = parse_name(instance) if instance is not None else cfg.general.instance
    req = StateChange(parse_state(state), name)
    _print_rendered(notifier, notifier.preview(req), channel)
    _print_folded(notifier, req)
    return ExitCode.OK


def _print_folded(notifier: Notifier, req: StateChange) -> None:
    note = notifier.folded(req)
    if note:
        print(f"NOTE: {note}")


@app.command()
def status(
    config: Optional[str] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> int:
    """Last state per instance, pending deliveries per channel, oldest age, last error."""
    from ha_notify.cli.status import collect, format_text

    report = collect(load(config))
    print(json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_text(report))
    return ExitCode.OK


def _topics(incomplete: str) -> list[str]:
    from ha_notify.examples import topics

    return [t for t in topics() if t.startswith(incomplete)]


@app.command()
def example(
    topic: Optional[str] = typer.Argument(
        None,
        help="config, keepalived, haproxy, systemd, ... (none: list them)",
        autocompletion=_topics,
    ),
    name: Optional[str] = typer.Argument(
        None, metavar="[FILE]", help="Only this file of the topic (a unique part of its name)."
    ),
) -> int:
    """Print the shipped reference files, e.g. ha-notify example config > config.toml."""
    from ha_notify.examples import show

    sys.stdout.write(show(topic, name))
    return ExitCode.OK


@app.command()
def doctor(
    config: Optional[str] = ConfigOpt,
    keepalived_config: Path = typer.Option(
        Path("/etc/keepalived/keepalived.conf"),
        "--keepalived-config",
        help="keepalived.conf to inspect.",
    ),
    send: bool = typer.Option(False, "--send", help="Really send a test through each channel."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> int:
    """Check an installed node: config, secrets, state_dir, channels, keepalived wiring."""
    from ha_notify import doctor as doc

    findings = doc.collect(config, keepalived_config, refusal, send=send)
    print(doc.report(findings, as_json=as_json))
    return ExitCode.FAILED if any(f.status == doc.FAIL for f in findings) else ExitCode.OK


def refusal(sub: str, args: list[str]) -> Optional[str]:
    """How this CLI would refuse ``ha-notify SUB ARGS``, or None if it accepts them (doctor
    checks keepalived's script lines with it)."""
    import click

    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    root = click.Context(group, info_name="ha-notify")
    command = group.get_command(root, sub)
    if command is None:
        return f"ha-notify has no command {sub!r}"
    try:
        command.make_context(sub, list(args), parent=root)
    except click.exceptions.Exit:
        return None
    except click.ClickException as exc:
        return str(exc.format_message())
    return None


@app.command()
def watch(
    config: Optional[str] = ConfigOpt,
    once: bool = typer.Option(
        False, "--once", help="One round: print the verdicts and exit like `check` (0/1)."
    ),
) -> int:
    """Resident: check haproxy in-process every [watch] interval, write track_file and metrics."""
    from ha_notify.watch import loop

    return loop.once(config) if once else loop.serve(config)


def _normalise(args: list[str]) -> list[str]:
    """``ha-notify MASTER`` works like ``master``; ``-c FILE`` may come first; a typo of a
    command gets "did you mean", one of a state (``falut``) names the states."""
    args = hoist_config(args, {g.name or "" for g in app.registered_groups})
    if args[:1] == ["flush"]:
        args = optional_value(args, "--retry-dead")
    if not args or args[0].startswith("-"):
        return args
    commands = {g.name or "" for g in app.registered_groups} | {
        c.name or getattr(c.callback, "__name__", "").rstrip("_") for c in app.registered_commands
    }
    word = args[0]
    if word in commands:
        return args
    if word.lower() in STATES and word.lower() in commands:
        return [word.lower(), *args[1:]]
    close = difflib.get_close_matches(word.lower(), sorted(commands), n=1, cutoff=0.6)
    if close and close[0] not in STATES:
        raise UsageError(f"unknown command {word!r}; did you mean {close[0]!r}?")
    try:
        parse_state(word)  # raises, naming the accepted states
    except UsageError as exc:
        hint = f"; did you mean {close[0]!r}?" if close else "; see ha-notify --help for commands"
        raise UsageError(f"{exc}{hint}") from None
    raise UsageError(f"{word!r} is not a command; see ha-notify --help")


def run(args: list[str]) -> int:
    """Run the CLI; the only place exceptions become exit codes."""
    # keepalived runs scripts with umask 0177, which would make every folder we create
    # (spool/, dead/) untraversable even by its owner; files and folders stay private.
    os.umask(0o077)
    logsetup.setup(verbose="--verbose" in args)
    args = [a for a in args if a != "--verbose"]
    try:
        result = app(args=_normalise(args), prog_name="ha-notify", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return 130
    except HaNotifyError as exc:
        # Usage and configuration errors exit 2 (nothing was sent; the message says what to
        # fix); a spool, template or channel failure exits 1.
        logsetup.error(str(exc))
        return exit_code(exc)
    except OSError as exc:
        logsetup.error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
        return ExitCode.FAILED
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's usage errors
            logsetup.error(exc.format_message())
            return ExitCode.USAGE
        log.debug("internal error", exc_info=True)
        logsetup.error(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        return ExitCode.FAILED
    return int(result) if isinstance(result, int) else ExitCode.OK
