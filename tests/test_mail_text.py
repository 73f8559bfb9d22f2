"""Mail and chat text says what is true: repeats, where the VIPs are, the node once, test mails."""

from __future__ import annotations

import pytest

from ha_notify.event import TEST, Event, Node
from ha_notify.notify.render import Renderer

LANGUAGES = ("en", "zh_CN")
BODIES = ("body.txt", "body.html", "chat.md")
# Per language: the words each case must show, and those it must never show.
WORDS = {
    "en": {
        "repeat": (
            "repeated, no change",
            ("MASTER -> MASTER", "MASTER &rarr; MASTER", "was MASTER"),
        ),
        "elsewhere": ("NOT on this node", ("now serves the virtual addresses",)),
        "here": ("serves the virtual addresses", ("NOT on this node",)),
        "test": ("TEST", ("Sequence", "Instance", "Priority", "State:")),
    },
    "zh_CN": {
        "repeat": ("重复通知", ("主 MASTER -> 主 MASTER", "主 MASTER &rarr; 主 MASTER", "原为")),
        "elsewhere": ("不在本节点上", ("现在持有虚拟地址",)),
        "here": ("现在持有虚拟地址", ("不在本节点上",)),
        "test": ("测试", ("序号", "实例", "优先级", "状态")),
    },
}


def event(**changes: object) -> Event:
    """A MASTER event on lb1 (FQDN lb1.example.com) holding its VIP, with ``changes``."""
    base: dict[str, object] = {
        "state": "master",
        "name": "VI_1",
        "cluster": "web",
        "node": Node("lb1", "lb1.example.com", ("eth0 10.0.0.2/24",), True),
        "previous": "backup",
        "priority": 100,
        "seq": 7,
        "virtual_addresses": ("10.0.0.10",),
    }
    base.update(changes)
    return Event(**base)  # type: ignore[arg-type]


CASES = {
    "repeat": event(previous="master"),
    "elsewhere": event(node=Node("lb1", "lb1.example.com", ("eth0 10.0.0.2/24",), False)),
    "here": event(),
    "test": event(subject=TEST, previous=None),
}


# The one-line chat message names no VIP sentence when all is well: no "here" case for it.
TABLE = [
    (language, template, case)
    for language in LANGUAGES
    for template in BODIES
    for case in sorted(CASES)
    if (template, case) != ("chat.md", "here")
]


@pytest.mark.parametrize(("language", "template", "case"), TABLE)
def test_body_says_what_is_true(language: str, template: str, case: str) -> None:
    """Each template in each language shows the case's words and none of the false ones."""
    text = Renderer(language).render(template, CASES[case])
    shown, never = WORDS[language][case]
    assert shown in text, text
    for words in never:
        assert words not in text, f"{words!r} in:\n{text}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", ("body.txt", "body.html"))
def test_node_shown_once_when_hostname_is_the_fqdn(language: str, template: str) -> None:
    """`vm (vm)` becomes `vm`; a real FQDN is still shown beside the hostname."""
    renderer = Renderer(language)
    same = renderer.render(template, event(node=Node("vm", "vm", (), None)))
    assert "vm (vm)" not in same and "vm（vm）" not in same
    assert "lb1 (lb1.example.com)" in renderer.render(template, event())


@pytest.mark.parametrize("language", LANGUAGES)
def test_repeat_subject_has_no_was(language: str) -> None:
    """The subject of a repeat names the state once."""
    subject = Renderer(language).subject(event(previous="master"))
    assert subject.count("MASTER") == 1, subject
