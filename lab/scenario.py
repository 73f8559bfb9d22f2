"""The four steps of the failover scenario, each printing its part of the timeline.

1) the VIP on lb1, Host-routed requests reach the right backend, the standby's haproxy is
up; 2) haproxy stopped on lb1: lb1 FAULT, lb2 MASTER, the VIP moves, traffic flows; 3) the
mails both nodes sent and their latency; 4) haproxy back on lb1: nopreempt keeps the VIP on
lb2.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING, Optional

from lab import configs
from lab.nodes import Mail, Node

if TYPE_CHECKING:
    from lab.failover_lab import Lab

HOLD_SECONDS = 5.0  # how long step 4 watches that the VIP stays on lb2
_script_ok = re.compile(r"VRRP_Script\(chk_haproxy\) succeeded")
_script_failed = re.compile(r"VRRP_Script\(chk_haproxy\) failed")


def step1(lab: Lab, lb1: Node, lb2: Node) -> None:
    lab.say(f"1) lb1 MASTER with {configs.VIP}; lb2 BACKUP")
    lab.check("VIP on lb1 only", lb1.holds_vip() and not lb2.holds_vip())
    traffic = []
    for name, site, host, _address in configs.BACKENDS:
        answer = lab.get(host, timeout=3)
        ok = bool(
            answer
            and answer["status"] == 200
            and answer.get("backend") == name
            and answer.get("via") == "lb1"
        )
        traffic.append({"host": host, "expected": name, "answer": answer, "ok": ok})
        lab.check(f"{host} reaches {name} via lb1", ok, json.dumps(answer))
        shown = f"{answer['status']} {answer.get('backend')}" if answer else "no answer"
        lab.say(
            f"   Host {host:<19} -> {shown} (site {site}) via "
            f"{answer.get('via') if answer else '?'}"
        )
    unknown = lab.get("unknown.example.org", timeout=3)
    lab.check(
        "unknown Host gets 404", bool(unknown and unknown["status"] == 404), json.dumps(unknown)
    )
    lab.say(f"   Host unknown.example.org   -> {unknown['status'] if unknown else '?'}")
    listening = lb2.listening(80)
    stat = lb2.stats("show stat")
    frontend_open = any(
        r.startswith("sites,FRONTEND,") and ",OPEN," in r for r in stat.splitlines()
    )
    servers_up = sum(
        1
        for r in stat.splitlines()
        if r.split(",")[1:2] and r.split(",")[1].startswith("webapp") and ",UP," in r
    )
    checked = lb2.verdict() == "0" if lb2.watch else bool(lb2.log.grep(_script_ok))
    lab.check(
        "standby haproxy listens on the VIP", f"{configs.VIP}:80" in listening, str(listening)
    )
    lab.check(
        "standby haproxy frontend OPEN, 3 servers UP", frontend_open and servers_up == 3, stat
    )
    how = "ha-notify watch's verdict" if lb2.watch else "ha-notify check haproxy --deep"
    lab.check(f"standby passes {how}", checked)
    lab.say(
        f"   standby lb2: haproxy listening on {configs.VIP}:80 without holding it "
        f"(ip_nonlocal_bind), frontend OPEN, {servers_up}/3 servers UP, "
        f"deep check {'passing' if checked else 'NOT passing'}"
    )
    lab.result["step1"] = {"vip": "lb1", "traffic": traffic, "standby_listening": listening}


def step2(lab: Lab, lb1: Node, lb2: Node) -> None:
    probes: list[tuple[float, Optional[str]]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            answer = lab.get("www.example.com", timeout=0.5)
            ok = answer is not None and answer["status"] == 200
            probes.append((time.monotonic(), answer["via"] if ok and answer else None))
            stop.wait(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        lab.wait("probe traffic through lb1", lambda: any(v == "lb1" for _, v in probes), 10)
        t0, w0 = time.monotonic(), time.time()
        lb1.stop_haproxy()
        lab.say("2) haproxy stopped on lb1 (SIGTERM to the master, as systemctl stop)", at=t0)
        fault = lab.wait("lb1 FAULT", lambda: lb1.log.first("FAULT", t0), 30)
        lab.say(f"   +{fault.mono - t0:5.2f}s lb1 FAULT   ({fault.cause or '?'})", at=fault.mono)
        master = lab.wait("lb2 MASTER", lambda: lb2.log.first("MASTER", t0), 30)
        lab.say(f"   +{master.mono - t0:5.2f}s lb2 MASTER  ({master.cause or '?'})", at=master.mono)
        lab.wait("VIP on lb2", lambda: lb2.holds_vip() and not lb1.holds_vip(), 15)
        moved = time.monotonic()
        lab.say(f"   +{moved - t0:5.2f}s VIP {configs.VIP} on lb2, gone from lb1", at=moved)
        served = lab.wait(
            "traffic through lb2",
            lambda: next((t for t, v in probes if t > t0 and v == "lb2"), None),
            15,
        )
        stop.wait(0.5)
    finally:
        stop.set()
        prober.join(5)
    after = [(t, v) for t, v in probes if t > t0]
    failed = sum(1 for t, v in after if v is None and t < served)
    last_lb1 = max((t for t, v in probes if v == "lb1"), default=t0)
    lab.say(
        f"   +{served - t0:5.2f}s first request served through lb2: failover time "
        f"{served - t0:.2f}s ({failed} probe(s) failed, traffic gap "
        f"{served - last_lb1:.2f}s, probes every 0.1s)",
        at=served,
    )
    lab.check("lb1 FAULT and lb2 MASTER", True)
    lab.check("VIP moved to lb2", lb2.holds_vip() and not lb1.holds_vip())
    www = lab.get("www.example.com", timeout=3)
    lab.check(
        "traffic through lb2 after failover",
        bool(www and www["status"] == 200 and www["via"] == "lb2"),
        json.dumps(www),
    )
    lab.result["step2"] = {
        "stopped_at": w0,
        "fault_after": fault.mono - t0,
        "master_after": master.mono - t0,
        "vip_moved_after": moved - t0,
        "failover_seconds": served - t0,
        "failed_probes": failed,
        "vip": "lb2",
    }
    lab.step2_start = (t0, w0)


def step3(lab: Lab, lb1: Node, lb2: Node) -> None:
    assert lab.mailbox is not None
    _t0, w0 = lab.step2_start
    lab.say("   mails received by the SMTP server (latency from the state change, outage included)")
    wanted = ((lb1, "FAULT"), (lb2, "MASTER"))
    for node, state in wanted:
        event = node.log.first(state, lab.step2_start[0])

        def mailed(n: Node = node, s: str = state) -> Optional[Mail]:
            return lab.mailbox.find(n.name, s, w0) if lab.mailbox else None

        mail = lab.wait(f"mail: {node.name} {state}", mailed, 40)
        assert event is not None
        _report_mail(lab, mail, mail.received - event.wall)
    # The event carries the previous state from ha-notify's state store: proof that
    # ha-notify could keep its state and spool as keepalived runs it (script user,
    # keepalived's umask 0177), not only send a mail.
    fault = lab.mailbox.find(lb1.name, "FAULT", w0)
    lab.check(
        "lb1's FAULT mail carries the previous state MASTER (state store works)",
        bool(fault and "MASTER" in f"{fault.subject}\n{fault.body}"),
        fault.subject if fault else "no mail",
    )


def _report_mail(lab: Lab, mail: Mail, latency: float) -> None:
    lab.say(f"   from {mail.node} ({mail.peer}) after {latency:5.2f}s: {mail.subject!r}")
    lab.check(f"mail {mail.node} {mail.state} names the node", mail.names_node, mail.subject)
    lab.result.setdefault("mails", []).append(
        {
            "node": mail.node,
            "peer": mail.peer,
            "state": mail.state,
            "subject": mail.subject,
            "latency": latency,
            "names_node": mail.names_node,
            "to": mail.recipients,
            "body": mail.body,
        }
    )


def step4(lab: Lab, lb1: Node, lb2: Node) -> None:
    # Leave haproxy down until the deep check has failed too (fall 2 x interval 5s), as
    # in a real outage: coming back then takes chk_haproxy's rise 2, not only the
    # process reappearing.
    t2 = lab.step2_start[0]
    failed = lab.wait("lb1 chk_haproxy failed", lambda: lb1.log.when(_script_failed, t2), 40)
    lab.say(
        f"   +{failed - t2:5.2f}s lb1 chk_haproxy (ha-notify check haproxy --deep) "
        f"failed as well (fall 2 x interval 5s)",
        at=failed,
    )
    t0, w0 = time.monotonic(), time.time()
    lb1.start_haproxy()
    lab.say("4) haproxy started again on lb1", at=t0)
    lab.wait("lb1 haproxy up again", lb1.haproxy_ready, 20)
    backup = lab.wait("lb1 BACKUP again", lambda: lb1.log.first("BACKUP", t0), 60)
    back = lb1.log.when(_script_ok, t0)
    if back is not None:
        lab.say(f"   +{back - t0:5.2f}s lb1 chk_haproxy passes again (rise 2)", at=back)
    lab.say(f"   +{backup.mono - t0:5.2f}s lb1 BACKUP ({backup.cause or '?'})", at=backup.mono)
    hold_end = time.monotonic() + HOLD_SECONDS
    stayed = True
    while time.monotonic() < hold_end:
        stayed = stayed and lb2.holds_vip() and not lb1.holds_vip()
        time.sleep(0.2)
    stayed = stayed and lb2.log.state() == "MASTER" and lb1.log.state() == "BACKUP"
    www = lab.get("www.example.com", timeout=3)
    via = www["via"] if www else "nobody"
    lab.say(
        f"   nopreempt: {HOLD_SECONDS:g}s later the VIP is still on "
        f"{'lb2' if lb2.holds_vip() else 'lb1'} (lb1 priority 100 > lb2 90); "
        f"www served via {via}"
    )
    lab.check("nopreempt keeps the VIP on lb2", stayed)
    lab.check("traffic still through lb2", bool(www and www["via"] == "lb2"), json.dumps(www))
    assert lab.mailbox is not None
    mail = lab.wait(
        "mail: lb1 BACKUP",
        lambda: lab.mailbox.find("lb1", "BACKUP", w0) if lab.mailbox else None,
        40,
    )
    _report_mail(lab, mail, mail.received - backup.wall)
    lab.result["step4"] = {
        "backup_after": backup.mono - t0,
        "vip": "lb2",
        "deep_check_failed_after": failed - t2,
    }


# results and cleanup ---------------------------------------------------------------------
