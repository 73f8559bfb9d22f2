"""Run the reference HAProxy + keepalived pair for real and print a failover timeline.

    sudo .venv/bin/python -m lab.failover_lab [--json] [--keep] [--ha-notify PATH]

Topology (all inside namespaces this run creates; the root namespace only gains them):

    halab-<id>-n1  lb1 192.168.0.128  haproxy + keepalived (priority 100)
    halab-<id>-n2  lb2 192.168.0.129  haproxy + keepalived (priority 90)
    halab-<id>-svc bridge br0: client .10, webapp1-3 .20-.22 (www/static/video), SMTP .25

Scenario: 1) the VIP on lb1, Host-routed requests reach the right backend, the standby's
haproxy is up; 2) the SMTP relay down, then haproxy stopped on lb1: lb1 FAULT, lb2 MASTER,
the VIP moves, traffic flows; 3) both alerts wait in the spools, the relay comes back and
they are delivered, with their latency; 4) haproxy back on lb1: nopreempt keeps the VIP on
lb2; 5) 20 haproxy reloads on lb2, the MASTER: 0 VRRP transitions; 6) haproxy killed on lb2:
traffic through lb1 within 2 s. With --checklist: docs/getting-started.md's deploy checklist,
as written, on two fresh lab machines instead (lab/checklist.py). Exit 0 when every check
passed, 1 when one failed, 2 when this machine cannot run the lab (not root, no namespaces),
130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from lab import (
    configs,
    fleet_scenario,
    netns,
    pair_scenario,
    relay,
    scenario,
    topology,
    watch_scenario,
)
from lab.checklist import Checklist
from lab.netns import LabError, Unsupported
from lab.nodes import SECURITY_LINE, Mailbox, Node, ensure_script_user, resolve_ha_notify


class ScenarioFailed(LabError):
    """A condition the scenario waits for did not come true in time."""


class Lab:
    def __init__(
        self,
        out: Callable[[str], None],
        ha_notify: Optional[str],
        watch: bool = False,
        fleet: bool = False,
        pair: bool = False,
        checklist: bool = False,
        page: Optional[Path] = None,
    ) -> None:
        self.watch = watch or fleet or pair
        self.fleet = fleet
        self.pair = pair
        self.checklist: Optional[Checklist] = None
        self.follow_checklist = checklist
        self.page = page
        self.rid = secrets.token_hex(3)
        self.out = out
        self.explicit_ha_notify = ha_notify
        self.t0 = time.monotonic()
        self.ns = {role: f"{netns.PREFIX}{self.rid}-{role}" for role in ("n1", "n2", "svc")}
        self.workdir: Optional[Path] = None
        self.nodes: list[Node] = []
        self.services: Optional[subprocess.Popen[str]] = None
        self.sockets: Optional[netns.SocketFactory] = None
        self.mailbox: Optional[Mailbox] = None
        self.result: dict[str, Any] = {"run_id": self.rid, "checks": [], "timeline": []}
        self.keep = False
        self.step2_start = (0.0, 0.0)  # step 2's start: monotonic and wall clock

    # output and checks -------------------------------------------------------------------

    def say(self, text: str, at: Optional[float] = None) -> None:
        """A timeline line; ``at`` (monotonic) dates it when it reports an earlier moment, so
        that a step's "+2.67s" is the difference of its own brackets."""
        when = time.monotonic() if at is None else at
        line = f"[{when - self.t0:6.2f}s] {text}"
        self.result["timeline"].append(line)
        self.out(line)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.result["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            self.say(f"  FAILED: {name}: {detail}")
        return ok

    def wait(self, what: str, cond: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                self.check(what, False, f"not within {timeout:g}s")
                raise ScenarioFailed(what)
            time.sleep(0.05)

    # setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        netns.probe_support(self.rid)
        netns.register(self.rid)
        leftovers = netns.sweep()
        if leftovers:
            self.say(f"removed leftovers of earlier runs: {', '.join(leftovers)}")
        if self.follow_checklist:
            self._setup_checklist()
            return
        uid, gid = ensure_script_user()
        ha_notify = resolve_ha_notify(self.explicit_ha_notify, self.say)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}{self.rid}-"))
        self.workdir.chmod(0o755)  # the script user reads pidfiles and sockets below it
        svc = self.ns["svc"]
        for ns in self.ns.values():
            netns.create_namespace(ns)
        topology.wire(self.ns)
        for index in (1, 2):
            ns = self.ns[f"n{index}"]
            node = Node(index, ns, self.workdir, ha_notify, watch=self.watch)
            node.write_configs(uid, gid)
            self.nodes.append(node)
        self._start_services()
        self.sockets = netns.SocketFactory(svc)
        self.say(
            f"run {self.rid}: namespaces {', '.join(self.ns.values())}; "
            f"ha-notify {ha_notify}; keepalived scripts run as keepalived_script"
        )

    def _setup_checklist(self) -> None:
        """Two fresh machines (lab.machine) on the lab's network, and its services."""
        self.checklist = Checklist(self, self.page)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}{self.rid}-"))
        self.workdir.chmod(0o755)
        for ns in self.ns.values():
            netns.create_namespace(ns)
        topology.wire(self.ns, nonlocal_bind=False)
        self._start_services()
        self.sockets = netns.SocketFactory(self.ns["svc"])
        self.checklist.boot(self.workdir)

    def _start_services(self) -> None:
        assert self.workdir is not None
        spec = {
            "backends": [
                {"name": n, "site": s, "address": a, "port": 80} for n, s, _h, a in configs.BACKENDS
            ],
            "smtp": {"address": configs.SMTP_ADDRESS, "port": 25},
            "mail_dir": str(self.workdir / "mail"),
        }
        if self.checklist is not None:
            spec["submission"] = self.checklist.submission(self.workdir)
        spec_file = self.workdir / "services.json"
        spec_file.write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(configs.REPO))
        self.services = subprocess.Popen(
            netns.ns_cmd(self.ns["svc"], [sys.executable, "-m", "lab.services", str(spec_file)]),
            stdout=subprocess.PIPE,
            stderr=(self.workdir / "services.log").open("w"),
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=configs.REPO,
            env=env,
            preexec_fn=netns.die_with_parent,
        )
        assert self.services.stdout is not None
        ready = threading.Event()

        def watch() -> None:
            assert self.services is not None and self.services.stdout is not None
            for line in self.services.stdout:
                if line.strip() == "READY":
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        self.wait(
            "backends and SMTP server listening",
            lambda: ready.is_set() or self.services is None or self.services.poll() is not None,
            30,
        )
        if not ready.is_set():
            raise LabError(f"the services did not start; see {self.workdir / 'services.log'}")
        self.mailbox = Mailbox(self.workdir / "mail", {n.address: n.name for n in self.nodes})

    # client -------------------------------------------------------------------------------

    def get(self, host: str, timeout: float = 1.0) -> Optional[dict[str, Any]]:
        """GET / through the VIP with this Host header; None when nothing answered."""
        assert self.sockets is not None
        return topology.get(self.sockets, host, {n.address: n.name for n in self.nodes}, timeout)

    # scenario -----------------------------------------------------------------------------

    def run(self) -> None:
        if self.checklist is not None:
            self.checklist.run()
            return
        lb1, lb2 = self.nodes
        for node in self.nodes:
            node.start_haproxy()
        for node in self.nodes:
            self.wait(f"{node.name} haproxy up", node.haproxy_ready, 20)
        self.say("haproxy up on lb1 and lb2 (contrib haproxy.cfg, paths rewritten)")
        if self.watch:
            for node in self.nodes:
                node.start_watcher()
            for node in self.nodes:

                def healthy(n: Node = node) -> bool:
                    return n.verdict() == "0"

                self.wait(f"{node.name} watcher says healthy", healthy, 30)
            self.say("ha-notify watch on lb1 and lb2: track files say 0 (healthy)")
        lb1.start_keepalived()
        self.wait("lb1 MASTER", lambda: lb1.log.state() == "MASTER", 60)
        self.wait("VIP on lb1", lb1.holds_vip, 10)
        lb2.start_keepalived()
        self.wait("lb2 BACKUP", lambda: lb2.log.state() == "BACKUP", 60)
        scenario.step1(self, lb1, lb2)
        if self.fleet:
            fleet_scenario.run(self, lb1, lb2)
            return
        if self.pair:
            pair_scenario.run_all(self, lb1, lb2)
            return
        if self.watch:
            watch_scenario.kill_failover(self, lb1, lb2)
            watch_scenario.reloads(self, lb1, lb2)
            return
        relay.down(self)
        scenario.step2(self, lb1, lb2)
        relay.spooled_then_delivered(self, lb1, lb2)
        scenario.step3(self, lb1, lb2)
        scenario.step4(self, lb1, lb2)
        self.say("5) 20 haproxy reloads on lb2, the MASTER (SIGUSR2, as systemctl reload)")
        watch_scenario.reload_master(self, lb2, lb1, key="step5")
        # The pidfile check runs every second (keepalived's vrrp_script interval is whole
        # seconds) and the standby waits its VRRP skew (0.6 s) before taking over: up to
        # about 1.8 s. The watcher config (--watch) meets the DESIGN's 1.5 s.
        watch_scenario.kill_failover(self, lb2, lb1, step="6)", key="step6", target=2.0)

    def finish(self) -> None:
        transitions = {}
        warnings = []
        for node in self.nodes:
            transitions[node.name] = [e.state for e in node.log.events]
            warnings += [f"{node.name}: {line}" for line in node.log.grep(SECURITY_LINE)]
        self.result["transitions"] = transitions
        self.result["security_warnings"] = warnings
        if self.nodes:
            self.check(
                "keepalived logged no script-security warning", not warnings, "; ".join(warnings)
            )
        self.result["ok"] = all(c["ok"] for c in self.result["checks"])

    def cleanup(self) -> None:
        if self.checklist is not None:
            self.checklist.halt()
        for node in self.nodes:
            try:
                node.stop()
            except Exception as exc:  # keep cleaning up whatever happens
                self.out(f"cleanup: {node.name}: {exc}")
        if self.services is not None and self.services.poll() is None:
            self.services.terminate()
            try:
                self.services.wait(5)
            except subprocess.TimeoutExpired:
                self.services.kill()
        if self.sockets is not None:
            self.sockets.close()
        for ns in self.ns.values():
            netns.delete_namespace(ns)
        if self.workdir is not None and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        netns.unregister(self.rid)


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="failover_lab", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout (the timeline goes to stderr)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's folder (configs, logs, mails) under /tmp",
    )
    parser.add_argument(
        "--ha-notify",
        metavar="PATH",
        help="the ha-notify executable keepalived runs (default: the repo's)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="run the pair on `ha-notify watch` + track_file (keepalived-node*-watch.conf): "
        "haproxy killed on the MASTER, then 20 reloads",
    )
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="the pair on `ha-notify watch` (as --watch) with node_exporter, Prometheus and "
        "Alertmanager: a split brain (VRRP dropped by nftables) reaches a webhook as one "
        "HAPairDualMaster notification, then resolves",
    )
    parser.add_argument(
        "--pair",
        action="store_true",
        help="the watcher pair's pair alerts (lab/pair_scenario.py): 20 clean failovers, VRRP "
        "dropped both ways and one way, a VIP nobody holds, a MASTER that refuses the VIP",
    )
    parser.add_argument(
        "--checklist",
        action="store_true",
        help="follow docs/getting-started.md's deploy checklist, every step as written, on "
        "two fresh lab machines (lab/checklist.py); doctor must find nothing, then fail over",
    )
    parser.add_argument(
        "--page",
        metavar="PATH",
        type=Path,
        help="with --checklist: follow this copy of docs/getting-started.md instead (to see "
        "that a broken step fails the run)",
    )
    args = parser.parse_args(argv)
    if args.page is not None and not args.checklist:
        parser.error("--page goes with --checklist")
    stream = sys.stderr if args.json else sys.stdout

    def out(text: str) -> None:
        print(text, file=stream, flush=True)

    os.umask(0o022)
    lab = Lab(
        out,
        args.ha_notify,
        watch=args.watch,
        fleet=args.fleet,
        pair=args.pair,
        checklist=args.checklist,
        page=args.page,
    )
    lab.keep = args.keep
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    code = 0
    try:
        lab.setup()
        lab.run()
    except Unsupported as exc:
        print(f"failover_lab: cannot run here: {exc}", file=sys.stderr)
        return 2
    except ScenarioFailed:
        code = 1
    except LabError as exc:
        lab.check("lab setup", False, str(exc))
        code = 1
    except KeyboardInterrupt:
        out("interrupted: cleaning up")
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lab.finish()
        if args.keep and lab.workdir is not None:
            (lab.workdir / netns.KEPT).write_text("kept by --keep; rm -r this folder when done\n")
            out(f"kept {lab.workdir} (mails as mail/*.eml)")
        lab.cleanup()
    ok = lab.result["ok"] and code == 0
    out("RESULT: all checks passed" if ok else "RESULT: FAILED")
    if args.json:
        print(json.dumps(lab.result, indent=2))
    return code or (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
