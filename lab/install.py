"""An ha-notify that an unprivileged user (keepalived's script user, nobody) can run.

The repo's ``.venv`` is an editable install: it imports ``ha_notify`` from the checkout. A
checkout where other users cannot go (root's home, mode 700, or a ``mktemp -d`` folder),
or an interpreter out of their reach (a pyenv build under /root), makes that ha-notify
useless to them. Then a virtualenv outside the checkout, built from the system
``python3``, gets a regular (copied) install of the current source, redone whenever the
source changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

from lab.configs import REPO
from lab.netns import LabError, run

CACHE = Path("/var/cache/ha-notify-lab")
PIP = ("--quiet", "--disable-pip-version-check")


def runs_as(exe: Path, user: str, group: Optional[str] = None) -> bool:
    """Whether ``user`` can run ``exe --help`` (the interpreter, the package, everything)."""
    if not exe.is_file():
        return False
    as_group = ["-g", group] if group else []
    done = subprocess.run(
        ["runuser", "-u", user, *as_group, "--", str(exe), "--help"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode == 0


def source_digest() -> str:
    """A digest of what an install copies: the package and pyproject.toml."""
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml", *sorted((REPO / "ha_notify").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def runnable_by(user: str, group: Optional[str], say: Callable[[str], Any]) -> Path:
    """The repo's ha-notify if ``user`` can run it, else the copied install (built once)."""
    first = REPO / ".venv" / "bin" / "ha-notify"
    if runs_as(first, user, group):
        return first
    CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    venv = CACHE / "venv"
    exe = venv / "bin" / "ha-notify"
    stamp = CACHE / "source.sha256"
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # tests and the lab may get here at once
        digest = source_digest()
        if stamp.is_file() and stamp.read_text() == digest and runs_as(exe, user, group):
            return exe
        python = shutil.which("python3", path="/usr/bin:/bin")
        if python is None:
            raise LabError(f"no system python3 to build {venv} (apt-get install python3-venv)")
        say(
            f"{first} cannot be run by {user} (the checkout or its interpreter is out of that "
            f"user's reach); installing the current source into {venv}"
        )
        if not (venv / "bin" / "pip").is_file():
            run([python, "-m", "venv", "--clear", str(venv)], timeout=300)
        pip = str(venv / "bin" / "pip")
        # The version number does not change with the source: force the package, then let
        # a plain install add any dependency it lacks.
        run([pip, "install", *PIP, "--force-reinstall", "--no-deps", str(REPO)], timeout=900)
        run([pip, "install", *PIP, str(REPO)], timeout=900)
        if not runs_as(exe, user, group):
            raise LabError(f"{exe}: still not runnable by {user}")
        stamp.write_text(digest)
        return exe
