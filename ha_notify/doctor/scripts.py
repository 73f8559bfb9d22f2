"""The keepalived script lines that run ha-notify: their words, and would they work.

Each line is parsed the way keepalived will run it (with what keepalived appends) by
ha-notify's own parsers: a typo'd state, a subcommand under the wrong keyword or an option
ha-notify refuses is a fail; a script that is not ha-notify gets a suggestion.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ha_notify.constants import SCRIPT_STATES, STATES
from ha_notify.doctor import Finding, Validate, fail, ok, warn
from ha_notify.errors import HaNotifyError
from ha_notify.keepalived_conf import FIFO_KEYWORDS, ScriptLine

STATE_COMMANDS = SCRIPT_STATES
# What keepalived appends to each kind of script line, for parsing the line as it will run.
APPENDED = {"notify": ["INSTANCE", "VI_1", "MASTER", "100"]}
FIFO_APPENDED = ["/run/keepalived/notify.fifo"]


def installed_path() -> str:
    """The absolute path of this ha-notify, for the fixes."""
    found = Path(sys.executable).parent / "ha-notify"
    if found.exists():
        return str(found)
    return shutil.which("ha-notify") or "/opt/ha-notify/bin/ha-notify"


@dataclass(frozen=True)
class Call:
    """One keepalived script line that runs ha-notify: the line and its words."""

    line: ScriptLine
    argv: list[str]
    user: str
    group: Optional[str]

    @property
    def sub(self) -> str:
        return self.argv[1] if len(self.argv) > 1 else ""

    def option(self, *names: str) -> Optional[str]:
        """The value of ``--config PATH`` (or ``--config=PATH``) in this line, if any."""
        for i, word in enumerate(self.argv):
            for name in names:
                if word == name and i + 1 < len(self.argv):
                    return self.argv[i + 1]
                if word.startswith(name + "="):
                    return word.partition("=")[2]
        return None


def ha_notify_argv(argv: list[str]) -> Optional[list[str]]:
    """``argv`` as ``[program, sub, ...]`` when it runs ha-notify, else None."""
    if not argv:
        return None
    if os.path.basename(argv[0]) == "ha-notify":
        return argv
    if os.path.basename(argv[0]).startswith("python") and argv[1:3] == ["-m", "ha_notify"]:
        return [argv[0], *argv[3:]]
    return None


def line_name(line: ScriptLine) -> str:
    """How findings name a script line: ``notify keepalived.conf:12``."""
    return f"{line.keyword} {line.file.name}:{line.line}"


def _hook_state(keyword: str) -> Optional[str]:
    state = keyword[len("notify_") :] if keyword.startswith("notify_") else ""
    return state if state in STATE_COMMANDS else None


def other_findings(line: ScriptLine, argv: list[str]) -> list[Finding]:
    """A script that is not ha-notify: a typo'd state is a fail, the rest a suggestion."""
    name = line_name(line)
    program = os.path.basename(argv[0]) if argv else ""
    if line.keyword == "script":
        if program == "killall" and "-0" in argv:
            return [
                warn(
                    name,
                    f"{line.command!r} says yes for a hung or zombie haproxy",
                    "use a pgrep of haproxy's pidfile for liveness (ha-notify example "
                    "keepalived) and "
                    f'script "{installed_path()} check haproxy --deep" for the rest',
                )
            ]
        return []
    for word in argv[1:]:
        low = word.lower()
        if low not in STATES and difflib.get_close_matches(low, STATES, n=1, cutoff=0.6):
            expected = _hook_state(line.keyword) or "a state"
            return [
                fail(
                    name,
                    f"{program} is called with {word!r}, not {expected}: that notification "
                    "never goes out",
                    f'{line.keyword} "{installed_path()} {_hook_state(line.keyword) or "notify"}"',
                )
            ]
    if line.keyword in FIFO_KEYWORDS:
        return []
    fix_sub = _hook_state(line.keyword) or "notify"
    return [
        warn(
            name,
            f"runs {program or line.command!r}, not ha-notify",
            f'{line.keyword} "{installed_path()} {fix_sub}" (spooled, retried, TLS, no password '
            "in the script)",
        )
    ]


def call_finding(call: Call, validate: Validate) -> Finding:
    """Does this line run ha-notify the way keepalived will call it? ``validate`` is the
    CLI's own parser (given by the CLI: doctor never imports it)."""
    line = call.line
    name = line_name(line)
    sub, rest = call.sub, call.argv[2:]
    bin_path = call.argv[0] if os.path.isabs(call.argv[0]) else installed_path()
    kw = line.keyword
    try:
        if kw == "script":
            return _check_line(name, call)
        if kw in FIFO_KEYWORDS:
            expected, args = "fifo", [*rest, *FIFO_APPENDED]
        elif kw == "notify":
            expected, args = "notify", [*rest, *APPENDED["notify"]]
        else:
            expected, args = _hook_state(kw) or sub.lower(), rest
        got = sub.lower() if sub.lower() in STATE_COMMANDS else sub
        if got != expected:
            return fail(name, _mismatch(kw, sub, expected), _fixed(call, bin_path, expected))
        error = validate(got, args)
        if error:
            return fail(
                name,
                f"ha-notify would refuse {line.command!r}: {error}",
                _fixed(call, bin_path, expected),
            )
    except HaNotifyError as exc:
        return fail(name, str(exc), _fixed(call, bin_path, _hook_state(kw) or "notify"))
    config = call.option("--config", "-c")
    if config and not Path(config).is_file():
        return fail(name, f"--config {config} does not exist", "fix the path after --config")
    return ok(name, f"runs {shlex.join(call.argv)!s} as {call.user}")


def _fixed(call: Call, bin_path: str, sub: str) -> str:
    """The line as it should read: the right subcommand, the same --config if it had one."""
    argv = [bin_path, sub]
    config = call.option("--config", "-c")
    if config:
        argv += ["--config", config]
    return f'{call.line.keyword} "{shlex.join(argv)}"'


def _mismatch(keyword: str, sub: str, expected: str) -> str:
    from ha_notify.event import parse_state

    if sub.lower() not in STATE_COMMANDS and expected in STATE_COMMANDS:
        parse_state(sub)  # an unknown state such as `falut`: raises, naming the states
    if keyword == "notify":
        return (
            f"`ha-notify {sub}` under notify: keepalived appends TYPE NAME STATE PRIORITY, "
            "which only `ha-notify notify` accepts"
        )
    if keyword in FIFO_KEYWORDS:
        return f"`ha-notify {sub}` under {keyword}: the FIFO reader is `ha-notify fifo`"
    return f"{keyword} runs `ha-notify {sub or '(nothing)'}`: it would report the wrong state"


def _check_line(name: str, call: Call) -> Finding:
    from ha_notify.checks.runner import build_options, parse_args, resolve
    from ha_notify.checks.settings import ChecksSettings

    if call.sub != "check":
        return fail(
            name,
            f"a vrrp_script must run `ha-notify check ...`, not `ha-notify {call.sub}`",
            f'script "{call.argv[0]} check haproxy --deep"',
        )
    request = parse_args(call.argv[2:])
    build_options(request, ChecksSettings(None, "", {}), 0.0)  # --timeout, --min-up
    resolve(request.name)
    return ok(name, f"runs {shlex.join(call.argv)} as {call.user}")
