"""The two things the check reads from haproxy.cfg: the stats socket and ``master-worker``.

Lines are split into words the way haproxy does: ``#`` starts a comment outside quotes,
single quotes keep everything literally, double quotes and backslashes escape, and inside
double quotes ``$VAR``, ``${VAR}`` and ``${VAR-default}`` are expanded from the environment
(haproxy expands nothing outside double quotes). The environment is the check's own, else
the running haproxy's (``/proc/PID/environ``), since that is the one haproxy expanded with.
Every file is read within the check's deadline (:mod:`ha_notify.checks.bounded`).
"""

from __future__ import annotations

import os

from ha_notify.checks import bounded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Optional

MAX_CONFIG = 16 * 1024 * 1024
SECTIONS = frozenset(
    {
        *("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers"),
        *("userlist", "mailers", "program", "http-errors", "ring", "cache", "fcgi-app"),
        "log-forward",
    }
)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class Unset(LookupError):
    """A ``$VAR`` in a quoted word names a variable that is not set; ``name`` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def words(line: str, env: Mapping[str, str]) -> list[str]:
    """haproxy's words of one config line, variables expanded; raises :class:`Unset`."""
    found: list[str] = []
    word: list[str] = []
    started = False
    quote = ""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                word.append(c)
        elif c == "\\" and i + 1 < n:
            i += 1
            word.append(line[i])
        elif quote == '"' and c == '"':
            quote = ""
        elif quote == '"' and c == "$":
            value, i = _variable(line, i, env)
            word.append(value)
            continue
        elif quote:
            word.append(c)
        elif c in "'\"":
            quote, started = c, True
        elif c == "#":
            break
        elif c.isspace():
            if word or started:
                found.append("".join(word))
            word, started = [], False
        else:
            word.append(c)
        i += 1
    if word or started:
        found.append("".join(word))
    return found


def _variable(line: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
    """The value of the variable starting at ``line[i] == "$"``, and the index after it."""
    default: Optional[str] = None
    if line.startswith("${", i):
        end = line.find("}", i)
        if end < 0:
            return "$", i + 1
        name, dash, rest = line[i + 2 : end].partition("-")
        default = rest if dash else None
        after = end + 1
    else:
        j = i + 1
        while j < len(line) and line[j] in _NAME_CHARS:
            j += 1
        name, after = line[i + 1 : j], j
    if not name:
        return "$", i + 1
    value = env.get(name, default)
    if value is None:
        raise Unset(name)
    return value, after


def files(path: str) -> list[str]:
    """``path`` itself, or the ``*.cfg`` files of a directory in name order (as ``-f DIR``)."""
    if os.path.isdir(path):
        return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".cfg"))
    return [path]


def _lines(paths: Iterable[str], deadline: float) -> Iterable[str]:
    for path in paths:
        for name in bounded.call(path, lambda: files(path), deadline):  # noqa: B023 - called at once
            data = bounded.read_file(name, MAX_CONFIG, deadline)
            yield from data.decode("utf-8", "replace").splitlines()


def stats_socket(paths: Iterable[str], deadline: float, env: Mapping[str, str]) -> str:
    """The first ``stats socket`` address of the configuration ``paths``.

    Raises OSError when a file cannot be read, TimeoutError past ``deadline``,
    :class:`Unset` for a variable without a value, and LookupError when there is no
    ``stats socket`` line.
    """
    for line in _lines(paths, deadline):
        if "stats" not in line or "socket" not in line:
            continue
        found = words(line, env)
        if len(found) >= 3 and found[0] == "stats" and found[1] == "socket":
            return found[2]
    raise LookupError("no `stats socket` line")


def master_worker(paths: Iterable[str], deadline: float) -> bool:
    """Whether the ``global`` section of ``paths`` has the ``master-worker`` keyword.

    Keywords and section names are plain words: the first word of a line is enough (no
    quote or variable handling), which keeps this cheap for a config of thousands of lines.
    """
    section = ""
    for line in _lines(paths, deadline):
        first = line.split(None, 1)[0] if line and not line.isspace() else ""
        if first in SECTIONS:
            section = first
        elif first == "master-worker" and section in ("", "global"):
            return True
    return False


def config_paths(argv: list[str]) -> list[str]:
    """The ``-f FILE`` arguments of a haproxy command line (there may be several)."""
    found = []
    for index, arg in enumerate(argv):
        if arg == "-f" and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif arg.startswith("-f") and len(arg) > 2:
            found.append(arg[2:])
    return found


def process_environ(pid: int) -> dict[str, str]:
    """The environment of process ``pid`` (empty when we may not read it)."""
    from ha_notify.checks.procfs import PROC, _read

    data = _read(f"{PROC}/{pid}/environ", 1 << 20) or b""
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            env[key] = value
    return env
