"""A lab node that looks like a freshly installed Debian machine, for the deploy checklist.

The other lab modes write each node's files under the run folder and start haproxy and
keepalived by hand. ``--checklist`` instead follows docs/getting-started.md to the letter,
so each node must have what a real machine has: its own /etc, /var, /opt and /usr/local
(copy-on-write overlays of this machine's, so the installed packages are there and nothing
leaks back), a fresh /run and /dev, its own process list (a PID namespace), a hostname, a
syslog on /dev/log, and systemd to run units.

systemd cannot run inside a namespace here, so :mod:`lab.init` stands in for it (PID 1 of
the node). It runs the real unit files (Debian's haproxy.service and keepalived.service, the
shipped ha-notify units): ``ExecStart``/``ExecReload``, ``User``/``Group``,
``AmbientCapabilities``, ``Environment``/``EnvironmentFile``, ``RuntimeDirectory``/
``StateDirectory``, ``Type=notify``/``oneshot``/``simple``, ``Restart``, timers' intervals;
it does not apply the sandboxing directives (``ProtectSystem=`` and the like).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from lab.configs import REPO
from lab.netns import LabError, die_with_parent

OVERLAID = ("/etc", "/var", "/opt", "/usr/local")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTROL = "/run/lab-systemd.sock"


class Machine:
    """One node: its init process (the namespaces live as long as it does) and a shell."""

    def __init__(self, name: str, index: int, ns: str, folder: Path) -> None:
        self.name = name
        self.index = index
        self.ns = ns
        self.folder = folder  # upper layers, unit logs, syslog
        self.init: Optional[subprocess.Popen[str]] = None
        self.pid = 0  # the init's pid, as this machine sees it

    def boot(self, extra: dict[str, str]) -> None:
        """Start the node's init; return once it has mounted everything and booted units.
        ``extra`` lands in the node's /run/lab-node.json, for the stand-ins."""
        self.folder.mkdir(parents=True, exist_ok=True)
        spec = {
            "name": self.name,
            "index": self.index,
            "folder": str(self.folder),
            "overlaid": OVERLAID,
            "python": sys.executable,
            "repo": str(REPO),
            "extra": extra,
        }
        (self.folder / "machine.json").write_text(json.dumps(spec))
        cmd = [
            "ip", "netns", "exec", self.ns,
            "unshare", "--mount", "--pid", "--fork", "--kill-child=SIGTERM", "--uts",
            "--propagation", "private", "--",
            sys.executable, "-m", "lab.init", str(self.folder / "machine.json"),
        ]  # fmt: skip
        with (self.folder / "init.log").open("a") as log:  # the init keeps its own copy
            self.init = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.PIPE,  # the node shuts down when this closes (lab.init)
                text=True,
                cwd=REPO,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                preexec_fn=die_with_parent,
            )
        assert self.init.stdout is not None
        line = self.init.stdout.readline().strip()  # "READY <pid>" once booted
        if not line.startswith("READY "):
            raise LabError(f"{self.name}: the node did not boot; see {self.folder / 'init.log'}")
        self.pid = int(line.split()[1])

    def shell(
        self, script: str, *, timeout: float = 600.0, env: Optional[dict[str, str]] = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with ``sh -e`` as root on the node, as an operator's login shell."""
        base = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
        cmd = ["nsenter", "-t", str(self.pid), "-m", "-u", "-n", "-p", "--wd=/", "--"]
        cmd += ["env", "-i", *(f"{k}={v}" for k, v in {**base, **(env or {})}.items())]
        return subprocess.run(
            [*cmd, "sh", "-e", "-c", script],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )

    def halt(self) -> None:
        """SIGTERM the init: it stops its units, and once it exits the kernel ends whatever
        else ran in the node; returns when all of it is gone. (``unshare`` ignores SIGTERM
        while it waits for the init: signalling it only left the node running.)"""
        proc, self.init = self.init, None
        if proc is None:
            return
        for pipe in (proc.stdout, proc.stdin):
            if pipe is not None:
                pipe.close()
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # unshare is alive, so is its child
            os.kill(self.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            proc.kill()
            proc.wait(10)
