"""The deploy checklist of docs/getting-started.md, followed to the letter on two lab nodes.

    sh scripts/lab.sh --checklist [--keep] [--json] [--page COPY.md]

``--page`` follows a copy of the page instead: a copy with a broken step must fail the run,
naming the step (``NODE step N (TITLE)``).

Each node is a fresh machine (lab.machine: this machine's packages, its own /etc, /var, /opt,
/run, process list and hostname, a syslog, a stand-in for systemd). The checklist's numbered
steps are read from the page itself and every ``sh`` block is run as written, as root, on
node 1 and then node 2, with three substitutions that the page's own words allow:

- ``pip install ha-notify`` installs this clone (a wheelhouse built from it: the nodes have
  no route to PyPI), through ``PIP_NO_INDEX``/``PIP_FIND_LINKS``;
- ``editor FILE`` makes the operator's edits for the lab's network (lab.standin);
- ``systemctl`` is answered by the node's init (lab.units), since systemd cannot run here;
- step 8 takes its vrrp_script variant (``node1``/``node2``, see ``VARIANT``).

A line ending in ``# on node N`` runs on node N only; a step whose block says ``# on the
MASTER`` runs once both nodes are done, on the node holding the VIP. The run passes when every
step exits 0, ``ha-notify doctor`` reports no failure and no warning on both nodes (once both
are up), and the failover of the last step happens: the VIP moves, both nodes mail.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from lab import configs, install, netns
from lab.machine import PATH, Machine
from lab.nodes import Mail, Mailbox

if TYPE_CHECKING:
    from lab.failover_lab import Lab

PAGE = configs.REPO / "docs" / "getting-started.md"
WHEELHOUSE = install.CACHE / "wheelhouse"
_ITEM = re.compile(r"^(\d+)\. \*\*(.+?)\*\*")
_ONLY = re.compile(r"#\s*on node (\d)\s*$")
_MASTER = "# on the MASTER"
LOGIN = ("alerts", "the-smtp-password")  # the reference config's and step 5's
# The watcher variant's keepalived.conf guards the watcher with vrrp_track_process, which
# needs the kernel's process-event connector: it exists only in the initial network and PID
# namespaces, so keepalived inside a node could never see the watcher (`--watch` runs that
# variant with keepalived outside the node). The nodes take the step's documented
# alternative, the vrrp_script variant; the watcher of step 9 still runs.
VARIANT = re.compile(r"example keepalived (node\d)-watch ")
_FINDING = re.compile(r"^(ok|warn|fail)\s+(.+?)\s{2,}", re.MULTILINE)
_DOCTOR = re.compile(r"(\d+) ok, (\d+) warn, (\d+) fail")


@dataclass
class Step:
    number: int
    title: str
    lines: list[str] = field(default_factory=list)

    @property
    def on_master(self) -> bool:
        return any(_MASTER in line for line in self.lines)

    def script(self, node: int) -> str:
        kept = []
        for line in self.lines:
            only = _ONLY.search(line)
            if only is None or int(only.group(1)) == node:
                kept.append(line)
        return "\n".join(kept)


def read_steps(page: Path = PAGE) -> list[Step]:
    """The numbered steps of the page's checklist and the ``sh`` blocks of each."""
    try:
        text = page.read_text()
    except OSError as exc:
        raise netns.LabError(f"{page}: cannot read the page: {exc.strerror}") from exc
    if "## The deploy checklist" not in text:
        raise netns.LabError(f"{page}: no '## The deploy checklist' section")
    body = text.split("## The deploy checklist", 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    block: Optional[list[str]] = None
    for raw in body.splitlines():
        item = _ITEM.match(raw)
        if item:
            steps.append(Step(int(item.group(1)), item.group(2).rstrip(".")))
            continue
        stripped = raw.strip()
        if stripped.startswith("```"):
            if block is None:
                block = [] if stripped == "```sh" else None
                if stripped != "```sh":
                    block = ["#not-sh"]
            else:
                if block[:1] != ["#not-sh"] and steps:
                    steps[-1].lines += textwrap.dedent("\n".join(block)).splitlines()
                block = None
            continue
        if block is not None:
            block.append(raw)
    numbers = [s.number for s in steps]
    if numbers != list(range(1, len(steps) + 1)) or not steps:
        raise netns.LabError(f"{page}: the checklist's steps are not numbered 1..N: {numbers}")
    return steps


def wheelhouse(lab: Lab) -> Path:
    """Wheels of this clone and its dependencies, for the nodes' offline ``pip install``.

    Built by a virtualenv of ``/usr/bin/python3``, the interpreter step 2 uses on the nodes,
    so compiled dependencies (MarkupSafe, psutil) match it whatever runs the lab. One folder
    per source digest, built aside and renamed into place under a lock: runs of other clones
    (or of this one, at once) never install each other's or half a wheelhouse.
    """
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    digest = install.source_digest()
    ready = WHEELHOUSE / digest[:16]
    with (WHEELHOUSE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_dir():
            os.utime(ready)  # in use: the pruning below keeps it
            return ready
        lab.say(f"building a wheelhouse of this clone in {ready} (the nodes have no PyPI)")
        builder = WHEELHOUSE / "builder"  # a virtualenv of /usr/bin/python3, kept
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=WHEELHOUSE))
        try:
            if not (builder / "bin" / "pip").is_file():
                netns.run(["/usr/bin/python3", "-m", "venv", "--clear", str(builder)], timeout=300)
            cmd = [str(builder / "bin" / "pip"), "wheel", "--quiet", "--disable-pip-version-check"]
            netns.run([*cmd, "--wheel-dir", str(building), str(configs.REPO)], timeout=900)
            building.chmod(0o755)
            building.rename(ready)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        for old in WHEELHOUSE.iterdir():  # other sources' folders, unused for a day
            stale = time.time() - old.stat().st_mtime > 86400
            if old.is_dir() and old not in (ready, builder) and stale:
                shutil.rmtree(old, ignore_errors=True)
    return ready


