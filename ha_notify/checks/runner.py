"""``ha-notify check NAME [OPTIONS]``: the outer function of the check commands.

``ha_notify.__main__`` calls :func:`main` before typer is imported, so this module parses its
own arguments (typer's ``check`` commands in ``ha_notify.cli.app`` only exist for ``--help`` and
forward here), turns errors into exit codes, prints one line on stderr when unhealthy, and
tells syslog when a result changes. Nothing here imports more than the interpreter already
has loaded, on the healthy path; ``ha_notify.errors`` is imported only when an error occurs.
"""

from __future__ import annotations

import os
import sys
from time import monotonic

from ha_notify.checks import CheckOptions
from ha_notify.checks.cmdline import CHECKS, OPTIONS
from ha_notify.constants import CHECKS_GROUP, EXIT_FAILED, EXIT_OK, EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from ha_notify.checks import CheckResult
    from ha_notify.checks.base import Check
    from ha_notify.checks.settings import ChecksSettings

# ha_notify.errors.ExitCode's values, without importing enum on the healthy path.
HEALTHY, UNHEALTHY, USAGE = EXIT_OK, EXIT_FAILED, EXIT_USAGE
DEFAULT_TIMEOUT = 2.0
BUILTIN = {"haproxy": "ha_notify.checks.haproxy:check", "process": "ha_notify.checks.process:check"}

# Which check accepts which option: checks/cmdline.py, shared with --help (checks/usage.py).
_ALLOWED = {name: frozenset(spec[1]) for name, spec in CHECKS.items()}


