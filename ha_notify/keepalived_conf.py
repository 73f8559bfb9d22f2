"""Just enough of keepalived.conf to find the scripts it runs and the user that runs them.

keepalived's grammar: ``#`` or ``!`` start a comment, ``"..."`` quotes a string, ``{``/``}``
open and close blocks, ``include GLOB`` pulls in other files (relative to the including file's
folder), and an ``@id`` prefix makes a line conditional. A script keyword takes a quoted
command line with arguments (or one unquoted word), then optionally ``USER [GROUP]``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

NOTIFY_KEYWORDS = (
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify_deleted",
    "notify_master_rx_lower_pri",
    "notify",
)
FIFO_KEYWORDS = ("notify_fifo_script", "vrrp_notify_fifo_script", "lvs_notify_fifo_script")
MAX_INCLUDE_DEPTH = 8
# The keywords of the blocks a tutorial writes on one line
# (``vrrp_script chk { script "..." interval 2 }``): keepalived reads each as a statement of
# its own, so an unquoted word that names one starts a new statement.
BLOCK_KEYWORDS = {
    "vrrp_script": ("script", "interval", "timeout", "weight", "rise", "fall", "user", "init_fail"),
    "track_file": ("file", "weight", "init_file"),
    "vrrp_track_file": ("file", "weight", "init_file"),
    "vrrp_track_process": (
        "process",
        "weight",
        "quorum",
        "quorum_max",
        "delay",
        "delay_up",
        "delay_down",
        "terminate_delay",
        "fork_delay",
        "full_command",
        "param_match",
    ),
}


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class ScriptLine:
    """One script keepalived runs: where it is written, what it runs and as whom."""

    keyword: str  # notify_master, notify, notify_fifo_script, script (in a vrrp_script), ...
    command: str
    file: Path
    line: int
    block: str  # "vrrp_instance VI_1", "vrrp_script chk_haproxy", "global_defs"
    user: Optional[str] = None
    group: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class KeepalivedConf:
    """What doctor needs from keepalived.conf and its includes."""

    path: Path
    files: list[Path] = field(default_factory=list)
    script_user: Optional[str] = None
    script_group: Optional[str] = None
    script_security: bool = False
    scripts: list[ScriptLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def split_statement(block: str, words: list[Token]) -> list[list[Token]]:
    """The statements in ``words`` (one line inside ``block``), split at the block's keywords."""
    keys = BLOCK_KEYWORDS.get(block.split(" ", 1)[0], ())
    found: list[list[Token]] = []
    for word in words:
        if not found or (word.text in keys and not word.quoted):
            found.append([word])
        else:
            found[-1].append(word)
    return found


def tokens(line: str) -> list[Token]:
    """Split one line into words, quoted strings and braces; comments end the line."""
    found: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c in "#!":
            break
        elif c == '"':
            end = line.find('"', i + 1)
            end = n if end < 0 else end
            found.append(Token(line[i + 1 : end], quoted=True))
            i = end + 1
        elif c in "{}":
            found.append(Token(c))
            i += 1
        else:
            j = i
            while j < n and not line[j].isspace() and line[j] not in '{}"':
                j += 1
            found.append(Token(line[i:j]))
            i = j
    return found