class Checklist:
    """Runs the steps on the lab's two nodes; ``lab`` gives the namespaces and the timeline."""

    def __init__(self, lab: Lab, page: Optional[Path] = None) -> None:
        self.lab = lab
        self.steps = read_steps(page or PAGE)
        self.machines: list[Machine] = []
        self.record: dict[str, list[dict[str, Any]]] = {"steps": [], "doctor": []}
        lab.result["checklist"] = self.record

    def submission(self, workdir: Path) -> dict[str, Any]:
        """The relay's port 587 (STARTTLS, then AUTH), as the reference config expects one:
        a certificate from the lab's own CA (``ca_file``, set by the editor stand-in) and
        the login of the reference config with the password step 5 writes."""
        import trustme

        folder = workdir / "tls"
        folder.mkdir()
        ca = trustme.CA()
        cert = ca.issue_cert("smtp.halab.test", configs.SMTP_ADDRESS)
        cert.private_key_pem.write_to_path(str(folder / "smtp.key"))
        cert.cert_chain_pems[0].write_to_path(str(folder / "smtp.pem"))
        ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        self.ca_file = folder / "ca.pem"
        return {
            "port": 587,
            "cert": str(folder / "smtp.pem"),
            "key": str(folder / "smtp.key"),
            "username": LOGIN[0],
            "password": LOGIN[1],
        }

    def boot(self, workdir: Path) -> None:
        wheels = wheelhouse(self.lab)
        self.env = {
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheels),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            # The page writes plain `ha-notify` for /opt/ha-notify/bin/ha-notify, as an
            # operator who put it on root's PATH.
            "PATH": f"{PATH}:/opt/ha-notify/bin",
        }
        for index in (1, 2):
            machine = Machine(f"lb{index}", index, self.lab.ns[f"n{index}"], workdir / f"lb{index}")
            machine.boot({"ca_file": str(self.ca_file)})
            self.machines.append(machine)
        self.lab.say("lb1 and lb2 booted: fresh machines with this one's packages (lab.machine)")

    def run_step(self, machine: Machine, step: Step) -> Optional[str]:
        """The step's output; a failed step records a failed check and returns None."""
        script = VARIANT.sub(r"example keepalived \1 ", step.script(machine.index))
        if not script.strip():
            return ""
        started = time.monotonic()
        done = machine.shell("set -x\n" + script, env=self.env)
        log = machine.folder / "steps" / f"{step.number:02d}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text(done.stdout + done.stderr)
        took = time.monotonic() - started
        self.record["steps"].append(
            {"node": machine.name, "step": step.number, "exit": done.returncode, "s": took}
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            self.lab.check(f"{machine.name} step {step.number} ({step.title})", False,
                           f"exit {done.returncode}:\n{tail}")  # fmt: skip
            return None
        self.lab.say(f"{machine.name} step {step.number:2d} ok ({took:4.1f}s): {step.title}")
        return done.stdout + done.stderr

    def doctor(self, machine: Machine, when: str) -> bool:
        done = machine.shell("ha-notify doctor", env=self.env)
        (machine.folder / f"doctor-{when}.txt").write_text(done.stdout + done.stderr)
        counts = _DOCTOR.search(done.stdout + done.stderr)
        if counts is None:
            return self.lab.check(f"{machine.name} doctor ({when})", False, done.stderr.strip())
        oks, warns, fails = (int(n) for n in counts.groups())
        checks = sorted({m.group(2) for m in _FINDING.finditer(done.stdout)})
        self.record["doctor"].append(
            {
                "node": machine.name,
                "when": when,
                "ok": oks,
                "warn": warns,
                "fail": fails,
                "checks": checks,
            }
        )
        not_ok = [line for line in done.stdout.splitlines() if line.startswith(("warn", "fail"))]
        good = done.returncode == 0 and warns == 0 and fails == 0
        self.lab.say(f"{machine.name} doctor ({when}): {oks} ok, {warns} warn, {fails} fail")
        return self.lab.check(f"{machine.name} doctor all ok ({when})", good, "\n".join(not_ok))

    def run(self) -> None:
        local = [s for s in self.steps if not s.on_master]
        for machine in self.machines:
            for step in local:
                if self.run_step(machine, step) is None:
                    return
            self.doctor(machine, "its own steps done")
        for machine in self.machines:
            self.doctor(machine, "both nodes done")
        self.failover([s for s in self.steps if s.on_master])

    def failover(self, steps: list[Step]) -> None:
        """The last step, on the MASTER: the VIP moves, both nodes mail, nopreempt holds."""
        lab = self.lab
        assert lab.workdir is not None
        holders = [m for m in self.machines if self.holds_vip(m)]
        if not lab.check("one node holds the VIP", len(holders) == 1, f"{len(holders)} do"):
            return
        master = holders[0]
        other = next(m for m in self.machines if m is not master)
        names = {configs.NODE_ADDRESS[m.index]: m.name for m in self.machines}
        mailbox = Mailbox(lab.workdir / "mail", names)
        before = time.time()
        for step in steps:
            if self.run_step(master, step) is None:
                return
        lab.wait(f"the VIP on {other.name}", lambda: self.holds_vip(other), 30)
        for machine, state in ((other, "MASTER"), (master, "FAULT"), (master, "BACKUP")):

            def mailed(m: Machine = machine, s: str = state) -> Optional[Mail]:
                return mailbox.find(m.name, s, before)

            lab.wait(f"{machine.name} mails {state}", mailed, 60)
        lab.say(
            f"{master.name} ran step {steps[0].number if steps else '?'}: the VIP moved to "
            f"{other.name}; mails: {other.name} MASTER, {master.name} FAULT then BACKUP"
        )
        lab.check(
            f"nopreempt: the VIP stays on {other.name}",
            self.holds_vip(other) and not self.holds_vip(master),
        )

    @staticmethod
    def holds_vip(machine: Machine) -> bool:
        return configs.VIP in netns.addresses(machine.ns, "eth0")

    def halt(self) -> None:
        for machine in self.machines:
            try:
                machine.halt()
            except (OSError, subprocess.SubprocessError) as exc:
                self.lab.out(f"cleanup: {machine.name}: {exc}")
