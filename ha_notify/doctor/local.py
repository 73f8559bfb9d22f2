"""This node's side of doctor: the config, its secrets, state_dir, and haproxy."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any, Optional, Union

from ha_notify import configfile
from ha_notify.config import DEFAULT_PATH, SECRET_KEYS, Config, GeneralConfig, load
from ha_notify.doctor import Finding, access, fail, ok, warn
from ha_notify.errors import ConfigError, HaNotifyError

if TYPE_CHECKING:
    from ha_notify.channels import Channel
    from ha_notify.doctor.wiring import Wiring

SECRET_STEMS = (*SECRET_KEYS, "url")
MAX_SCAN = 2000  # entries of state_dir looked at for ownership


@dataclass
class Environment:
    """The config as ha-notify will load it, its channels, and the users that will run it."""

    config: Optional[Config]
    error: str
    runners: list[access.User]
    channels: dict[str, Union[Channel, Exception]] = field(default_factory=dict)

    @classmethod
    def load(cls, explicit: Optional[str], wired: Wiring) -> Environment:
        chosen = explicit or wired.config_path()
        runners = wired.runners()
        try:
            config = load(chosen)
        except ConfigError as exc:
            return cls(None, str(exc), runners)
        env = cls(config, "", runners)
        if config.channels:
            from ha_notify.channels import Context, build
            from ha_notify.notify.render import Renderer

            g = config.general
            context = Context(Renderer(g.language, g.templates_dir), g)
            for ch in config.channels:
                try:
                    env.channels[ch.name] = build(ch, context)
                except (ConfigError, HaNotifyError) as exc:
                    env.channels[ch.name] = exc
        return env

    @property
    def general(self) -> GeneralConfig:
        return self.config.general if self.config is not None else GeneralConfig()

    def config_findings(self) -> list[Finding]:
        if self.config is None:
            return [fail("config", self.error, "fix what the message names, then re-run doctor")]
        path = self.config.path
        if path is None:
            return [
                warn(
                    "config",
                    f"no config file at {DEFAULT_PATH}: events are only logged and recorded",
                    f"ha-notify example config > {DEFAULT_PATH} (a commented one), then edit "
                    "its channels",
                )
            ]
        found = []
        for name, built in self.channels.items():
            if isinstance(built, Exception):
                found.append(fail("config", str(built), f"fix [channels.{name}] in {path}"))
        for user in self.runners:
            why = access.reach(path, user, access.R)
            if why is not None:
                found.append(fail("config", why, f"chown {user.name} {path} && chmod 600 {path}"))
        names = ", ".join(self.channels) or "none"
        return found or [ok("config", f"{path}: valid; {len(self.channels)} channel(s): {names}")]

    def secret_findings(self) -> list[Finding]:
        if self.config is None or self.config.path is None:
            return [ok("secrets", "no config file, no secrets")]
        path = self.config.path
        raw = configfile.read(str(path)).get("channels", {})
        found: list[Finding] = []
        inline = False
        for name, table in raw.items() if isinstance(raw, dict) else ():
            for key, value in table.items() if isinstance(table, dict) else ():
                stem, _, suffix = key.rpartition("_")
                where = f"channels.{name}.{key}"
                if key in SECRET_STEMS and key != "url":
                    inline = True
                elif stem in SECRET_STEMS and suffix == "file" and isinstance(value, str):
                    found += self._secret_file(where, Path(value))
                elif stem in SECRET_STEMS and suffix == "env" and isinstance(value, str):
                    found.append(_secret_env(where, value))
        if inline:
            found += self._secret_file("config file (holds a secret)", path)
        return found or [ok("secrets", "no secrets configured")]

    def _secret_file(self, where: str, path: Path) -> list[Finding]:
        try:
            st = path.stat()
        except OSError as exc:
            return [fail("secrets", f"{where}: {path}: {exc.strerror}", f"create {path}")]
        found = []
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(
                fail(
                    "secrets",
                    f"{where}: {access.describe(path, st)} is readable by group or others",
                    f"chmod 600 {path}",
                )
            )
        for user in self.runners:
            why = access.reach(path, user, access.R)
            if why is not None:
                found.append(fail("secrets", f"{where}: {why}", f"chown {user.name} {path}"))
        users = ", ".join(u.name for u in self.runners)
        return found or [ok("secrets", f"{where}: {path} is private and readable by {users}")]

    def state_dir_findings(self) -> list[Finding]:
        if self.config is None:
            return [warn("state_dir", "not checked: the config is invalid", "fix the config")]
        return [_state_dir(self.general.state_dir, user) for user in self.runners] or [
            warn("state_dir", "not checked: no script user exists", "fix script_user")
        ]


def _secret_env(where: str, name: str) -> Finding:
    if os.environ.get(name):
        return ok("secrets", f"{where}: ${name} is set (keepalived's scripts need it too)")
    return warn(
        "secrets",
        f"{where}: ${name} is not set in this environment",
        f"set {name} in keepalived's environment (systemd: Environment= or EnvironmentFile= "
        "in a drop-in for keepalived.service)",
    )


def _state_dir(folder: Path, user: access.User) -> Finding:
    fix = f"chown -R {user} {folder} && chmod 700 {folder}"
    if not folder.exists():
        parent = access.nearest_existing(folder)
        why = access.reach(parent, user, access.W | access.X)
        if why is None:
            return ok("state_dir", f"{folder} will be created by {user.name} on first use")
        return fail(
            "state_dir",
            f"{folder} does not exist and {user.name} cannot create it: {why}",
            f"install -d -o {user.name} -g {user.group} -m 700 {folder}",
        )
    if not folder.is_dir():
        return fail("state_dir", f"{folder} is not a folder", f"remove it, then: {fix}")
    why = access.reach(folder, user, access.W | access.X)
    if why is None:
        why = _tree_problem(folder, user)
    if why is not None:
        return fail("state_dir", f"{folder}: {why}", fix)
    return ok("state_dir", f"{folder} is writable by {user.name}")


def _tree_problem(folder: Path, user: access.User) -> Optional[str]:
    """Spool folders or files (created by root, say) that ``user`` cannot write."""
    seen = 0
    for top, dirs, files in os.walk(folder):
        for entry, want in [(d, access.W | access.X) for d in dirs] + [
            (f, access.R | access.W) for f in files
        ]:
            seen += 1
            if seen > MAX_SCAN:
                return None
            path = Path(top) / entry
            try:
                st = path.lstat()
            except OSError:
                continue  # removed while we looked
            if stat.S_ISLNK(st.st_mode) or access.allowed(st, user, want):
                continue
            return f"{user.name} cannot write {access.describe(path, st)}"
    return None


def haproxy_findings(env: Environment, wired: Wiring) -> list[Finding]:
    """Process (pidfile) and stats socket, as keepalived's `ha-notify check haproxy` sees them."""
    from ha_notify.checks import haproxy, process, procfs, runner
    from ha_notify.checks.settings import ChecksSettings, bootstrap_run_dir

    calls = [c for c in wired.calls if c.sub == "check" and c.argv[2:3] == ["haproxy"]]
    checks: dict[str, Any] = env.config.checks if env.config is not None else {}
    if not calls and "haproxy" not in checks:
        missing = (
            "not configured: no `ha-notify check haproxy` in keepalived.conf, no [checks.haproxy]"
        )
        fix = (
            'add vrrp_script chk_haproxy { script "... check haproxy --deep" } '
            "(ha-notify example keepalived)"
        )
        return [warn("haproxy process", missing, fix), warn("haproxy stats socket", missing, fix)]
    user_name, group = (calls[0].user, calls[0].group) if calls else wired.default_user()
    try:
        user = access.lookup(user_name, group)
    except KeyError:
        user = access.current()
    path = str(env.config.path) if env.config is not None and env.config.path else None
    settings = ChecksSettings(path, bootstrap_run_dir(), checks)
    try:
        request = runner.parse_args(calls[0].argv[2:] if calls else ["haproxy"])
        options = runner.build_options(request, settings, monotonic())
    except HaNotifyError as exc:  # the script line's own finding says what to fix
        return [fail("haproxy process", f"the check cannot run: {exc}", "fix the vrrp_script line")]
    found = []
    result = process.assess(
        "haproxy", options, haproxy.MASTER_FLAGS, haproxy.master_keyword(options)
    )
    pid_fix = "start haproxy (systemctl start haproxy), or point --pidfile at its pidfile"
    why = access.reach(Path(options.pidfile), user, access.R) if options.pidfile else None
    if not result.healthy:
        found.append(fail("haproxy process", result.reason, pid_fix))
    elif why is not None:
        found.append(fail("haproxy process", why, f"chmod 644 {options.pidfile}"))
    else:
        found.append(ok("haproxy process", result.reason))
    found.append(_stats_socket(options, user))
    hidden = procfs.hidden_from(user.uid, (user.gid,))
    if hidden:
        found.append(
            warn(
                "proc visibility",
                f"/proc is mounted {hidden}: {user.name} cannot see haproxy's processes, so "
                "the check cannot find haproxy by name, nor see zombies behind a pidfile",
                f"mount /proc with gid={user.group} (e.g. `proc /proc proc "
                f"defaults,{hidden},gid={user.group} 0 0` in /etc/fstab), or keep a pidfile "
                f"{user.name} can read in the check line (--pidfile /run/haproxy.pid)",
            )
        )
    return found


