"""Run the reference HAProxy + keepalived pair for real and print a failover timeline.

    sudo .venv/bin/python -m lab.failover_lab [--json] [--keep] [--ha-notify PATH]

Topology (all inside namespaces this run creates; the root namespace only gains them):

    halab-<id>-n1  lb1 192.168.0.128  haproxy + keepalived (priority 100)
    halab-<id>-n2  lb2 192.168.0.129  haproxy + keepalived (priority 90)
    halab-<id>-svc bridge br0: client .10, webapp1-3 .20-.22 (www/static/video), SMTP .25

Scenario: 1) the VIP on lb1, Host-routed requests reach the right backend, the standby's
haproxy is up; 2) haproxy stopped on lb1: lb1 FAULT, lb2 MASTER, the VIP moves, traffic
flows; 3) the mails both nodes sent and their latency; 4) haproxy back on lb1: nopreempt
keeps the VIP on lb2. Exit 0 when every check passed, 1 when one failed, 2 when this machine
cannot run the lab (not root, no namespaces), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

from lab import configs, netns
from lab.netns import LabError, Unsupported
from lab.nodes import SECURITY_LINE, Mail, Mailbox, Node, ensure_script_user, resolve_ha_notify

HOLD_SECONDS = 5.0  # how long step 4 watches that the VIP stays on lb2


class ScenarioFailed(LabError):
    """A condition the scenario waits for did not come true in time."""


class Lab:
    def __init__(self, out: Callable[[str], None], ha_notify: Optional[str]) -> None:
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
        self._t2 = (0.0, 0.0)  # step 2's start: monotonic and wall clock

    # output and checks -------------------------------------------------------------------

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.2f}s] {text}"
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
        uid, gid = ensure_script_user()
        ha_notify = resolve_ha_notify(self.explicit_ha_notify, self.say)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}{self.rid}-"))
        self.workdir.chmod(0o755)  # the script user reads pidfiles and sockets below it
        svc = self.ns["svc"]
        for ns in self.ns.values():
            netns.create_namespace(ns)
        netns.run(["ip", "-n", svc, "link", "add", "br0", "type", "bridge"])
        netns.run(["ip", "-n", svc, "link", "set", "br0", "up"])
        for address in (
            configs.CLIENT_ADDRESS,
            *(b[3] for b in configs.BACKENDS),
            configs.SMTP_ADDRESS,
        ):
            netns.run(
                ["ip", "-n", svc, "addr", "add", f"{address}/{configs.PREFIXLEN}", "dev", "br0"]
            )
        for index in (1, 2):
            ns = self.ns[f"n{index}"]
            port = f"n{index}"
            netns.run(
                [
                    "ip",
                    "-n",
                    svc,
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                ]
            )
            netns.run(["ip", "-n", svc, "link", "set", port, "master", "br0", "up"])
            netns.run(
                [
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    f"{configs.NODE_ADDRESS[index]}/{configs.PREFIXLEN}",
                    "dev",
                    "eth0",
                ]
            )
            netns.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            # See contrib/haproxy/haproxy.cfg: the standby binds the VIP it does not hold.
            netns.run(netns.ns_cmd(ns, ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"]))
            node = Node(index, ns, self.workdir, ha_notify)
            node.write_configs(uid, gid)
            self.nodes.append(node)
        self._start_services()
        self.sockets = netns.SocketFactory(svc)
        self.say(
            f"run {self.rid}: namespaces {', '.join(self.ns.values())}; "
            f"ha-notify {ha_notify}; keepalived scripts run as keepalived_script"
        )

    def _start_services(self) -> None:
        assert self.workdir is not None
        spec = {
            "backends": [
                {"name": n, "site": s, "address": a, "port": 80} for n, s, _h, a in configs.BACKENDS
            ],
            "smtp": {"address": configs.SMTP_ADDRESS, "port": 25},
            "mail_dir": str(self.workdir / "mail"),
        }
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
        sock = self.sockets.tcp()
        try:
            sock.settimeout(timeout)
            sock.connect((configs.VIP, 80))
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return None
        finally:
            sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        try:
            status = int(head.split()[1])
        except (IndexError, ValueError):
            return None
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"text": body.decode("utf-8", "replace").strip()}
        answer["status"] = status
        by_address = {n.address: n.name for n in self.nodes}
        answer["via"] = by_address.get(answer.get("lb", ""), "")
        return answer

    # scenario -----------------------------------------------------------------------------

    def run(self) -> None:
        lb1, lb2 = self.nodes
        for node in self.nodes:
            node.start_haproxy()
        for node in self.nodes:
            self.wait(f"{node.name} haproxy up", node.haproxy_ready, 20)
        self.say("haproxy up on lb1 and lb2 (contrib haproxy.cfg, paths rewritten)")
        lb1.start_keepalived()
        self.wait("lb1 MASTER", lambda: lb1.log.state() == "MASTER", 60)
        self.wait("VIP on lb1", lb1.holds_vip, 10)
        lb2.start_keepalived()
        self.wait("lb2 BACKUP", lambda: lb2.log.state() == "BACKUP", 60)
        self.step1(lb1, lb2)
        self.step2(lb1, lb2)
        self.step3(lb1, lb2)
        self.step4(lb1, lb2)

    def step1(self, lb1: Node, lb2: Node) -> None:
        self.say(f"1) lb1 MASTER with {configs.VIP}; lb2 BACKUP")
        self.check("VIP on lb1 only", lb1.holds_vip() and not lb2.holds_vip())
        traffic = []
        for name, site, host, _address in configs.BACKENDS:
            answer = self.get(host, timeout=3)
            ok = bool(
                answer
                and answer["status"] == 200
                and answer.get("backend") == name
                and answer.get("via") == "lb1"
            )
            traffic.append({"host": host, "expected": name, "answer": answer, "ok": ok})
            self.check(f"{host} reaches {name} via lb1", ok, json.dumps(answer))
            shown = f"{answer['status']} {answer.get('backend')}" if answer else "no answer"
            self.say(
                f"   Host {host:<19} -> {shown} (site {site}) via "
                f"{answer.get('via') if answer else '?'}"
            )
        unknown = self.get("unknown.example.org", timeout=3)
        self.check(
            "unknown Host gets 404", bool(unknown and unknown["status"] == 404), json.dumps(unknown)
        )
        self.say(f"   Host unknown.example.org   -> {unknown['status'] if unknown else '?'}")
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
        checked = bool(lb2.log.grep(_script_ok))
        self.check(
            "standby haproxy listens on the VIP", f"{configs.VIP}:80" in listening, str(listening)
        )
        self.check(
            "standby haproxy frontend OPEN, 3 servers UP", frontend_open and servers_up == 3, stat
        )
        self.check("standby passes ha-notify check haproxy --deep", checked)
        self.say(
            f"   standby lb2: haproxy listening on {configs.VIP}:80 without holding it "
            f"(ip_nonlocal_bind), frontend OPEN, {servers_up}/3 servers UP, "
            f"deep check {'passing' if checked else 'NOT passing'}"
        )
        self.result["step1"] = {"vip": "lb1", "traffic": traffic, "standby_listening": listening}

    def step2(self, lb1: Node, lb2: Node) -> None:
        probes: list[tuple[float, Optional[str]]] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                answer = self.get("www.example.com", timeout=0.5)
                ok = answer is not None and answer["status"] == 200
                probes.append((time.monotonic(), answer["via"] if ok and answer else None))
                stop.wait(0.1)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        try:
            self.wait("probe traffic through lb1", lambda: any(v == "lb1" for _, v in probes), 10)
            t0, w0 = time.monotonic(), time.time()
            lb1.stop_haproxy()
            self.say("2) haproxy stopped on lb1 (SIGTERM to the master, as systemctl stop)")
            fault = self.wait("lb1 FAULT", lambda: lb1.log.first("FAULT", t0), 30)
            self.say(f"   +{fault.mono - t0:5.2f}s lb1 FAULT   ({fault.cause or '?'})")
            master = self.wait("lb2 MASTER", lambda: lb2.log.first("MASTER", t0), 30)
            self.say(f"   +{master.mono - t0:5.2f}s lb2 MASTER  ({master.cause or '?'})")
            self.wait("VIP on lb2", lambda: lb2.holds_vip() and not lb1.holds_vip(), 15)
            moved = time.monotonic()
            self.say(f"   +{moved - t0:5.2f}s VIP {configs.VIP} on lb2, gone from lb1")
            served = self.wait(
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
        self.say(
            f"   +{served - t0:5.2f}s first request served through lb2: failover time "
            f"{served - t0:.2f}s ({failed} probe(s) failed, traffic gap "
            f"{served - last_lb1:.2f}s, probes every 0.1s)"
        )
        self.check("lb1 FAULT and lb2 MASTER", True)
        self.check("VIP moved to lb2", lb2.holds_vip() and not lb1.holds_vip())
        www = self.get("www.example.com", timeout=3)
        self.check(
            "traffic through lb2 after failover",
            bool(www and www["status"] == 200 and www["via"] == "lb2"),
            json.dumps(www),
        )
        self.result["step2"] = {
            "stopped_at": w0,
            "fault_after": fault.mono - t0,
            "master_after": master.mono - t0,
            "vip_moved_after": moved - t0,
            "failover_seconds": served - t0,
            "failed_probes": failed,
            "vip": "lb2",
        }
        self._t2 = (t0, w0)

    def step3(self, lb1: Node, lb2: Node) -> None:
        assert self.mailbox is not None
        _t0, w0 = self._t2
        self.say("3) mails received by the SMTP server (latency from the state change)")
        wanted = ((lb1, "FAULT"), (lb2, "MASTER"))
        for node, state in wanted:
            event = node.log.first(state, self._t2[0])
            mail = self.wait(
                f"mail: {node.name} {state}",
                lambda n=node, s=state: self.mailbox.find(n.name, s, w0) if self.mailbox else None,
                40,
            )
            assert event is not None
            self._report_mail(mail, mail.received - event.wall)
        # The event carries the previous state from ha-notify's state store: proof that
        # ha-notify could keep its state and spool as keepalived runs it (script user,
        # keepalived's umask 0177), not only send a mail.
        fault = self.mailbox.find(lb1.name, "FAULT", w0)
        self.check(
            "lb1's FAULT mail carries the previous state MASTER (state store works)",
            bool(fault and "MASTER" in f"{fault.subject}\n{fault.body}"),
            fault.subject if fault else "no mail",
        )

    def _report_mail(self, mail: Mail, latency: float) -> None:
        self.say(f"   from {mail.node} ({mail.peer}) after {latency:5.2f}s: {mail.subject!r}")
        self.check(f"mail {mail.node} {mail.state} names the node", mail.names_node, mail.subject)
        self.result.setdefault("mails", []).append(
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

    def step4(self, lb1: Node, lb2: Node) -> None:
        # Leave haproxy down until the deep check has failed too (fall 2 x interval 5s), as
        # in a real outage: coming back then takes chk_haproxy's rise 2, not only the
        # process reappearing.
        t2 = self._t2[0]
        failed = self.wait("lb1 chk_haproxy failed", lambda: lb1.log.when(_script_failed, t2), 40)
        self.say(
            f"   +{failed - t2:5.2f}s lb1 chk_haproxy (ha-notify check haproxy --deep) "
            f"failed as well (fall 2 x interval 5s)"
        )
        t0, w0 = time.monotonic(), time.time()
        lb1.start_haproxy()
        self.say("4) haproxy started again on lb1")
        self.wait("lb1 haproxy up again", lb1.haproxy_ready, 20)
        backup = self.wait("lb1 BACKUP again", lambda: lb1.log.first("BACKUP", t0), 60)
        back = lb1.log.when(_script_ok, t0)
        if back is not None:
            self.say(f"   +{back - t0:5.2f}s lb1 chk_haproxy passes again (rise 2)")
        self.say(f"   +{backup.mono - t0:5.2f}s lb1 BACKUP ({backup.cause or '?'})")
        hold_end = time.monotonic() + HOLD_SECONDS
        stayed = True
        while time.monotonic() < hold_end:
            stayed = stayed and lb2.holds_vip() and not lb1.holds_vip()
            time.sleep(0.2)
        stayed = stayed and lb2.log.state() == "MASTER" and lb1.log.state() == "BACKUP"
        www = self.get("www.example.com", timeout=3)
        via = www["via"] if www else "nobody"
        self.say(
            f"   nopreempt: {HOLD_SECONDS:g}s later the VIP is still on "
            f"{'lb2' if lb2.holds_vip() else 'lb1'} (lb1 priority 100 > lb2 90); "
            f"www served via {via}"
        )
        self.check("nopreempt keeps the VIP on lb2", stayed)
        self.check("traffic still through lb2", bool(www and www["via"] == "lb2"), json.dumps(www))
        assert self.mailbox is not None
        mail = self.wait(
            "mail: lb1 BACKUP",
            lambda: self.mailbox.find("lb1", "BACKUP", w0) if self.mailbox else None,
            40,
        )
        self._report_mail(mail, mail.received - backup.wall)
        self.result["step4"] = {
            "backup_after": backup.mono - t0,
            "vip": "lb2",
            "deep_check_failed_after": failed - t2,
        }

    # results and cleanup ---------------------------------------------------------------------

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


_script_ok = re.compile(r"VRRP_Script\(chk_haproxy\) succeeded")
_script_failed = re.compile(r"VRRP_Script\(chk_haproxy\) failed")


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
    args = parser.parse_args(argv)
    stream = sys.stderr if args.json else sys.stdout

    def out(text: str) -> None:
        print(text, file=stream, flush=True)

    os.umask(0o022)
    lab = Lab(out, args.ha_notify)
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
            out(f"kept {lab.workdir}")
        lab.cleanup()
    ok = lab.result["ok"] and code == 0
    out("RESULT: all checks passed" if ok else "RESULT: FAILED")
    if args.json:
        print(json.dumps(lab.result, indent=2))
    return code or (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
