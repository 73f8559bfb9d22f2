"""systemd unit files as the lab's stand-in for systemd reads them (lab.units runs them)."""

from __future__ import annotations

import os
import pwd
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"))
SANDBOX = re.compile(r"^(Protect|Private|Restrict|NoNewPrivileges|LockPersonality|Memory|"
                     r"SystemCall|CapabilityBoundingSet|ReadWritePaths|ReadOnlyPaths|"
                     r"BindReadOnlyPaths)")  # fmt: skip


VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def seconds(text: str) -> float:
    """systemd's time spans: ``200ms``, ``5s``, ``1min``, ``1min 30s``, plain seconds."""
    scale = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "": 1}
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)\s*([a-z]*)", text):
        total += float(number) * scale.get(unit, 1)
    return total


@dataclass
class Unit:
    """One unit file: every ``Key=value`` of it, by key."""

    name: str
    path: Path
    keys: dict[str, list[str]]

    @classmethod
    def find(cls, name: str) -> Optional[Unit]:
        if "." not in name:
            name += ".service"
        for folder in UNIT_DIRS:
            if (folder / name).is_file():
                return cls.parse(name, folder / name)
        return None

    @classmethod
    def parse(cls, name: str, path: Path) -> Unit:
        """Every ``Key=value`` of the file; a key given twice keeps both (ExecReload)."""
        keys: dict[str, list[str]] = {}
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                key, value = line.split("=", 1)
                keys.setdefault(key.strip(), []).append(value.strip())
        return cls(name, path, keys)

    def get(self, key: str, default: str = "") -> str:
        return self.keys.get(key, [default])[-1]

    def environment(self) -> dict[str, str]:
        """``EnvironmentFile`` then ``Environment``, as systemd reads them."""
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8"}
        for line in self.keys.get("EnvironmentFile", []):
            path = line.lstrip("-")
            if not os.path.isfile(path):
                continue
            for raw in Path(path).read_text().splitlines():
                raw = raw.strip()
                if raw and not raw.startswith("#") and "=" in raw:
                    key, value = raw.split("=", 1)
                    env[key.strip()] = value.strip().strip("\"'")
        for line in self.keys.get("Environment", []):
            for word in shlex.split(line):
                key, _, value = word.partition("=")
                env[key] = value
        return env

    def credentials(self) -> list[str]:
        """``setpriv`` in front of the command: ``User``, ``Group``, ``AmbientCapabilities``."""
        user = self.get("User")
        if not user:
            return []
        argv = ["setpriv", f"--reuid={user}", f"--regid={self.get('Group') or user}",
                "--init-groups"]  # fmt: skip
        caps = [c.lower().replace("cap_", "") for c in self.get("AmbientCapabilities").split()]
        if caps:
            wanted = ",".join(f"+{c}" for c in caps)
            argv += [f"--inh-caps={wanted}", f"--ambient-caps={wanted}"]
        return [*argv, "--"]

    def directories(self) -> None:
        """``RuntimeDirectory`` and ``StateDirectory``, owned by ``User`` with their modes."""
        user = self.get("User")
        uid = pwd.getpwnam(user).pw_uid if user else 0
        gid = pwd.getpwnam(user).pw_gid if user else 0
        for key, root in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib")):
            mode = int(self.get(f"{key}Mode", "0755"), 8)
            for name in self.get(key).split():
                path = Path(root) / name
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(mode)
                os.chown(path, uid, gid)


def expand(line: str, env: dict[str, str]) -> list[str]:
    """systemd's rules: ``$VAR`` alone splits into words, ``${VAR}`` stays one word."""
    line = line.lstrip("-@+!")
    argv: list[str] = []
    for word in shlex.split(line):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv += env.get(whole.group(1), "").split()
        else:
            argv.append(VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), word))
    return argv
