"""The lab's pair scenarios (``--pair``): the watcher pair's split brain, unserved and
not_serving alerts against real keepalived, haproxy and nftables in the node namespaces.

Runs after the watcher lab's step 1 (lb1 MASTER, lb2 BACKUP, a watcher on each node probing
the VIP by ARP every ``probe_interval``):

P1) 20 clean failovers and failbacks (keepalived stopped on the MASTER, started again): 0 pair
    alerts, counted over the run and one ``unserved_after`` + ``probe_interval`` after it;
P2) VRRP dropped both ways on lb2 (nftables, IP protocol 112): both nodes MASTER; the time from
    the second MASTER to the first split_brain mail (target <= probe_interval + 3 s); rule
    removed: lb2 BACKUP, the RESOLVED mails;
P3) VRRP dropped one way (lb2 hears nothing from lb1; lb1 hears lb2): the same alerts;
P4) keepalived stopped on both nodes: a VIP nobody holds, unserved after ``unserved_after``;
    keepalived back on lb1: RESOLVED;
P5) the MASTER's haproxy refuses VIP:80 (an nftables reject in its namespace: what a failed
    bind or a firewall look like from the node): not_serving, then RESOLVED.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab import configs
from lab.netns import ns_cmd, run

if TYPE_CHECKING:
    from lab.failover_lab import Lab
    from lab.nodes import Node

PROBE_INTERVAL = 5.0  # [watch] probe_interval of contrib/ha-notify/config.toml (default)
UNSERVED_AFTER = 10.0
SPLIT_TARGET = PROBE_INTERVAL + 3.0
CYCLES = 20
SB = "split_brain"
TABLE = "hnpair"
_KINDS = (
    (re.compile(r"RESOLVED: split brain"), "split_brain", True),
    (re.compile(r"RESOLVED: VIP \S+ is answered"), "unserved", True),
    (re.compile(r"RESOLVED: haproxy on"), "not_serving", True),
    (re.compile(r"SPLIT BRAIN:"), "split_brain", False),
    (re.compile(r"is held by NO node"), "unserved", False),
    (re.compile(r"holds VIP \S+ but haproxy refuses"), "not_serving", False),
)


@dataclass(frozen=True)
class PairMail:
    node: str
    kind: str
    resolved: bool
    received: float  # wall clock
    subject: str


def pair_mails(lab: Lab, after: float) -> list[PairMail]:
    """The pair alerts the lab's SMTP server received after ``after`` (wall clock)."""
    assert lab.mailbox is not None
    lab.mailbox.poll()
    found = []
    for mail in lab.mailbox.mails:
        if mail.received < after:
            continue
        for pattern, kind, resolved in _KINDS:
            if pattern.search(mail.subject):
                found.append(PairMail(mail.node, kind, resolved, mail.received, mail.subject))
                break
    return sorted(found, key=lambda m: m.received)


def nft(node: Node, *rules: str) -> None:
    """Replace this node's lab table with ``rules`` (input/output chains); none: remove it."""
    run(ns_cmd(node.ns, ["nft", "delete", "table", "inet", TABLE]), check=False)
    if not rules:
        return
    run(ns_cmd(node.ns, ["nft", "add", "table", "inet", TABLE]))
    for hook in ("input", "output"):
        spec = f"{{ type filter hook {hook} priority 0 ; }}"
        run(ns_cmd(node.ns, ["nft", "add", "chain", "inet", TABLE, hook, spec]))
    for rule in rules:
        run(ns_cmd(node.ns, ["nft", "add", "rule", "inet", TABLE, *rule.split()]))


_shown: set[tuple[str, str, float]] = set()


def _timeline(lab: Lab, mails: list[PairMail], t_wall: float) -> None:
    """Print the mails not printed yet, relative to ``t_wall``."""
    for m in mails:
        if (m.node, m.subject, m.received) in _shown:
            continue
        _shown.add((m.node, m.subject, m.received))
        end = "RESOLVED " if m.resolved else ""
        lab.say(f"   +{m.received - t_wall:5.2f}s {m.node} mail: {end}{m.kind}: {m.subject}")


def _all_ended(lab: Lab, kind: str, after: float) -> list[PairMail]:
    """The mails since ``after`` once every node that raised ``kind`` also resolved it."""
    got = [m for m in pair_mails(lab, after) if m.kind == kind]
    raised = {m.node for m in got if not m.resolved}
    ended = {m.node for m in got if m.resolved}
    return got if raised and raised <= ended else []


def _wait_mails(lab: Lab, what: str, after: float, want: list[tuple[str, bool]]) -> list[PairMail]:
    """Wait until every (kind, resolved) in ``want`` arrived (from any node)."""

    def arrived() -> list[PairMail]:
        got = pair_mails(lab, after)
        have = {(m.kind, m.resolved) for m in got}
        return got if all(w in have for w in want) else []

    result: list[PairMail] = lab.wait(what, arrived, 60)
    return result


def _master_of(lab: Lab, lb1: Node, lb2: Node) -> tuple[Node, Node]:
    master = lb1 if lb1.log.state() == "MASTER" else lb2
    return master, (lb2 if master is lb1 else lb1)


def _cycle(lab: Lab, number: int, master: Node, backup: Node) -> None:
    """keepalived stopped on the MASTER (the other takes the VIP), then started again."""
    t0 = time.monotonic()
    master.stop_keepalived()
    lab.wait(f"cycle {number}: {backup.name} MASTER", lambda: backup.log.first("MASTER", t0), 30)
    lab.wait(f"cycle {number}: VIP on {backup.name}", backup.holds_vip, 10)
    master.start_keepalived()
    lab.wait(f"cycle {number}: {master.name} BACKUP", lambda: master.log.first("BACKUP", t0), 60)


