"""Who runs ha-notify, and what that user can reach: permission arithmetic, no setuid needed.

keepalived drops supplementary groups before it runs a script (``setgroups(1, &gid)``), so a
script user has exactly one group: the one named in ``script_user USER GROUP`` or the user's
primary group. ACLs are not read.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

R, W, X = 4, 2, 1
_WANT = {R: "read", W: "write", X: "execute", W | X: "write into", R | W: "read and write"}


@dataclass(frozen=True)
class User:
    """A user as keepalived runs scripts: uid and one gid."""

    name: str
    uid: int
    gid: int
    group: str

    def __str__(self) -> str:
        return f"{self.name}:{self.group}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def lookup(name: str, group: Optional[str] = None) -> User:
    """The user ``name`` with ``group`` (or its primary group); KeyError if either is unknown."""
    entry = pwd.getpwnam(name)
    gid = entry.pw_gid if group is None else grp.getgrnam(group).gr_gid
    return User(entry.pw_name, entry.pw_uid, gid, group or _group_name(gid))


def current() -> User:
    uid, gid = os.geteuid(), os.getegid()
    return User(_user_name(uid), uid, gid, _group_name(gid))


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def owner(st: os.stat_result) -> str:
    return f"{_user_name(st.st_uid)}:{_group_name(st.st_gid)}"


def describe(path: Path, st: os.stat_result) -> str:
    return f"{path} ({owner(st)}, mode {stat.S_IMODE(st.st_mode):04o})"


def allowed(st: os.stat_result, who: User, want: int) -> bool:
    """Whether ``who`` has every bit of ``want`` (R, W, X) on a file with status ``st``."""
    if who.uid == 0:  # root: anything, except executing a file that nobody may execute
        return not (want & X and not stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o111)
    if st.st_uid == who.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid == who.gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def _parents(path: Path) -> list[Path]:
    """``/``, ``/a``, ``/a/b`` for ``/a/b/c``: the folders one must enter to reach it."""
    parts = path.parts
    return [Path(*parts[:i]) for i in range(1, len(parts))]


def reach(path: Path, who: User, want: int) -> Optional[str]:
    """None when ``who`` can enter every folder up to ``path`` and ``want`` it; else why not.

    Both the path as written and its symlink-resolved target must be reachable.
    """
    absolute = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    for chain in (absolute, real) if real != absolute else (absolute,):
        for folder in _parents(chain):
            try:
                st = folder.stat()
            except OSError as exc:
                return f"{folder}: {exc.strerror}"
            if not allowed(st, who, X):
                return f"{who.name} cannot enter {describe(folder, st)}"
    try:
        st = real.stat()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not allowed(st, who, want):
        return f"{who.name} cannot {_WANT.get(want, 'use')} {describe(path, st)}"
    return None


def nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True)
class Unsafe:
    """The first path component keepalived's enable_script_security refuses, and the fix."""

    path: Path
    reason: str
    fix: str


def script_unsafe(path: Path) -> Optional[Unsafe]:
    """keepalived's rule (lib/notify.c, check_script_secure), component by component.

    Every folder on the path and the file itself must be owned by root and not writable by
    others, nor by a group other than root (folders with the sticky bit are exempt from the
    write rule, as /tmp is).
    """
    absolute = Path(os.path.abspath(path))
    for part in [*_parents(absolute), absolute]:
        try:
            st = part.stat()
        except OSError as exc:
            return Unsafe(part, f"{part}: {exc.strerror}", f"check that {part} exists")
        mode = st.st_mode
        if st.st_uid != 0:
            return Unsafe(
                part, f"{describe(part, st)} is not owned by root", f"chown root:root {part}"
            )
        exempt = stat.S_ISDIR(mode) and mode & stat.S_ISVTX
        if not exempt and st.st_gid != 0 and mode & stat.S_IWGRP:
            group = _group_name(st.st_gid)
            return Unsafe(
                part, f"{describe(part, st)} is writable by group {group}", f"chmod g-w {part}"
            )
        if not exempt and mode & stat.S_IWOTH:
            return Unsafe(
                part, f"{describe(part, st)} is writable by everyone", f"chmod o-w {part}"
            )
    return None


def interpreter(path: Path) -> Optional[Path]:
    """The absolute interpreter of a ``#!`` script, or None for a binary or a bare name."""
    try:
        with path.open("rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words or not words[0].startswith(b"/"):
        return None
    return Path(os.fsdecode(words[0]))
