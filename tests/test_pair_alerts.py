"""Pair alerts as events: JSON, templates (en, zh_CN), channel filters, Alertmanager fire and
resolve, delivery through the spool, and keepalived's MASTER_RX_LOWER_PRI on the FIFO."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import pytest

from ha_notify.config import load
from ha_notify.event import Event, FifoSignal, Node, Pair, parse_fifo_signal
from ha_notify.notify.engine import Notifier
from ha_notify.notify.fifo import FifoServer
from ha_notify.notify.render import Renderer
from ha_notify.watch.pair import Alert, deliver, to_event
from ha_notify.watch.vips import Vip
from tests.conftest import WriteConfig
from tests.http_recorder import Answer, Recorder, channel, server_fixture  # noqa: F401
from tests.test_durability import wait_for
from tests.test_fifo import reader_log, start_reader

NODE = Node("lb1", "lb1.example.com", ("192.0.2.1",), True)
MAC = "7a:51:95:c6:d6:97"
VIP = Vip("192.0.2.100", "eth0", "VI_1")


def alert(kind: str = "split_brain", resolved: bool = False, **pair: Any) -> Alert:
    fields: dict[str, Any] = {
        "vip": VIP.address,
        "interface": "eth0",
        "instance": "VI_1",
        "since": "2024-05-01T10:00:00+08:00",
        "local_state": "master",
    }
    if kind == "split_brain":
        fields.update(other_macs=(MAC,), other_ip="192.0.2.2", peer_state="master")
    if kind == "not_serving":
        fields.update(ports=(80, 443), frontends=("web",))
    if kind == "unserved":
        fields.update(local_state="backup")
    fields.update(pair)
    return Alert(kind, resolved, VIP, kind != "unserved", Pair(**fields))


def event(kind: str = "split_brain", resolved: bool = False, **pair: Any) -> Event:
    return to_event(alert(kind, resolved, **pair), "prod", NODE)


def test_pair_event_round_trips_through_json() -> None:
    """A spooled pair alert reads back identical: kind, resolved flag and pair facts."""
    ev = event("not_serving", resolved=True)
    assert Event.from_json(ev.to_json()) == ev
    assert (ev.key, ev.filter_key) == ("VIP:192.0.2.100", "not_serving")


WANT = {
    # (kind, resolved): what on-call must read in the body (en)
    ("split_brain", False): [
        MAC,
        "192.0.2.2",
        "eth0",
        "2024-05-01T10:00:00+08:00",
        "MASTER",
        "ip proto 112",
        "nft list ruleset",
    ],
    ("split_brain", True): ["RESOLVED", MAC, "Ended"],
    ("unserved", False): ["No node answers", "BACKUP", "systemctl status keepalived"],
    ("unserved", True): ["RESOLVED", "answers for VIP 192.0.2.100 again"],
    ("not_serving", False): ["80, 443", "web", "ip_nonlocal_bind"],
    ("not_serving", True): ["RESOLVED", "accepts connections"],
}
ZH = {"split_brain": "脑裂", "unserved": "没有任何节点", "not_serving": "haproxy"}


@pytest.mark.parametrize(("kind", "resolved"), list(WANT))
@pytest.mark.parametrize("name", ["subject.txt", "body.txt", "body.html", "chat.md"])
@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_pair_templates_say_what_on_call_needs(
    kind: str, resolved: bool, name: str, language: str
) -> None:
    """Every built-in template renders every pair alert, naming the VIP (and the fix)."""
    text = Renderer(language).render(name, event(kind, resolved))
    assert "192.0.2.100" in text
    if name == "subject.txt":
        assert "\n" not in text.strip()
        return
    if language == "en" and name == "body.txt":
        for needle in WANT[(kind, resolved)]:
            assert needle in text, needle
    if language == "zh_CN" and not resolved:
        assert ZH[kind] in text
    if not resolved and kind == "split_brain":
        assert "tcpdump -ni eth0 ip proto 112" in text


def test_pair_html_escapes_hostile_names() -> None:
    """An interface or instance name cannot inject HTML into the mail."""
    html = Renderer("en").render("body.html", event(instance="<b>x</b>", interface="<i>"))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_old_body_override_does_not_describe_a_split_brain(tmp_path: Path) -> None:
    """An override of body.txt written for transitions is not used for pair alerts."""
    (tmp_path / "body.txt").write_text("{{ node.hostname }} is now {{ STATE }}")
    text = Renderer("en", tmp_path).render("body.txt", event())
    assert "SPLIT BRAIN" in text


STATES = [
    # (states list or None, kinds it receives)
    (None, {"split_brain", "unserved", "not_serving", "master"}),
    (["master", "fault"], {"split_brain", "unserved", "not_serving", "master"}),
    (["fault", "split_brain"], {"split_brain"}),
    (["unserved", "not_serving"], {"unserved", "not_serving"}),
]


@pytest.mark.parametrize(("states", "gets"), STATES)
def test_channel_states_may_name_pair_kinds(
    states: Optional[list[str]], gets: set[str], write_config: WriteConfig
) -> None:
    """A list naming no pair kind gets every pair alert; naming some selects them."""
    table: dict[str, Any] = {"type": "webhook", "url": "http://127.0.0.1:9/"}
    if states is not None:
        table["states"] = states
    ch = load(str(write_config({"hook": table}))).channels[0]
    offered = {"split_brain", "unserved", "not_serving", "master"}
    assert {k for k in offered if ch.wants(k)} == gets


def test_unknown_kind_in_states_names_the_accepted_ones(
    write_config: WriteConfig, cli: Any
) -> None:
    """A typo in states is a config error listing states and pair kinds."""
    table = {"type": "webhook", "url": "http://127.0.0.1:9/", "states": ["split-brain"]}
    res = cli("config", "check", "-c", str(write_config({"hook": table})))
    assert res.code == 2
    assert "channels.hook.states" in res.err and "split_brain, unserved, not_serving" in res.err


def test_alertmanager_fires_and_resolves_a_split_brain(server: Recorder, tmp_path: Path) -> None:
    """The start fires (labels vip and state=split_brain), the end resolves the same alert."""
    ch = channel(tmp_path, {"type": "alertmanager", "urls": [server.url("/am")]})
    asyncio.run(ch.send(event()))
    asyncio.run(ch.send(event(resolved=True)))
    (fire,), (done,) = (r.json() for r in server.requests)
    assert fire["labels"] == done["labels"]
    assert fire["labels"]["state"] == "split_brain" and fire["labels"]["vip"] == VIP.address
    assert fire["labels"]["instance"] == "VI_1" and fire["labels"]["severity"] == "critical"
    since = datetime.fromisoformat("2024-05-01T10:00:00+08:00")
    assert datetime.fromisoformat(fire["startsAt"]) == since
    assert datetime.fromisoformat(fire["endsAt"]) > datetime.now().astimezone()
    assert datetime.fromisoformat(done["startsAt"]) == since
    assert datetime.fromisoformat(done["endsAt"]) <= datetime.now().astimezone()
    assert "tcpdump" in fire["annotations"]["description"]


def test_deliver_spools_in_order_and_retries_after_5xx(
    server: Recorder, write_config: WriteConfig
) -> None:
    """Start and end go through the spool: a 503 keeps both (in order), a flush sends them."""
    server.answer("/hook", Answer(503), Answer(200), Answer(200))
    cfg = write_config(
        {
            "hook": {"type": "webhook", "url": server.url("/hook"), "states": ["master"]},
            "quiet": {"type": "webhook", "url": server.url("/quiet"), "states": ["unserved"]},
        }
    )
    notifier = Notifier(load(str(cfg)))
    mine = deliver(notifier, [alert(), alert(resolved=True)], time.monotonic() + 20)
    assert [d.channel for d in mine] == ["hook", "hook"]  # "quiet" wants unserved only
    assert [d.event.seq for d in mine] == [1, 2]
    assert len(notifier.spool.list_pending()) == 2  # the 503 stopped the group
    notifier.flush()
    bodies = [r.json() for r in server.on("/hook")]
    assert [(b["subject"], b["resolved"]) for b in bodies[1:]] == [
        ("split_brain", False),
        ("split_brain", True),
    ]
    assert bodies[1]["pair"]["other_macs"] == [MAC]
    assert notifier.spool.list_pending() == [] and server.on("/quiet") == []


SIGNALS = [
    (
        'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150',
        FifoSignal("INSTANCE", "VI_1", "MASTER_RX_LOWER_PRI", 150),
    ),
    (
        "INSTANCE VI_2 master_rx_lower_pri 90",
        FifoSignal("INSTANCE", "VI_2", "MASTER_RX_LOWER_PRI", 90),
    ),
    ('INSTANCE "VI_1" MASTER_PRIORITY 90', None),
    ('INSTANCE "VI_1" MASTER 100', None),
    ("garbage", None),
]


@pytest.mark.parametrize(("line", "expected"), SIGNALS)
def test_fifo_signal_forms(line: str, expected: Optional[FifoSignal]) -> None:
    """MASTER_RX_LOWER_PRI (any case) is a signal; states and other lines are not."""
    assert parse_fifo_signal(line) == expected


def test_fifo_hands_the_signal_to_its_hook(write_config: WriteConfig) -> None:
    """The reader passes MASTER_RX_LOWER_PRI to the hook and records no state for it."""
    got: list[FifoSignal] = []
    server = FifoServer(Path("/nonexistent"), load(str(write_config())), on_signal=got.append)
    assert server.handle('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150') == set()
    assert got == [FifoSignal("INSTANCE", "VI_1", "MASTER_RX_LOWER_PRI", 150)]


def test_fifo_reader_reports_split_brain_not_ignored(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    """`ha-notify fifo` logs keepalived's signal as a split brain, once, never as ignored."""
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    reader = start_reader(fifo, write_config())
    try:
        for _ in range(3):  # keepalived repeats it once per advert
            with open(fifo, "w") as writer:
                writer.write('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150\n')
        with open(fifo, "w") as writer:
            writer.write('INSTANCE "VI_1" MASTER_PRIORITY 90\n')
        wait_for(lambda: "ignored" in reader_log(fifo), "the line after the signals")
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.communicate(timeout=60)
    log = reader_log(fifo)
    assert log.count("split brain: keepalived reports INSTANCE VI_1 MASTER_RX_LOWER_PRI") == 1
    assert 'ignored \'INSTANCE "VI_1" MASTER_RX_LOWER_PRI' not in log


@pytest.mark.parametrize(
    ("holds", "language", "said"),
    [
        (True, "en", "lb1 keeps it"),
        (False, "en", "lb1 gave it up"),
        (True, "zh_CN", "由 lb1 保留"),
        (False, "zh_CN", "lb1 已释放"),
    ],
)
def test_split_brain_end_says_whether_this_node_kept_the_vip(
    holds: bool, language: str, said: str
) -> None:
    """The closing subject never says "keeps it" from the node that gave the VIP up."""
    ended = Alert("split_brain", True, VIP, holds, alert("split_brain", True).pair)
    subject = Renderer(language).subject(to_event(ended, "prod", NODE))
    assert said in subject, subject