def clean_failovers(lab: Lab, lb1: Node, lb2: Node) -> None:
    start = time.time()
    lab.say(f"P1) {CYCLES} clean failovers and failbacks (keepalived stopped on the MASTER)")
    for number in range(1, CYCLES + 1):
        master, backup = _master_of(lab, lb1, lb2)
        _cycle(lab, number, master, backup)
    settle = UNSERVED_AFTER + PROBE_INTERVAL + 2
    time.sleep(settle)  # an alert confirmed after the last cycle still counts
    false = pair_mails(lab, start)
    lab.say(
        f"   {CYCLES} failovers in {time.time() - start - settle:.0f}s (+{settle:.0f}s settle): "
        f"{len(false)} pair alerts"
    )
    _timeline(lab, false, start)
    lab.check(f"{CYCLES} clean failovers: 0 pair alerts", not false, str(len(false)))
    lab.result["pair_false_alerts"] = len(false)


def split_brain(lab: Lab, lb1: Node, lb2: Node, *, both_ways: bool) -> None:
    _, backup = _master_of(lab, lb1, lb2)
    how = "both ways" if both_ways else "one way"
    rules = ["input ip protocol vrrp drop"]
    if both_ways:
        rules.append("output ip protocol vrrp drop")
    t0, w0 = time.monotonic(), time.time()
    nft(backup, *rules)
    step = "P2" if both_ways else "P3"
    lab.say(f"{step}) VRRP (IP protocol 112) dropped {how} on {backup.name} (nftables)")
    became = lab.wait(f"{backup.name} MASTER", lambda: backup.log.first("MASTER", t0), 30)
    both_wall = became.wall
    lab.say(f"   +{became.mono - t0:5.2f}s {backup.name} MASTER too: both nodes MASTER")
    mails = _wait_mails(lab, f"split_brain mail ({how})", w0, [(SB, False)])
    first = next(m.received for m in mails if m.kind == SB) - both_wall
    _timeline(lab, mails, w0)
    lab.say(
        f"   both MASTER -> split_brain mail: {first:.2f}s (target <= {SPLIT_TARGET:g}s = "
        f"probe_interval + 3)"
    )
    ok = first <= SPLIT_TARGET
    lab.check(f"split brain ({how}) mailed within {SPLIT_TARGET:g}s", ok, f"{first:.2f}s")
    t1 = time.monotonic()
    nft(backup)
    lab.say(f"   nftables rule removed on {backup.name}")
    lab.wait(f"{backup.name} BACKUP again", lambda: backup.log.first("BACKUP", t1), 30)
    ended = lab.wait(f"split_brain RESOLVED ({how})", lambda: _all_ended(lab, SB, w0), 60)
    _timeline(lab, ended, w0)
    lab.result[f"split_brain_{'both' if both_ways else 'one'}_way"] = {
        "mail_after_both_master": first,
        "alerts": [(m.node, m.kind, m.resolved) for m in mails + ended],
    }


def unserved(lab: Lab, lb1: Node, lb2: Node) -> None:
    w0 = time.time()
    for node in (lb1, lb2):
        node.stop_keepalived()
    lab.say("P4) keepalived stopped on lb1 and lb2: nobody holds the VIP")
    lab.wait("VIP gone", lambda: not lb1.holds_vip() and not lb2.holds_vip(), 10)
    mails = _wait_mails(lab, "unserved mail", w0, [("unserved", False)])
    _timeline(lab, mails, w0)
    first = next(m.received for m in mails if m.kind == "unserved") - w0
    lab.say(f"   VIP gone -> unserved mail: {first:.2f}s (unserved_after {UNSERVED_AFTER:g}s)")
    t1 = time.monotonic()
    lb1.start_keepalived()
    lab.wait("lb1 MASTER", lambda: lb1.log.first("MASTER", t1), 60)
    ended = lab.wait("unserved RESOLVED", lambda: _all_ended(lab, "unserved", w0), 60)
    _timeline(lab, ended, w0)
    lb2.start_keepalived()
    lab.wait("lb2 BACKUP", lambda: lb2.log.first("BACKUP", t1), 60)
    lab.result["unserved"] = {"mail_after_vip_gone": first}


def not_serving(lab: Lab, lb1: Node, lb2: Node) -> None:
    master, _ = _master_of(lab, lb1, lb2)
    w0 = time.time()
    nft(master, f"input ip daddr {configs.VIP} tcp dport 80 reject with tcp reset")
    lab.say(f"P5) {master.name} (MASTER) refuses TCP on VIP:80 (nftables reject)")
    mails = _wait_mails(lab, "not_serving mail", w0, [("not_serving", False)])
    _timeline(lab, mails, w0)
    nft(master)
    lab.say(f"   rule removed on {master.name}")
    ended = lab.wait("not_serving RESOLVED", lambda: _all_ended(lab, "not_serving", w0), 60)
    _timeline(lab, ended, w0)
    lab.check("not_serving raised and resolved", bool(mails and ended))


def run_all(lab: Lab, lb1: Node, lb2: Node) -> None:
    clean_failovers(lab, lb1, lb2)
    split_brain(lab, lb1, lb2, both_ways=True)
    split_brain(lab, lb1, lb2, both_ways=False)
    unserved(lab, lb1, lb2)
    not_serving(lab, lb1, lb2)
