"""Templates: built-in English and Chinese, per-file overrides, broken-override fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ha_notify.event import FLAPPING, Event, Node, Transition
from ha_notify.notify.render import TEMPLATES, Renderer


def event(**changes: object) -> Event:
    base = {
        "state": "master",
        "name": "VI_1",
        "cluster": "prod",
        "previous": "backup",
        "priority": 100,
        "seq": 7,
        "node": Node("lb1", "lb1.example.com", ("eth0 10.0.0.2/24",), True),
        "virtual_addresses": ("10.0.0.100",),
    }
    base.update(changes)
    return Event(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["en", "zh_CN"])
@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("state", ["master", "backup", "fault", "stop", "deleted"])
def test_every_builtin_renders(language: str, name: str, state: str) -> None:
    """Every built-in template renders for every state in both languages."""
    text = Renderer(language).render(name, event(state=state))
    assert "VI" in text and text.strip()


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "[prod] lb1 is now MASTER (was BACKUP) - VI_1"),
        ("zh_CN", "[prod] HAProxy 状态切换：lb1 变为 主 MASTER（原为 备 BACKUP） - VI_1"),
    ],
)
def test_subjects(language: str, expected: str) -> None:
    """Subjects in English and Chinese carry cluster, node, states and instance."""
    assert Renderer(language).subject(event()) == expected


def test_flapping_lists_transitions() -> None:
    """A flapping summary lists every transition in order."""
    ts = (Transition("master", "backup", 1, "t1"), Transition("fault", "master", 2, "t2"))
    text = Renderer("en").render("body.txt", event(subject=FLAPPING, transitions=ts))
    assert "FLAPPING" in text
    assert text.index("#1 t1  BACKUP -> MASTER") < text.index("#2 t2  MASTER -> FAULT")


def test_override_file_by_file(tmp_path: Path) -> None:
    """An override replaces one template; the others stay built-in."""
    (tmp_path / "subject.txt").write_text("ALERT {{ e.name }} {{ STATE }}")
    r = Renderer("en", tmp_path)
    assert r.subject(event()) == "ALERT VI_1 MASTER"
    assert "Cluster:        prod" in r.render("body.txt", event())


def test_was_in_an_override(tmp_path: Path) -> None:
    """``was``: the previous state when it differs, else empty (never "None")."""
    (tmp_path / "subject.txt").write_text("{{ STATE }}[{{ was }}]")
    r = Renderer("en", tmp_path)
    assert r.subject(event()) == "MASTER[backup]"
    assert r.subject(event(previous=None)) == "MASTER[]"
    assert r.subject(event(previous="master")) == "MASTER[]"


def test_language_specific_override_wins(tmp_path: Path) -> None:
    """templates_dir/<language>/NAME beats templates_dir/NAME."""
    (tmp_path / "zh_CN").mkdir()
    (tmp_path / "zh_CN" / "subject.txt").write_text("中文 {{ STATE }}")
    (tmp_path / "subject.txt").write_text("generic")
    assert Renderer("zh_CN", tmp_path).subject(event()) == "中文 MASTER"


@pytest.mark.parametrize("broken", ["{{ e.name ", "{{ e.no_such_field }}", "{{ 1 / 0 }}"])
def test_broken_override_falls_back(
    broken: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken override logs the error and the built-in template renders instead."""
    (tmp_path / "subject.txt").write_text(broken)
    with caplog.at_level(logging.ERROR, logger="ha_notify"):
        subject = Renderer("en", tmp_path).subject(event())
    assert subject == "[prod] lb1 is now MASTER (was BACKUP) - VI_1"
    assert "is broken" in caplog.text and "subject.txt" in caplog.text


def test_html_escapes_values() -> None:
    """HTML mail escapes every value taken from the event."""
    html = Renderer("en").render("body.html", event(name="<script>x</script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html
