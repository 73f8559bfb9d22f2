"""The package's shape: layers import downwards, names mean one thing, facts live once."""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

import ha_notify
from ha_notify import plugin

PACKAGE = Path(ha_notify.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "contrib" not in p.parts)
# What Python 3.10+ lists in sys.stdlib_module_names, for the names a module here might take.
STDLIB = set(getattr(sys, "stdlib_module_names", ())) | {"email", "http", "json", "logging"}


def imported(path: Path) -> set[str]:
    """Every ha_notify module ``path`` imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("ha_notify")}


def test_nothing_below_the_cli_imports_it() -> None:
    """Only the CLI package and the console-script entry import ha_notify.cli."""
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in MODULES
        if "cli" not in p.relative_to(PACKAGE).parts[:1]
        and p.name != "__main__.py"
        and any(n == "ha_notify.cli" or n.startswith("ha_notify.cli.") for n in imported(p))
    ]
    assert offenders == []


def test_no_module_shadows_the_standard_library_or_another() -> None:
    """No module is named like a standard-library one, and no two modules share a name."""
    names = [p.stem for p in MODULES if p.stem not in ("__init__", "__main__")]
    assert sorted(set(names) & STDLIB) == []
    assert [n for n, count in Counter(names).items() if count > 1] == []


def test_no_two_classes_share_a_name() -> None:
    """A class name means one thing across the package (e.g. no two Request or Reply)."""
    classes = Counter(
        node.name
        for p in MODULES
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    )
    assert [name for name, count in classes.items() if count > 1] == []


def constants(path: Path) -> list[object]:
    """The literal values in ``path``'s code (docstrings left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docs]


@pytest.mark.parametrize(
    "fact",
    [
        "/etc/ha-notify/config.toml",
        "HA_NOTIFY_CONFIG",
        "HA_NOTIFY_RUN_DIR",
        "HA_NOTIFY_SYSLOG",
        "HA_NOTIFY_LOG_STDERR",
        "/run/ha-notify",
        604800.0,
        "ha_notify.checks",
        "ha_notify.channels",
        "split_brain",
    ],
)
def test_each_shared_fact_is_written_once(fact: object) -> None:
    """The config path, env names, the duration cap, plugin groups: one definition each."""
    where = [str(p.relative_to(PACKAGE)) for p in MODULES if fact in constants(p)]
    assert where == ["constants.py"]


def test_the_states_are_listed_once() -> None:
    """Only constants.py spells out the list of VRRP states."""
    where = [
        str(p.relative_to(PACKAGE))
        for p in MODULES
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, (ast.Tuple, ast.List, ast.Set))
        and {"master", "backup", "fault"} <= {getattr(e, "value", None) for e in node.elts}
    ]
    assert where == ["constants.py"]


def test_one_toml_reader() -> None:
    """Only configfile.py parses TOML (the check path and the notify path share it)."""
    readers = [
        str(p.relative_to(PACKAGE))
        for p in MODULES
        if re.search(r"\btoml(lib|i)?\.loads?\(", p.read_text(encoding="utf-8"))
    ]
    assert readers == ["configfile.py"]


def test_the_plugin_api_exports_what_it_declares() -> None:
    """ha_notify.plugin's __all__ names exist: the contract a plugin author reads."""
    assert all(hasattr(plugin, name) for name in plugin.__all__)
    for capability in ("Preview", "Probe", "Channel", "Check", "Context", "Event"):
        assert capability in plugin.__all__
