"""The lab's fleet scenario (``--fleet``): a real split brain, seen by Prometheus, sent by
Alertmanager.

The pair runs on ``ha-notify watch`` (as ``--watch``); each watcher writes its metrics file,
node_exporter serves it from inside its node's namespace (textfile collector, on the node's
address), and Prometheus and Alertmanager run in the service namespace with
contrib/prometheus/ha-notify-rules.yml and contrib/alertmanager/alertmanager.yml (receivers
pointed at a webhook sink; every rule's ``for:`` cut to FOR_LAB, grouping to seconds: the
lab's only changes). After step 1:

F1) the fleet starts; Prometheus sees lb1 MASTER and lb2 BACKUP, fresh;
F2) VRRP (IP protocol 112) dropped both ways with nftables in both node namespaces: lb2
    stops hearing lb1 and becomes MASTER too; the timeline follows the alert from keepalived
    to the webhook: exactly one grouped HAPairDualMaster notification;
F3) the nftables rules removed: lb2 goes back to BACKUP and the same group is resolved.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING, Any, Optional

from lab import configs, netns
from lab.fleet import ALERTMANAGER_PORT, PROMETHEUS_PORT, Fleet
from lab.netns import LabError
from lab.nodes import Node

if TYPE_CHECKING:
    from lab.failover_lab import Lab

FOR_LAB = "5s"  # contrib: HAPairDualMaster for 30s; a lab run cannot wait production windows
SETTLE = 90.0  # a bound on each wait on a loaded machine, not a wait
TABLE = "halab_split"
SPLIT_RULES = f"""table inet {TABLE} {{
    chain input {{ type filter hook input priority 0; ip protocol 112 drop; }}
    chain output {{ type filter hook output priority 0; ip protocol 112 drop; }}
}}
"""


def split(node: Node) -> None:
    """Drop VRRP both ways on ``node`` (what a firewall change does to a real pair)."""
    done = subprocess.run(
        netns.ns_cmd(node.ns, ["nft", "-f", "-"]),
        input=SPLIT_RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"{node.name}: nft -f: exit {done.returncode}: {done.stderr.strip()}")


def heal(node: Node) -> None:
    netns.run(netns.ns_cmd(node.ns, ["nft", "delete", "table", "inet", TABLE]))


def run(lab: Lab, lb1: Node, lb2: Node) -> None:
    assert lab.workdir is not None
    nodes = (lb1, lb2)
    fleet = Fleet(
        lab.workdir / "fleet",
        [n.name for n in nodes],
        for_override=FOR_LAB,
        ns=lab.ns["svc"],
        exporters=[(n.ns, n.address, n.dir / "metrics") for n in nodes],
    )
    with fleet:
        lab.say(
            "F1) node_exporter in lb1's and lb2's namespaces (textfile: each watcher's "
            "metrics folder), Prometheus and Alertmanager in the service namespace, contrib "
            f"rules and routing; lab only: every rule's for: cut to {FOR_LAB}, group_wait 1s"
        )
        fresh = 'ha_notify:vrrp_state:fresh{state="%s"} == 1'
        fleet.wait(
            "Prometheus sees lb1 MASTER and lb2 BACKUP",
            lambda: (
                _nodes(fleet, fresh % "master") == ["lb1"]
                and _nodes(fleet, fresh % "backup") == ["lb2"]
            ),
            SETTLE,
        )
        lab.say("   Prometheus sees lb1 MASTER, lb2 BACKUP (both watchers fresh)")
        lab.check("no notification before the split", fleet.notifications() == [])
        timeline: dict[str, float] = {}
        t0 = time.monotonic()
        for node in nodes:
            split(node)
        lab.say("F2) VRRP dropped both ways (nftables, IP protocol 112) on lb1 and lb2")

        def mark(what: str, at: Optional[float] = None) -> None:
            timeline[what] = (at if at is not None else time.monotonic()) - t0
            lab.say(f"   +{timeline[what]:5.2f}s {what}")

        master = lab.wait("lb2 MASTER", lambda: lb2.log.first("MASTER", t0), SETTLE)
        mark("lb2 MASTER too (keepalived)", master.mono)
        two = fresh % "master"
        fleet.wait("Prometheus sees 2 MASTERs", lambda: len(_nodes(fleet, two)) == 2, SETTLE)
        mark("Prometheus sees 2 MASTERs (scraped from both exporters)")
        fleet.wait("HAPairDualMaster firing", lambda: _alert_state(fleet) == "firing", SETTLE)
        mark(f"HAPairDualMaster firing in Prometheus (for: {FOR_LAB})")
        fleet.wait("the notification", fleet.notifications, SETTLE)
        mark("webhook: the Alertmanager notification")
        t1 = time.monotonic()
        for node in nodes:
            heal(node)
        lab.say(f"F3) nftables rules removed (+{t1 - t0:.2f}s)")
        backup = lab.wait("lb2 BACKUP", lambda: lb2.log.first("BACKUP", t1), SETTLE)
        mark("lb2 BACKUP again (keepalived)", backup.mono)
        fleet.wait(
            "the resolved notification",
            lambda: len(fleet.notifications()) >= 2,
            SETTLE,
        )
        mark("webhook: the resolved notification")
        settle = time.monotonic() + 5.0  # group_interval 2s: a late extra would show by then
        while time.monotonic() < settle:
            time.sleep(0.2)
        sent = fleet.notifications()
        firing_alerts = fleet.get(ALERTMANAGER_PORT, "/api/v2/alerts")
    _report(lab, sent, firing_alerts, timeline, lb1, lb2)


def _report(
    lab: Lab,
    sent: list[dict[str, Any]],
    still: list[dict[str, Any]],
    timeline: dict[str, float],
    lb1: Node,
    lb2: Node,
) -> None:
    shown = [
        (n["body"]["status"], n["body"]["groupLabels"], [a["labels"] for a in n["body"]["alerts"]])
        for n in sent
    ]
    cluster = str(configs.ha_notify_config(1, lb1.dir)["general"]["cluster"])
    for status, group, alerts in shown:
        names = ", ".join(a["alertname"] for a in alerts)
        lab.say(f"   webhook got: {status:<8} group {group}: {names}")
    expected_alert = {
        "alertname": "HAPairDualMaster",
        "cluster": cluster,
        "vrrp_instance": configs.INSTANCE,
        "severity": "critical",
    }
    lab.check(
        "one grouped HAPairDualMaster notification, then its resolution, nothing else",
        [s for s, _g, _a in shown] == ["firing", "resolved"]
        and all(g == {"cluster": cluster} and a == [expected_alert] for _s, g, a in shown)
        and all(n["path"] == "/ha-critical" for n in sent),
        repr(shown),
    )
    lab.check("Alertmanager holds no alert at the end", still == [], repr(still))
    lab.check(
        "the pair is back: lb1 MASTER, lb2 BACKUP",
        lb1.log.state() == "MASTER" and lb2.log.state() == "BACKUP",
        f"{lb1.log.state()} / {lb2.log.state()}",
    )
    lab.result["fleet"] = {
        "for": FOR_LAB,
        "timeline": timeline,
        "notifications": [
            {"status": s, "group": g, "alerts": a, "path": n["path"]}
            for (s, g, a), n in zip(shown, sent)
        ],
    }


def _nodes(fleet: Fleet, expr: str) -> list[str]:
    return sorted(s["metric"].get("node", "") for s in fleet.query(expr))


def _alert_state(fleet: Fleet) -> Optional[str]:
    answer = fleet.get(PROMETHEUS_PORT, "/api/v1/alerts")
    alerts = answer["data"]["alerts"]
    states = [a["state"] for a in alerts if a["labels"]["alertname"] == "HAPairDualMaster"]
    return states[0] if states else None
