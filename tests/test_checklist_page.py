"""The deploy checklist of docs/getting-started.md is what `lab.sh --checklist` runs: its
structure, and the stand-ins the lab nodes answer some of its commands with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab import checklist, unitfile
from lab.netns import LabError

STEPS = checklist.read_steps()
SUPPORTED = {"start", "stop", "restart", "reload", "enable", "disable", "daemon-reload",
             "is-active", "is-enabled", "status"}  # fmt: skip


def test_steps_are_numbered_and_each_has_commands() -> None:
    """Every numbered step has a block of commands to run (nothing left to prose)."""
    assert [s.number for s in STEPS] == list(range(1, len(STEPS) + 1))
    assert len(STEPS) >= 10
    assert all(s.script(1).strip() and s.script(2).strip() for s in STEPS)


def test_only_the_last_step_runs_on_the_master() -> None:
    """The failover step comes once both nodes are done."""
    assert [s.on_master for s in STEPS] == [False] * (len(STEPS) - 1) + [True]


def test_node_lines_pick_each_node_its_own_keepalived_file() -> None:
    """`# on node N` lines: node 1 gets node1's file, node 2 node2's, never both."""
    (step,) = [
        s
        for s in STEPS
        if "keepalived.conf" in "\n".join(s.lines) and "example" in "\n".join(s.lines)
    ]
    for node, other in ((1, 2), (2, 1)):
        script = step.script(node)
        assert f"node{node}" in script and f"node{other}" not in script


def test_the_lab_variant_substitution_still_matches_the_page() -> None:
    """The lab turns the watcher variant into the vrrp_script one; a reworded step 8 must
    fail here, not silently test the wrong keepalived.conf."""
    text = "\n".join(line for s in STEPS for line in s.lines)
    assert len(checklist.VARIANT.findall(text)) == 2


def test_every_systemctl_verb_used_is_one_the_stand_in_serves() -> None:
    """A step using a verb the lab's init does not know would fail only in the lab run."""
    text = "\n".join(line for s in STEPS for line in s.lines)
    verbs = set(re.findall(r"systemctl (?:--\S+ )*([a-z-]+)", text))
    assert verbs and verbs <= SUPPORTED


def test_a_gap_in_the_numbering_is_refused(tmp_path: Path) -> None:
    """A page whose steps skip a number is refused with a message naming it."""
    page = tmp_path / "page.md"
    page.write_text("## The deploy checklist\n\n1. **One.**\n\n3. **Three.**\n\n## Next\n")
    with pytest.raises(LabError, match="not numbered"):
        checklist.read_steps(page)


def test_systemd_variable_expansion() -> None:
    """`$VAR` alone splits into words, `${VAR}` stays one word, unknown ones are empty."""
    env = {"EXTRAOPTS": "-S /run/haproxy-master.sock", "CONFIG": "/etc/haproxy/haproxy.cfg"}
    line = "/usr/sbin/haproxy -Ws -f $CONFIG $EXTRAOPTS $NOTSET x${CONFIG}"
    assert unitfile.expand(line, env) == [
        "/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg",
        "-S", "/run/haproxy-master.sock", "x/etc/haproxy/haproxy.cfg",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "value"), [("200ms", 0.2), ("5s", 5.0), ("1min", 60.0), ("1min 30s", 90.0), ("7", 7.0)]
)
def test_time_spans(text: str, value: float) -> None:
    """systemd's time spans, as the shipped units and timer write them."""
    assert unitfile.seconds(text) == pytest.approx(value)


def test_the_watch_unit_runs_as_the_script_user_with_net_raw(tmp_path: Path) -> None:
    """The stand-in keeps what matters of the shipped watcher unit: user, group, capability."""
    unit = unitfile.Unit.parse(
        "ha-notify-watch.service",
        checklist.configs.REPO / "contrib" / "systemd" / "ha-notify-watch.service",
    )
    argv = unit.credentials()
    assert "--reuid=keepalived_script" in argv and "--regid=haproxy" in argv
    assert "--ambient-caps=+net_raw" in argv


@pytest.mark.parametrize(
    ("text", "words"),
    [(None, "cannot read the page"), ("# Getting started\n", "no '## The deploy checklist'")],
)
def test_page_option_refuses_a_page_it_cannot_follow(
    tmp_path: Path, text: object, words: str
) -> None:
    """`--page` with a missing file or a page without the checklist says so in one line."""
    page = tmp_path / "page.md"
    if isinstance(text, str):
        page.write_text(text)
    with pytest.raises(LabError, match=re.escape(words)):
        checklist.read_steps(page)


def test_page_option_is_only_for_checklist_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`--page` without `--checklist` is a usage error, before anything is set up."""
    from lab import failover_lab

    with pytest.raises(SystemExit) as exited:
        failover_lab.main(["--page", "x.md"])
    assert exited.value.code == 2
    assert "--page goes with --checklist" in capsys.readouterr().err
