"""The README and docs/ stay true: every command line they show names real commands and options."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FIRST_SCREEN = 30  # lines a terminal or a web page shows before scrolling
# `ha-notify` where a shell would run it: line start or after a prompt, a quote, an operator,
# or a bin/ folder; not `pip install ha-notify`, `journalctl -t ha-notify` or ha-notify-flush.
COMMAND = re.compile(r"""(?:^\s*|\$\s+|["'(]\s*|&&\s*|\|\s+|/bin/)ha-notify(?=\s|$)(.*)$""")
# Shown on purpose to demonstrate the error it gets (the tutorial's typo).
MEANT_TO_FAIL = {"falut"}
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


@dataclass(frozen=True)
class Help:
    """What `ha-notify ... --help` says: its options and, for a group, its subcommands."""

    options: frozenset[str]
    commands: frozenset[str]


@functools.cache
def help_of(path: tuple[str, ...]) -> Help:
    """Run the real CLI's --help for a command path (refactor-proof: no module names)."""
    done = subprocess.run(
        [sys.executable, "-m", "ha_notify", *path, "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "TERM": "dumb"},
    )
    assert done.returncode == 0, f"ha-notify {' '.join(path)} --help: {done.stderr}"
    options: set[str] = set()
    commands: set[str] = set()
    section = ""
    for raw in done.stdout.splitlines():
        line = raw.strip(" │╭╰─╮╯")
        if re.match(r"^\W*(Options|Commands|Arguments)\b", raw.strip(" │╭╰─╮╯")):
            section = re.sub(r"\W", "", line.split()[0])
            continue
        if section == "Options":
            options.update(OPTION.findall(line.split("  ")[0] if "  " in line else line))
        elif section == "Commands" and re.match(r"^[a-z][\w-]*(\s|$)", line):
            commands.add(line.split()[0])
    return Help(frozenset(options), frozenset(commands))


@dataclass(frozen=True)
class Shown:
    """One `ha-notify ...` command line as a page shows it."""

    page: str
    line: int
    text: str


def code_lines(text: str) -> list[tuple[int, str]]:
    """Lines inside fenced code blocks (not Python: a plugin's source), and inline code spans
    that start with a command; a line whose comment says it is a plugin's command is left out
    (the CLI here has no such plugin installed)."""
    found: list[tuple[int, str]] = []
    fenced = source = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            source = fenced and line.strip().startswith("```python")
            continue
        if fenced:
            if not source and "# a plugin's" not in line:
                found.append((number, line))
            continue
        for span in re.findall(r"`([^`]+)`", line.replace("\\|", "|")):
            if re.match(r"(/opt/ha-notify/bin/)?ha-notify\s", span):
                found.append((number, span))
    return found


def shown_commands() -> list[Shown]:
    """Every `ha-notify ...` command line of the README and docs/."""
    shown = []
    for page in PAGES:
        for number, line in code_lines(page.read_text(encoding="utf-8")):
            for match in COMMAND.finditer(line):
                words = match.group(1)
                words = re.split(r"\s#|\s+# |[\"']", words)[0]
                shown.append(Shown(str(page.relative_to(REPO)), number, words.strip()))
    return shown


def words_of(text: str) -> list[str]:
    """The words of a command line up to a pipe, a redirection or doctor's `-> fix:` outside
    [...] brackets."""
    depth, out = 0, []
    for word in text.split():
        if depth == 0 and word in ("|", ">", "2>", "&&", ";", ">>", "->"):
            break
        depth += word.count("[") - word.count("]")
        out.append(word)
    return out


def problems(words: list[str]) -> list[str]:
    """What is wrong with one command line; [] when every command and option is real."""
    errors: list[str] = []
    paths: list[tuple[str, ...]] = [()]
    rest = list(words)
    while rest:  # descend through groups: ha-notify [-c FILE] check haproxy ...
        groups = [p for p in paths if help_of(p).commands]
        if not groups:
            break
        word = rest[0]
        if word in ("-c", "--config") and paths == [()]:
            rest = rest[2:]
            continue
        if word.startswith("-") or word.startswith("["):
            break
        rest.pop(0)
        names = [w for w in word.strip("[]").split("|") if w and w != "..."]
        if all(n.isupper() for n in names):  # a placeholder such as NAME: a plugin's command
            return errors
        new = []
        for path in paths:
            for name in names:
                if name in help_of(path).commands:
                    new.append((*path, name))
                else:
                    errors.append(f"no command {' '.join((*path, name))!r}")
        if errors:
            return errors
        paths = new
    for path in paths:
        known = help_of(path).options | {"--verbose"}
        for word in rest:
            if not word.lstrip("[(").startswith("-"):
                continue
            for part in re.split(r"[|=\[\]()]", word):
                if part.startswith("-") and part not in ("-", "--") and part != "...":
                    option = part.rstrip(".,")
                    if option not in known:
                        errors.append(f"ha-notify {' '.join(path)}: no option {option}")
    return errors


def test_every_command_shown_is_real() -> None:
    """Each `ha-notify ...` line of the README and docs/ names real commands and options."""
    shown = shown_commands()
    assert len(shown) > 50  # the finder finds them
    wrong = []
    for cmd in shown:
        if cmd.text in MEANT_TO_FAIL:
            continue
        for problem in problems(words_of(cmd.text)):
            wrong.append(f"{cmd.page}:{cmd.line}: {cmd.text!r}: {problem}")
    assert wrong == []


def test_the_checker_catches_a_wrong_command() -> None:
    """A misspelt command, an unknown option and a wrong subcommand are all reported."""
    assert problems(words_of("stauts")) == ["no command 'stauts'"]
    assert problems(words_of("flush --retry-deads")) == ["ha-notify flush: no option --retry-deads"]
    assert problems(words_of("config check|verify")) == ["no command 'config verify'"]
    assert problems(words_of("check haproxy [--pidfile PATH | --no-pidfile] --deep")) == []
    assert problems(words_of("-c /etc/x.toml status --json > out")) == []
    assert problems(words_of("check haproxy --deep exits 1  -> fix: run it by hand")) == []


def example_lines() -> list[list[str]]:
    """Every `ha-notify example TOPIC [FILE]` shown, as arguments; alternatives split."""
    found = []
    for cmd in shown_commands():
        words = words_of(cmd.text)
        if words[:1] != ["example"] or len(words) < 2 or words[1].startswith("["):
            continue
        for topic in words[1].split("|"):
            if topic != "..." and not topic.isupper():
                found.append([topic, *(w for w in words[2:3] if not w.isupper())])
    return found


def test_every_example_shown_exists() -> None:
    """`ha-notify example X [FILE]` as the docs show it prints a shipped file."""
    shown = {tuple(e) for e in example_lines()}
    assert ("config",) in shown and ("systemd", "ha-notify-flush.timer") in shown
    for args in sorted(shown):
        done = subprocess.run(
            [sys.executable, "-m", "ha_notify", "example", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.strip(), (args, done.stderr)


def test_readme_is_a_short_front_page() -> None:
    """README: at most 200 lines, the lab and test commands on its first screen."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    first = "\n".join(lines[:FIRST_SCREEN])
    assert "sh scripts/lab.sh" in first and "sh scripts/test.sh" in first
    assert "sudo" not in " ".join(lines).replace("no `sudo`", "")


def test_readme_links_work_on_pypi() -> None:
    """The README is PyPI's description too: no relative link, which would break there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+)\)", readme) + re.findall(r'(?:href|src)="([^"]+)"', readme)
    assert [t for t in targets if not re.match(r"https?://", t)] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_asks_for_sudo_on_the_repo_scripts(page: Path) -> None:
    """scripts/*.sh run as `sh scripts/X.sh` in a root shell; sudo may not exist there."""
    assert not re.search(r"sudo (sh )?scripts/", page.read_text(encoding="utf-8"))
