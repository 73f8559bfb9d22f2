"""The lab's watcher scenario (``--watch``): the pair on ``ha-notify watch`` + ``track_file``.

keepalived runs contrib/keepalived/keepalived-node{1,2}-watch.conf (paths rewritten): no
vrrp_script; the watcher checks haproxy in-process every second and writes its verdict to
the track file keepalived follows on inotify. After step 1 (the VIP on lb1, traffic routed):

W1) haproxy killed (SIGKILL) on the MASTER: time until a request is served through lb2
    (target <= 1.5 s; the tutorial's config never fails over);
W2) haproxy started again on lb1 (nopreempt: lb2 stays MASTER), then 20 haproxy reloads on
    the MASTER, each waited for: 0 VRRP transitions on either node.

The default scenario (vrrp_script config) runs the same two measurements as its steps 5
and 6 (``reload_master``, ``kill_failover``).
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


def kill_failover(
    lab: Lab,
    lb1: Node,
    lb2: Node,
    step: str = "W1)",
    key: str = "watch_kill",
    target: float = FAILOVER_TARGET,
) -> None:
    """haproxy killed on the MASTER ``lb1``: how long until ``lb2`` serves traffic."""
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
        lab.wait(
            f"probe traffic through {lb1.name}", lambda: any(v == lb1.name for _, v in probes), 10
        )
        t0 = time.monotonic()
        lb1.kill_haproxy()
        lab.say(f"{step} haproxy killed on {lb1.name}, the MASTER (SIGKILL to master and workers)")
        if lb1.watch:
            lab.wait(f"{lb1.name} track file says 1", lambda: lb1.verdict() == "1", 10)
            seen = time.monotonic() - t0
            lab.say(f"   +{seen:5.2f}s {lb1.name} watcher wrote 1 to the track file")
        fault = lab.wait(f"{lb1.name} FAULT", lambda: lb1.log.first("FAULT", t0), 30)
        cause = "track file haproxy_verdict" if lb1.watch else fault.cause or "?"
        lab.say(f"   +{fault.mono - t0:5.2f}s {lb1.name} FAULT ({cause})")
        master = lab.wait(f"{lb2.name} MASTER", lambda: lb2.log.first("MASTER", t0), 30)
        lab.say(f"   +{master.mono - t0:5.2f}s {lb2.name} MASTER")
        served = lab.wait(
            f"traffic through {lb2.name}",
            lambda: next((t for t, v in probes if t > t0 and v == lb2.name), None),
            15,
        )
    finally:
        stop.set()
        prober.join(5)
    took = served - t0
    lab.say(
        f"   +{took:5.2f}s first request served through {lb2.name}: failover time {took:.2f}s "
        f"(target <= {target:g}s; probes every 0.05s)"
    )
    lab.check(
        f"failover on haproxy killed within {target:g}s",
        took <= target,
        f"{took:.2f}s",
    )
    lab.result[key] = {
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
    reload_master(lab, lb2, lb1)


def reload_master(lab: Lab, master: Node, other: Node, key: str = "watch_reloads") -> None:
    """RELOADS haproxy reloads on ``master``, each waited for: 0 VRRP transitions anywhere."""
    nodes = (master, other)
    before = {n.name: len(n.log.events) for n in nodes}
    pidfile = master.pidfile.read_text()
    start = time.monotonic()
    for number in range(1, RELOADS + 1):
        old = master.stats("show info")
        old_pid = next((ln.split()[1] for ln in old.splitlines() if ln.startswith("Pid:")), "")
        master.reload_haproxy()
        lab.wait(
            f"reload {number} done",
            lambda old_pid=old_pid: _new_worker(master, old_pid),  # type: ignore[misc]
            20,
        )
    time.sleep(2.0)  # a round and an advert after the last reload, to catch a late FAULT
    after = {n.name: len(n.log.events) for n in nodes}
    moved = {n.name: after[n.name] - before[n.name] for n in sorted(nodes, key=lambda n: n.name)}
    unhealthy = f", unhealthy verdicts {master.watch_unhealthy()}" if master.watch else ""
    same = master.pidfile.read_text() == pidfile
    lab.say(
        f"   {RELOADS} reloads of haproxy on {master.name} in {time.monotonic() - start:.1f}s: "
        f"VRRP transitions {', '.join(f'{k} {v}' for k, v in moved.items())}; {master.name} "
        f"still {master.log.state()}{unhealthy}; pidfile {'unchanged' if same else 'REWRITTEN'}"
    )
    lab.check(
        f"{RELOADS} reloads on the MASTER: 0 VRRP transitions",
        all(v == 0 for v in moved.values()) and master.log.state() == "MASTER",
        str(moved),
    )
    lab.result[key] = {"reloads": RELOADS, "transitions": moved, "pidfile_unchanged": same}


def _new_worker(node: Node, old_pid: str) -> bool:
    try:
        info = node.stats("show info")
    except OSError:
        return False
    pid = next((ln.split()[1] for ln in info.splitlines() if ln.startswith("Pid:")), "")
    return bool(pid) and pid != old_pid and node.haproxy_master_ready()