class CheckArgs:
    """The command line of one check, parsed but not yet merged with the config."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.args: list[str] = []
        self.values: dict[str, str] = {}
        self.flags: set[str] = set()
        self.ignore_backends: list[str] = []


def _usage(message: str) -> Exception:
    from ha_notify.errors import UsageError

    return UsageError(message)


def parse_args(argv: list[str]) -> CheckArgs:
    """Parse ``NAME [ARGS] [OPTIONS]`` (``--opt VALUE`` and ``--opt=VALUE``)."""
    if not argv or argv[0].startswith("-"):
        raise _usage(
            f"which check? usage: ha-notify check {'|'.join(CHECKS)} NAME [OPTIONS] "
            "(see ha-notify check --help)"
        )
    request = CheckArgs(argv[0])
    allowed = _ALLOWED.get(request.name)
    items = iter(argv[1:])
    only_args = False
    for item in items:
        if only_args or not item.startswith("-") or item == "-":
            request.args.append(item)
            continue
        if item == "--":
            only_args = True
            continue
        option, has_value, value = item.partition("=")
        known = OPTIONS.get(option)
        if allowed is None and option not in ("--config", "-c", "--timeout"):
            request.args.append(item)  # a third-party check parses its own options
            continue
        if known is None or (allowed is not None and option not in allowed):
            raise _usage(f"check {request.name}: unknown option {option}; usage: {_text(request)}")
        attribute, metavar, _ = known
        takes_value = bool(metavar)
        if takes_value and not has_value:
            value = next(items, "")
            if not value or value.startswith("--"):
                raise _usage(f"check {request.name}: {option} needs a value")
        elif has_value and not takes_value:
            raise _usage(f"check {request.name}: {option} takes no value")
        if attribute == "ignore_backend":
            request.ignore_backends.append(value)
        elif takes_value:
            request.values[attribute] = value
        else:
            request.flags.add(attribute)
    if {"deep", "no_deep"} <= request.flags:
        raise _usage(f"check {request.name}: --deep and --no-deep exclude each other")
    if "no_pidfile" in request.flags and "pidfile" in request.values:
        raise _usage(f"check {request.name}: --pidfile and --no-pidfile exclude each other")
    return request


def _text(request: CheckArgs) -> str:
    from ha_notify.checks.usage import usage

    return usage(request.name)


def _number(request: CheckArgs, key: str, kind: type, option: str) -> Optional[float]:
    raw = request.values.get(key)
    if raw is None:
        return None
    value: Optional[float]
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if kind is float:
        import math  # only when --timeout is given

        from ha_notify.constants import MAX_SECONDS

        good = value is not None and math.isfinite(value) and 0 < value <= MAX_SECONDS
        what = f"a number of seconds > 0 and <= {MAX_SECONDS:g}"
    else:
        good = value is not None and value >= 0
        what = "an integer >= 0"
    if not good:
        raise _usage(f"check {request.name}: {option} expects {what}, got {raw!r}")
    return value


def build_options(request: CheckArgs, settings: ChecksSettings, start: float) -> CheckOptions:
    """Merge: command line over ``[checks.NAME]`` over defaults."""
    conf = settings.for_check(request.name, tuple(request.args))
    timeout = _number(request, "timeout", float, "--timeout") or conf.timeout
    timeout = timeout or DEFAULT_TIMEOUT
    min_up = _number(request, "min_up", int, "--min-up")
    pidfile = request.values.get("pidfile", conf.pidfile)
    if "deep" in request.flags or "no_deep" in request.flags:
        deep = "deep" in request.flags
    else:
        deep = bool(conf.deep)
    return CheckOptions(
        name=request.name,
        args=tuple(request.args),
        pidfile=pidfile or None,
        no_pidfile="no_pidfile" in request.flags or pidfile == "",
        socket=request.values.get("socket") or conf.socket,
        haproxy_config=request.values.get("haproxy_config") or conf.haproxy_config,
        deep=deep,
        timeout=timeout,
        deadline=start + timeout,
        min_up=int(min_up)
        if min_up is not None
        else (conf.min_up if conf.min_up is not None else 1),
        backends_fail=bool(min_up if min_up is not None else conf.min_up),
        ignore_backends=frozenset(conf.ignore_backends) | frozenset(request.ignore_backends),
        table=conf.table if request.name not in BUILTIN else None,
    )


def resolve(name: str) -> Check:
    """The check called ``name``: built-ins by direct import, others by entry point."""
    if name == "haproxy":
        from ha_notify.checks.haproxy import check

        return check
    if name == "process":
        from ha_notify.checks.process import check as process_check

        return process_check
    return _plugin(name)


def _plugin(name: str) -> Check:
    from ha_notify import discovery
    from ha_notify.errors import CheckError

    found = discovery.third_party(CHECKS_GROUP, name, {})
    if found is None:
        raise CheckError(
            f"unknown check {name!r}; built-in checks: {', '.join(BUILTIN)} "
            f"(plugins register the entry point group {CHECKS_GROUP})"
        )
    try:
        check: Check = found.load()
    except Exception as exc:  # a broken plugin is a setup problem, not an unhealthy service
        raise CheckError(f"check plugin {name!r} failed to load: {exc}") from exc
    return check


def run(argv: list[str]) -> tuple[int, Optional[CheckResult], str]:
    """Parse, configure and run one check: (exit code, result, error message)."""
    start = monotonic()
    run_dir = None
    try:
        from ha_notify.checks.settings import load
        from ha_notify.checks.state import record

        request = parse_args(argv)
        settings = load(request.values.get("config"))
        run_dir = settings.run_dir
        options = build_options(request, settings, start)
        result = resolve(request.name)(options)
        record(run_dir, argv, result)
    except Exception as exc:  # a traceback would also be exit 1, but says nothing useful
        code, error = _failure(exc, argv, run_dir)
        return code, None, error
    return (HEALTHY if result.healthy else UNHEALTHY), result, ""


def _failure(exc: Exception, argv: list[str], run_dir: Optional[str]) -> tuple[int, str]:
    """Exit code and one-line message of an error; an unexpected one also goes to syslog."""
    # Imported here so that a healthy run never loads ha_notify.errors (and typing).
    import contextlib

    from ha_notify.checks import CheckResult
    from ha_notify.checks.settings import bootstrap_run_dir
    from ha_notify.checks.state import record
    from ha_notify.errors import HaNotifyError, exit_code

    if isinstance(exc, HaNotifyError):
        return exit_code(exc), str(exc)
    detail = " ".join(str(exc).split())
    error = f"internal error in check: {type(exc).__name__}{': ' if detail else ''}{detail}"
    # keepalived drops stderr: syslog hears it too (on change, like any result), best effort.
    with contextlib.suppress(Exception):
        record(run_dir or bootstrap_run_dir(), argv, CheckResult(False, error))
    return exit_code(exc), error


def main(argv: list[str]) -> int:
    """Run ``ha-notify check ARGV``; the return value is the exit code."""
    builtin = argv[0] if argv and argv[0] in CHECKS else ""
    if {"-h", "--help"} & set(argv if builtin else argv[:1]):  # a plugin parses its own
        from ha_notify.checks.usage import help_text

        sys.stdout.write(help_text(builtin))
        return HEALTHY
    code, result, error = run(argv)
    if result is None:
        sys.stderr.write(f"ha-notify: error: {error}\n")
    elif not result.healthy:
        sys.stderr.write(f"unhealthy: {result.reason}\n")
    elif os.isatty(1):
        sys.stdout.write(f"healthy: {result.reason}\n")
    if result is not None and result.notes:
        from ha_notify.checks import shared_line

        sys.stderr.write(f"{shared_line(result.notes)}\n")
    return code
