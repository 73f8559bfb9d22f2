"""The headline promise, shown: the SMTP relay is down during the failover, both nodes spool
their alerts, and when the relay is back the spooled alerts are delivered.

The relay is taken down by an nftables rule in the service namespace (connections to port 25
are reset, as by a stopped relay) and brought back by deleting it. The lab then does what
``ha-notify-flush.timer`` does every minute, ``ha-notify flush --due`` as the script user on
each node, every few seconds: delivery waits for the first backoff (30 s, +-20%).
"""

from __future__ import annotations

import json
import shutil
import time
from typing import TYPE_CHECKING

from lab import netns
from lab.nodes import SCRIPT_USER, Node

if TYPE_CHECKING:
    from lab.failover_lab import Lab

TABLE = "halab_relay"
FLUSH_EVERY = 5.0  # seconds between the lab's `flush --due` runs (the timer: every minute)
DELIVERY_TIMEOUT = 90.0  # the first backoff is at most 36 s


def down(lab: Lab) -> None:
    """Reset every connection to the relay's port 25 from now on."""
    if shutil.which("nft") is None:
        raise netns.LabError("nft is not installed (apt install nftables): the relay step needs it")
    ns = lab.ns["svc"]
    for words in (
        ["add", "table", "inet", TABLE],
        ["add", "chain", "inet", TABLE, "input", "{ type filter hook input priority 0 ; }"],
        [
            "add",
            "rule",
            "inet",
            TABLE,
            "input",
            "tcp",
            "dport",
            "25",
            "reject",
            "with",
            "tcp",
            "reset",
        ],
    ):
        netns.run(netns.ns_cmd(ns, ["nft", *words]))
    lab.say("   SMTP relay DOWN (port 25 resets every connection) before the failover")


def up(lab: Lab) -> float:
    """The relay answers again; when (monotonic)."""
    netns.run(netns.ns_cmd(lab.ns["svc"], ["nft", "delete", "table", "inet", TABLE]))
    return time.monotonic()


def _as_script_user(node: Node, *args: str) -> list[str]:
    config = str(node.dir / "ha-notify" / "config.toml")
    cmd = ["runuser", "-u", SCRIPT_USER, "--", str(node.ha_notify), *args, "--config", config]
    return netns.ns_cmd(node.ns, cmd)


def pending(node: Node) -> int:
    """How many deliveries wait in ``node``'s spool (ha-notify status, as the script user)."""
    report = json.loads(netns.run(_as_script_user(node, "status", "--json")))
    return sum(int(info["pending"]) for info in report["pending"].values())


def flush_due(node: Node) -> str:
    """One run of what the flush timer runs; its summary line."""
    out = netns.run(_as_script_user(node, "flush", "--due"), check=False)
    return out.splitlines()[0] if out else ""


def spooled_then_delivered(lab: Lab, lb1: Node, lb2: Node) -> None:
    """Step 3: nothing arrived while the relay was down; both alerts wait in the spools and
    arrive once it is back."""
    assert lab.mailbox is not None
    t0, w0 = lab.step2_start
    lab.say("3) the relay was down during the failover: the alerts wait in each node's spool")
    waiting = lab.wait(
        "both nodes spooled their alert",
        lambda: (pending(lb1), pending(lb2)) if pending(lb1) and pending(lb2) else None,
        40,
    )
    arrived = lab.mailbox.find(lb1.name, "FAULT", w0) or lab.mailbox.find(lb2.name, "MASTER", w0)
    lab.check("no mail got through while the relay was down", arrived is None)
    lab.say(f"   spooled: lb1 {waiting[0]} pending, lb2 {waiting[1]} pending; relay still down")
    back = up(lab)
    lab.say(
        f"   +{back - t0:5.2f}s SMTP relay UP again; `ha-notify flush --due` every "
        f"{FLUSH_EVERY:g}s on each node, as ha-notify-flush.timer does every minute",
        at=back,
    )
    deadline = back + DELIVERY_TIMEOUT
    wanted = {(lb1.name, "FAULT"), (lb2.name, "MASTER")}
    found: dict[tuple[str, str], float] = {}
    while len(found) < len(wanted) and time.monotonic() < deadline:
        for node in (lb1, lb2):
            flush_due(node)
        for name, state in wanted - set(found):
            mail = lab.mailbox.find(name, state, w0)
            if mail is not None:
                found[(name, state)] = time.monotonic() - (time.time() - mail.received)
                lab.say(
                    f"   +{found[(name, state)] - t0:5.2f}s {name} {state} mail delivered from "
                    f"the spool, {found[(name, state)] - back:.1f}s after the relay came back",
                    at=found[(name, state)],
                )
        if len(found) < len(wanted):
            time.sleep(FLUSH_EVERY)
    lab.check(
        "the spooled alerts are delivered when the relay comes back",
        len(found) == len(wanted),
        f"delivered {sorted(found)} of {sorted(wanted)} within {DELIVERY_TIMEOUT:g}s",
    )
    left = pending(lb1) + pending(lb2)
    lab.check("nothing left in the spools", left == 0, f"{left} still pending")
    lab.result["relay"] = {
        "down_during_failover": True,
        "spooled": {"lb1": waiting[0], "lb2": waiting[1]},
        "up_after": back - t0,
        "delivered_after_up": {f"{n} {s}": at - back for (n, s), at in found.items()},
    }
