"""The lab's watcher scenario (``--watch``): the pair on ``ha-notify watch`` + ``track_file``.

keepalived runs contrib/keepalived/keepalived-node{1,2}-watch.conf (paths rewritten): no
vrrp_script; the watcher checks haproxy in-process every second and writes its verdict to
the track file keepalived follows on inotify. After step 1 (the VIP on lb1, traffic routed):

W1) haproxy killed (SIGKILL) on the MASTER: time until a request is served through lb2
    (target <= 1.5 s; with the vrrp_script config about 3.3 s, the tutorial's never);
W2) haproxy started again on lb1 (nopreempt: lb2 stays MASTER), then 20 haproxy reloads on
    the MASTER, each waited for: 0 VRRP transitions on either node.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Optional

from lab.nodes import Node

if TYPE_CHECKING:
    from lab.failover_lab import Lab

FAILOVER_TARGET = 1.5
RELOADS = 20


def kill_failover(lab: Lab, lb1: Node, lb2: Node) -> None:
    probes: list[tuple[float, Optional[str]]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            answer = lab.get("www.example.com", timeout=0.3)
            ok = answer is not None and answer["status"] == 200
            probes.append((time.monotonic(), answer["via"] if ok and answer else None))
            stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        lab.wait("probe traffic through lb1", lambda: any(v == "lb1" for _, v in probes), 10)
        t0 = time.monotonic()
        lb1.kill_haproxy()
        lab.say("W1) haproxy killed on lb1, the MASTER (SIGKILL to master and workers)")
        lab.wait("lb1 track file says 1", lambda: lb1.verdict() == "1", 10)
        seen = time.monotonic()
        fault = lab.wait("lb1 FAULT", lambda: lb1.log.first("FAULT", t0), 30)
        lab.say(f"   +{seen - t0:5.2f}s lb1 watcher wrote 1 to the track file")
        lab.say(f"   +{fault.mono - t0:5.2f}s lb1 FAULT (track file haproxy_verdict)")
        master = lab.wait("lb2 MASTER", lambda: lb2.log.first("MASTER", t0), 30)
        lab.say(f"   +{master.mono - t0:5.2f}s lb2 MASTER")
        served = lab.wait(
            "traffic through lb2",
            lambda: next((t for t, v in probes if t > t0 and v == "lb2"), None),
            15,
        )
    finally:
        stop.set()
        prober.join(5)
    took = served - t0
    lab.say(
        f"   +{took:5.2f}s first request served through lb2: failover time {took:.2f}s "
        f"(target <= {FAILOVER_TARGET:g}s; probes every 0.05s)"
    )
    lab.check(
        f"failover on haproxy killed within {FAILOVER_TARGET:g}s",
        took <= FAILOVER_TARGET,
        f"{took:.2f}s",
    )
    lab.result["watch_kill"] = {
        "fault_after": fault.mono - t0,
        "master_after": master.mono - t0,
        "failover_seconds": took,
    }


def reloads(lab: Lab, lb1: Node, lb2: Node) -> None:
    t0 = time.monotonic()
    lb1.start_haproxy()
    lab.wait("lb1 haproxy up again", lb1.haproxy_ready, 20)
    lab.wait("lb1 BACKUP again", lambda: lb1.log.first("BACKUP", t0), 30)
    lab.say("W2) haproxy back on lb1 (BACKUP, nopreempt keeps lb2 MASTER)")
    before = {n.name: len(n.log.events) for n in (lb1, lb2)}
    start = time.monotonic()
    for number in range(1, RELOADS + 1):
        old = lb2.stats("show info")
        old_pid = next((ln.split()[1] for ln in old.splitlines() if ln.startswith("Pid:")), "")
        lb2.reload_haproxy()
        lab.wait(
            f"reload {number} done",
            lambda old_pid=old_pid: _new_worker(lb2, old_pid),  # type: ignore[misc]
            20,
        )
    time.sleep(2.0)  # a round and an advert after the last reload, to catch a late FAULT
    after = {n.name: len(n.log.events) for n in (lb1, lb2)}
    moved = {name: after[name] - before[name] for name in after}
    lab.say(
        f"   {RELOADS} reloads of haproxy on lb2 in {time.monotonic() - start:.1f}s: VRRP "
        f"transitions lb1 {moved['lb1']}, lb2 {moved['lb2']}; lb2 still "
        f"{lb2.log.state()}, unhealthy verdicts {lb2.watch_unhealthy()}"
    )
    lab.check(
        f"{RELOADS} reloads on the MASTER: 0 VRRP transitions",
        moved == {"lb1": 0, "lb2": 0} and lb2.log.state() == "MASTER",
        str(moved),
    )
    lab.result["watch_reloads"] = {"reloads": RELOADS, "transitions": moved}


def _new_worker(node: Node, old_pid: str) -> bool:
    try:
        info = node.stats("show info")
    except OSError:
        return False
    pid = next((ln.split()[1] for ln in info.splitlines() if ln.startswith("Pid:")), "")
    return bool(pid) and pid != old_pid and node.haproxy_master_ready()
