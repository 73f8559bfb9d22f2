"""keepalived.conf's side of doctor: which scripts call ha-notify, as whom, from where.

The lines themselves are judged in ``ha_notify.doctor.scripts``; this module finds them,
works out the user each one runs as, and checks the program's path and permissions.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ha_notify.doctor import Finding, Validate, access, fail, ok, warn
from ha_notify.doctor.scripts import (
    Call,
    call_finding,
    ha_notify_argv,
    installed_path,
    line_name,
    other_findings,
)
from ha_notify.keepalived_conf import KeepalivedConf, ScriptLine, parse

DEFAULT_USER = "keepalived_script"


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

    def findings(self, validate: Validate) -> list[Finding]:
        """The wiring's findings; ``validate`` is the CLI's parser (see call_finding)."""
        if self.conf is None:
            return [
                fail(
                    "keepalived.conf",
                    self.error,
                    "pass --keepalived-config PATH (the file keepalived -f reads); "
                    "`ha-notify example keepalived` prints a reference config wired to ha-notify",
                )
            ]
        found: list[Finding] = [self._summary(), self._security(), *self._users()]
        for line, reason in self.broken:
            found.append(fail(line_name(line), reason, "fix the quotes of this line"))
        for line, argv in self.others:
            found += other_findings(line, argv)
        checked: set[tuple[str, str, Optional[str]]] = set()
        for call in self.calls:
            found.append(call_finding(call, validate))
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
                "(see ha-notify example keepalived)",
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
