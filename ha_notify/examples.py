"""The reference files from ``contrib/``, shipped in the wheel as ``ha_notify/contrib/``.

A topic is a folder of ``contrib/`` (``config`` names ``contrib/ha-notify/``); its files are
whatever that folder holds, so a file or folder added to ``contrib/`` is picked up without a
change here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ha_notify.errors import UsageError

ALIASES = {"config": "ha-notify"}  # topic -> folder, where the two differ
PACKAGE = Path(__file__).resolve().parent


def root() -> Path:
    """``ha_notify/contrib`` in an installed wheel, else the checkout's ``contrib/``."""
    for candidate in (PACKAGE / "contrib", PACKAGE.parent / "contrib"):
        if candidate.is_dir():
            return candidate
    raise UsageError(
        f"the reference files are missing: neither {PACKAGE / 'contrib'} nor "
        f"{PACKAGE.parent / 'contrib'} exists; reinstall ha-notify"
    )


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__")) and not path.name.endswith((".pyc", "~"))


def topics() -> dict[str, Path]:
    """Every topic and its folder, in name order."""
    folders = {p.name: p for p in sorted(root().iterdir()) if p.is_dir() and _visible(p)}
    named = {topic: folders.pop(folder) for topic, folder in ALIASES.items() if folder in folders}
    return dict(sorted({**named, **folders}.items()))


def folder(topic: str) -> Path:
    """The folder of one topic; a folder's own name works too (``ha-notify`` for ``config``)."""
    known = topics()
    for key in (topic, *(t for t, f in ALIASES.items() if f == topic)):
        if key in known:
            return known[key]
    raise UsageError(f"unknown example {topic!r}: expected one of {', '.join(known)}")


def files(topic: str) -> list[Path]:
    """The files of one topic (subfolders included), in path order."""
    return sorted(p for p in folder(topic).rglob("*") if p.is_file() and _visible(p))


def pick(topic: str, name: Optional[str]) -> list[Path]:
    """The files to print: all of the topic's, or the one ``name`` names (or names a part of)."""
    found = files(topic)
    if name is None:
        return found
    base = folder(topic)
    chosen = [p for p in found if name in (p.name, p.relative_to(base).as_posix())]
    if not chosen:  # the last word of a name: `node2` is keepalived-node2.conf, not -watch
        chosen = [p for p in found if p.name.split(".")[0].endswith(f"-{name}")]
    if not chosen:  # a unique part of a name is enough: `ha-notify example keepalived node2-w`
        chosen = [p for p in found if name in p.relative_to(base).as_posix()]
    if len(chosen) != 1:
        names = ", ".join(p.relative_to(base).as_posix() for p in chosen or found)
        what = f"{name!r} matches several files" if chosen else f"has no file {name!r}"
        raise UsageError(f"example {topic!r}: {what}: expected one of {names}")
    return chosen


def show(topic: Optional[str], name: Optional[str]) -> str:
    """What ``ha-notify example`` prints: one file as is; several under ``==> name <==``."""
    if topic is None:
        lines = ["topics (ha-notify example TOPIC [FILE]):"]
        for each, base in topics().items():
            names = ", ".join(p.relative_to(base).as_posix() for p in files(each))
            lines.append(f"  {each:<12} {names}")
        return "\n".join(lines) + "\n"
    chosen = pick(topic, name)
    if len(chosen) == 1:
        return chosen[0].read_text(encoding="utf-8")
    base = root()
    parts = [
        f"==> {p.relative_to(base).as_posix()} <==\n{p.read_text(encoding='utf-8')}" for p in chosen
    ]
    return "\n".join(parts)