class _Parser:
    def __init__(self, conf: KeepalivedConf) -> None:
        self.conf = conf
        self.stack: list[str] = []
        self.seen: set[str] = set()
        self.pending: Optional[str] = None  # a block header waiting for its "{"
        self.block_users: dict[str, tuple[str, Optional[str]]] = {}  # vrrp_script's `user`

    def file(self, path: Path, depth: int) -> None:
        real = os.path.realpath(path)
        if real in self.seen:
            return
        self.seen.add(real)
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            self.conf.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            return
        self.conf.files.append(path)
        for number, raw in enumerate(text.splitlines(), 1):
            self.line(path, number, tokens(raw), depth)

    def line(self, path: Path, number: int, toks: list[Token], depth: int) -> None:
        statement: list[Token] = []
        for tok in [*toks, Token("")]:
            if tok.text in ("{", "}", "") and not tok.quoted:
                if statement:
                    self.statement(path, number, statement, depth, opens=tok.text == "{")
                    statement = []
                elif tok.text == "{":
                    self.stack.append(self.pending or "{")
                if tok.text == "}" and self.stack:
                    self.stack.pop()
                    self.pending = None
                continue
            statement.append(tok)

    def statement(
        self, path: Path, number: int, words: list[Token], depth: int, *, opens: bool
    ) -> None:
        if words[0].text.startswith("@") and not words[0].quoted:
            words = words[1:]  # keepalived's per-node condition (@node1 priority 100)
            if not words:
                return
        block = " ".join(w.text for w in words)
        self.pending = block
        if opens:
            self.stack.append(block)
            return
        inside = self.stack[-1] if self.stack else ""
        for part in split_statement(inside, words):
            self.one(path, number, part, depth, inside)

    def one(self, path: Path, number: int, words: list[Token], depth: int, inside: str) -> None:
        key = words[0].text
        args = words[1:]
        if key == "include" and args:
            self.include(path, args[0].text, depth)
        elif key == "enable_script_security":
            self.conf.script_security = True
        elif key == "script_user" and args:
            self.conf.script_user = args[0].text
            self.conf.script_group = args[1].text if len(args) > 1 else None
        elif args and (
            key in NOTIFY_KEYWORDS
            or key in FIFO_KEYWORDS
            or (key == "script" and inside.startswith("vrrp_script"))
        ):
            self.script(key, args, path, number, inside)
        elif key == "user" and args and inside.startswith("vrrp_script"):
            group = args[1].text if len(args) > 1 else None
            self.block_users[inside] = (args[0].text, group)
            self._set_user(inside, args[0].text, group)

    def script(self, key: str, args: list[Token], path: Path, number: int, block: str) -> None:
        command = args[0].text
        rest = [a.text for a in args[1:]]
        user = rest[0] if rest else None
        group = rest[1] if len(rest) > 1 else None
        if user is None and key == "script" and block in self.block_users:
            user, group = self.block_users[block]
        self.conf.scripts.append(ScriptLine(key, command, path, number, block, user, group))

    def _set_user(self, block: str, user: str, group: Optional[str]) -> None:
        """A vrrp_script's ``user`` line applies to its ``script``, before or after it."""
        for i, s in enumerate(self.conf.scripts):
            if s.block == block and s.keyword == "script" and s.user is None:
                self.conf.scripts[i] = ScriptLine(
                    s.keyword, s.command, s.file, s.line, s.block, user, group
                )

    def include(self, path: Path, pattern: str, depth: int) -> None:
        if depth >= MAX_INCLUDE_DEPTH:
            self.conf.problems.append(f"{path}: includes nest deeper than {MAX_INCLUDE_DEPTH}")
            return
        base = pattern if os.path.isabs(pattern) else str(path.parent / pattern)
        matches = sorted(glob.glob(base))
        if not matches and not glob.has_magic(base):
            self.conf.problems.append(f"{path}: include {pattern}: {base} does not exist")
        for match in matches:
            self.file(Path(match), depth + 1)


@dataclass
class Block:
    """One top-level block of keepalived.conf: its header and its statements."""

    kind: str
    name: str
    lines: list[list[str]] = field(default_factory=list)
    children: dict[str, list[list[str]]] = field(default_factory=dict)

    def value(self, key: str) -> Optional[list[str]]:
        for words in self.lines:
            if words and words[0] == key:
                return words[1:]
        return None


def blocks(conf: KeepalivedConf) -> list[Block]:
    """Top-level blocks of every file keepalived reads (statements one level deep)."""
    found: list[Block] = []
    for path in conf.files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        stack: list[list[Token]] = []
        words: list[Token] = []
        for raw in text.splitlines():
            for tok in [*tokens(raw), Token("\n")]:
                word = "" if tok.quoted else tok.text
                if word == "{":
                    stack.append(words)
                    texts = [w.text for w in words]
                    if len(stack) == 1:
                        found.append(Block(texts[0] if texts else "", " ".join(texts[1:])))
                    elif len(stack) == 2 and found:
                        found[-1].children.setdefault(texts[0] if texts else "", [])
                    words = []
                elif word in ("}", "\n"):
                    if words and stack and found:
                        if len(stack) == 1:
                            for part in split_statement(found[-1].kind, words):
                                found[-1].lines.append([w.text for w in part])
                        elif len(stack) == 2:
                            child = stack[-1][0].text if stack[-1] else ""
                            found[-1].children.setdefault(child, []).append([w.text for w in words])
                    words = []
                    if word == "}" and stack:
                        stack.pop()
                else:
                    words.append(tok)
    return found


def parse(path: Path) -> KeepalivedConf:
    """Parse ``path`` and its includes; unreadable includes are listed in ``problems``."""
    conf = KeepalivedConf(path)
    _Parser(conf).file(path, 0)
    return conf