def _stats_socket(options: Any, user: access.User) -> Finding:
    from ha_notify.checks import haproxy, stats

    name = "haproxy stats socket"
    if not (options.deep or options.socket):
        return warn(
            name,
            "not used: the haproxy check is process-level only (no --deep)",
            "add --deep and --socket PATH to the check line to see hung workers and backends",
        )
    try:
        address = haproxy.socket_address(options)
    except HaNotifyError as exc:
        return fail(name, str(exc), "add `stats socket /run/haproxy/check.sock` to haproxy.cfg")
    try:
        reply = stats.ask(address, monotonic() + options.timeout, options.timeout)
    except stats.StatsError as exc:
        return fail(name, str(exc), f"check `stats socket` in haproxy.cfg and --socket {address}")
    _family, target = stats.resolve_address(address)
    if isinstance(target, str) and not target.startswith("\0"):
        why = access.reach(Path(target), user, access.W)
        if why is not None:
            return fail(
                name,
                why,
                f"in haproxy.cfg: stats socket {target} mode 660 group {user.group}; keepalived "
                f"drops supplementary groups, so name the group: script_user {user.name} "
                f"{user.group}",
            )
    version = reply.info.get("Version", "?")
    return ok(name, f"{address} answers (haproxy {version}, pid {reply.info.get('Pid', '?')})")
