"""keepalived.conf's side of doctor: which scripts call ha-notify, how, as whom, from where."""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ha_notify.config import STATES
from ha_notify.doctor import Finding, access, fail, ok, warn
from ha_notify.errors import HaNotifyError
from ha_notify.keepalived_conf import FIFO_KEYWORDS, KeepalivedConf, ScriptLine, parse

STATE_COMMANDS = ("master", "backup", "fault", "stop")
DEFAULT_USER = "keepalived_script"
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


@dataclass
class Wiring:
    """keepalived.conf as parsed (None when missing) and the ha-notify lines in it."""

    path: Path
    conf: Optional[KeepalivedConf] = None
    error: str = ""
    calls: list[Call] = field(default_factory=list)
    others: list[tuple[ScriptLine, list[str]]] = field(default_factory=list)
    broken: list[tuple[ScriptLine, str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Wiring:
        wired = cls(path)
        if not path.is_file():
            wired.error = f"{path} does not exist" if not path.exists() else f"{path} is not a file"
            return wired
        wired.conf = parse(path)
        user, group = wired.default_user()
        for line in wired.conf.scripts:
            try:
                argv = shlex.split(line.command)
            except ValueError as exc:
                wired.broken.append((line, f"cannot split the command: {exc}"))
                continue
            words = ha_notify_argv(argv)
            if words is None:
                wired.others.append((line, argv))
            else:
                run_as = (line.user, line.group) if line.user else (user, group)
                wired.calls.append(Call(line, words, run_as[0], run_as[1]))
        return wired

    def default_user(self) -> tuple[str, Optional[str]]:
        """keepalived's script user: script_user, else keepalived_script (if it exists and
        enable_script_security is on), else root."""
        conf = self.conf
        if conf is not None and conf.script_user:
            return conf.script_user, conf.script_group
        if conf is not None and conf.script_security and access.exists(DEFAULT_USER):
            return DEFAULT_USER, None
        return "root", None

    def runners(self) -> list[access.User]:
        """The users that run ha-notify's notify and fifo lines (they need state_dir)."""
        if self.conf is None:
            return [access.current()]
        wanted = [(c.user, c.group) for c in self.calls if c.sub != "check"]
        wanted = wanted or [self.default_user()]
        users: list[access.User] = []
        for name, group in dict.fromkeys(wanted):
            try:
                users.append(access.lookup(name, group))
            except KeyError:
                continue  # reported by the script user check
        return users

    def config_path(self) -> Optional[str]:
        """The --config that keepalived's ha-notify lines pass, if they agree on one."""
        named = {c.option("--config", "-c") for c in self.calls} - {None}
        return named.pop() if len(named) == 1 else None

    def findings(self) -> list[Finding]:
        if self.conf is None:
            return [
                fail(
                    "keepalived.conf",
                    self.error,
                    "pass --keepalived-config PATH (the file keepalived -f reads); "
                    "contrib/keepalived/ has a reference config wired to ha-notify",
                )
            ]
        found: list[Finding] = [self._summary(), self._security(), *self._users()]
        for line, reason in self.broken:
            found.append(fail(_name(line), reason, "fix the quotes of this line"))
        for line, argv in self.others:
            found += _other(line, argv)
        checked: set[tuple[str, str, Optional[str]]] = set()
        for call in self.calls:
            found.append(_call(call))
            key = (call.argv[0], call.user, call.group)
            if key not in checked:
                checked.add(key)
                found += _path(call, self.conf.script_security)
        return found

    def _summary(self) -> Finding:
        assert self.conf is not None
        conf = self.conf
        detail = (
            f"{self.path}: {len(conf.files)} file(s), {len(conf.scripts)} script line(s), "
            f"{len(self.calls)} call ha-notify"
        )
        if conf.problems:
            return warn("keepalived.conf", "; ".join(conf.problems), "fix the include lines")
        if not self.calls:
            return warn(
                "keepalived.conf",
                detail,
                f'add notify "{installed_path()} notify" to each vrrp_instance '
                "(see contrib/keepalived/)",
            )
        return ok("keepalived.conf", detail)

    def _security(self) -> Finding:
        assert self.conf is not None
        if self.conf.script_security:
            return ok("script_security", "enable_script_security is on")
        return warn(
            "script_security",
            "enable_script_security is not set: keepalived runs scripts as root even when a "
            "non-root user could replace them",
            "add enable_script_security to global_defs",
        )

    def _users(self) -> list[Finding]:
        found = []
        names = dict.fromkeys([self.default_user(), *((c.user, c.group) for c in self.calls)])
        for name, group in names:
            label = name if group is None else f"{name} {group}"
            try:
                user = access.lookup(name, group)
            except KeyError:
                found.append(
                    fail(
                        "script user",
                        f"script user {label} does not exist",
                        f"useradd --system --no-create-home --shell /usr/sbin/nologin {name}"
                        " (or fix script_user in global_defs)",
                    )
                )
                continue
            found.append(ok("script user", f"ha-notify runs as {user} (uid {user.uid})"))
        return found


def _name(line: ScriptLine) -> str:
    return f"{line.keyword} {line.file.name}:{line.line}"


def _hook_state(keyword: str) -> Optional[str]:
    state = keyword[len("notify_") :] if keyword.startswith("notify_") else ""
    return state if state in STATE_COMMANDS else None


def _other(line: ScriptLine, argv: list[str]) -> list[Finding]:
    """A script that is not ha-notify: a typo'd state is a fail, the rest a suggestion."""
    name = _name(line)
    program = os.path.basename(argv[0]) if argv else ""
    if line.keyword == "script":
        if program == "killall" and "-0" in argv:
            return [
                warn(
                    name,
                    f"{line.command!r} says yes for a hung or zombie haproxy",
                    "use vrrp_track_process for liveness and "
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


def _click_error(sub: str, args: list[str]) -> Optional[str]:
    """How ha-notify's own parser would refuse ``sub args``, or None if it accepts them."""
    import click
    import typer.main

    from ha_notify.cli import app

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


def _call(call: Call) -> Finding:
    """Does this line run ha-notify the way keepalived will call it?"""
    line = call.line
    name = _name(line)
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
            return fail(name, _mismatch(kw, sub, expected), f'{kw} "{bin_path} {expected}"')
        error = _click_error(got, args)
        if error:
            return fail(
                name,
                f"ha-notify would refuse {line.command!r}: {error}",
                f'{kw} "{bin_path} {expected}"',
            )
    except HaNotifyError as exc:
        return fail(name, str(exc), f'{kw} "{bin_path} {_hook_state(kw) or "notify"}"')
    config = call.option("--config", "-c")
    if config and not Path(config).is_file():
        return fail(name, f"--config {config} does not exist", "fix the path after --config")
    return ok(name, f"runs {shlex.join(call.argv)!s} as {call.user}")


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
    from ha_notify.checks.runner import parse_args, resolve

    if call.sub != "check":
        return fail(
            name,
            f"a vrrp_script must run `ha-notify check ...`, not `ha-notify {call.sub}`",
            f'script "{call.argv[0]} check haproxy --deep"',
        )
    request = parse_args(call.argv[2:])
    resolve(request.name)
    return ok(name, f"runs {shlex.join(call.argv)} as {call.user}")


def _path(call: Call, script_security: bool) -> list[Finding]:
    """The program's path: absolute, present, runnable by its user, safe from non-root users."""
    program = call.argv[0]
    name = "script path"
    if not os.path.isabs(program):
        return [
            fail(
                name,
                f"{program!r} is not an absolute path: keepalived searches PATH and "
                "enable_script_security cannot vouch for it",
                f"use the absolute path, e.g. {installed_path()}",
            )
        ]
    try:
        user = access.lookup(call.user, call.group)
    except KeyError:
        return []  # reported by the script user check
    path = Path(program)
    if not path.is_file():
        return [
            fail(
                name,
                f"{program} does not exist",
                f"pip install ha-notify, or fix the path (this node has {installed_path()})",
            )
        ]
    found: list[Finding] = []
    why = access.reach(path, user, access.X)
    if why is None:
        interp = access.interpreter(path)
        why = None if interp is None else access.reach(interp, user, access.X)
        if why is not None:
            why = f"its interpreter: {why}"
    if why is not None:
        found.append(
            fail(
                name,
                f"{user.name} cannot run {program}: {why}",
                "install ha-notify where the script user can run it: python3 -m venv "
                "/opt/ha-notify && /opt/ha-notify/bin/pip install ha-notify",
            )
        )
    unsafe = access.script_unsafe(path)
    if unsafe is not None:
        runs_as_root = user.uid == 0 or user.gid == 0
        detail = f"{unsafe.reason}: "
        if runs_as_root and script_security:
            detail += "keepalived refuses it (Unsafe permissions found)"
        elif runs_as_root:
            detail += "anyone in that group can replace a script keepalived runs as root"
        else:
            detail += f"anyone in that group can replace what {user.name} runs"
        fix = (
            f"{unsafe.fix}, or install ha-notify into a root-owned folder "
            "(/usr/bin, or python3 -m venv /opt/ha-notify)"
        )
        found.append((fail if runs_as_root else warn)(name, detail, fix))
    if not found:
        found.append(
            ok(name, f"{program}: root-owned, not writable by others, runnable by {user.name}")
        )
    return found
