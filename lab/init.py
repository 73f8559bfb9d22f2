"""PID 1 of a checklist node (see lab.machine): mounts, a syslog, and a stand-in for systemd.

    python -m lab.init MACHINE_JSON

It runs in the node's network, mount, PID and UTS namespaces, created by lab.machine. It
prints ``READY <pid>`` (its pid as the host sees it) once the node has booted, serves
``systemctl`` (the shim lab.standin installs) on a control socket, reaps orphans, restarts
``Restart=always`` services, runs timers, and on SIGTERM stops every unit it started.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.machine import CONTROL, PATH
from lab.units import Manager

BOOT_UNITS = ("haproxy.service", "keepalived.service")  # what step 1's packages enabled


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def mount_all(spec: dict[str, Any]) -> None:
    """Overlays over the machine's folders, fresh /run, /dev and /proc, and the hostname."""
    folder = Path(spec["folder"])
    # /usr is this machine's own (not overlaid): read-only, so that a step that installs or
    # writes there (an apt-get of a package this machine lacks, from its cache) fails in
    # the node instead of changing this machine. /usr/local gets its overlay on top.
    sh("mount", "--bind", "/usr", "/usr")
    sh("mount", "-o", "remount,bind,ro", "/usr")
    for target in spec["overlaid"]:
        layer = folder / "root" / target.strip("/").replace("/", "-")
        (layer / "upper").mkdir(parents=True, exist_ok=True)
        (layer / "work").mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={target},upperdir={layer / 'upper'},workdir={layer / 'work'}"
        sh("mount", "-t", "overlay", "overlay", "-o", options, target)
    sh("mount", "-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "tmpfs", "/run")
    sh("mount", "-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", "/dev")
    for name, major, minor in (
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ):
        os.mknod(f"/dev/{name}", 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"/dev/{name}")
    os.symlink("/proc/self/fd/1", "/dev/stdout")
    os.symlink("/proc/self/fd/2", "/dev/stderr")
    os.mkdir("/dev/shm", 0o1777)
    sh("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", "/dev/shm")
    sh("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc")
    # Daemons built for systemd (keepalived) send READY=1 only when PID 1 is called systemd.
    Path("/proc/self/comm").write_text("systemd")
    socket.sethostname(spec["name"])


def install_shims(spec: dict[str, Any]) -> None:
    """``systemctl`` and ``editor`` on the node's PATH (/usr/local, its own overlay)."""
    python, repo = spec["python"], spec["repo"]
    shims = (("/usr/local/sbin/systemctl", "systemctl"), ("/usr/local/bin/editor", "editor"))
    for path, what in shims:
        Path(path).write_text(
            "#!/bin/sh\n"
            f"# lab stand-in ({what}): see {repo}/lab/standin.py\n"
            f'PYTHONPATH={repo} exec {python} -m lab.standin {what} "$@"\n'
        )
        os.chmod(path, 0o755)
    node = {"name": spec["name"], "index": spec["index"], **spec["extra"]}
    Path("/run/lab-node.json").write_text(json.dumps(node))


class Syslog:
    """/dev/log: every line, with the time it arrived, appended to the node's syslog file."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("/dev/log")
        os.chmod("/dev/log", 0o666)
        self.out = path.open("a", buffering=1)

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            stamp = time.strftime("%H:%M:%S")
            self.out.write(f"{stamp} {data.decode('utf-8', 'replace').rstrip()}\n")


def serve(spec: dict[str, Any]) -> None:
    folder = Path(spec["folder"])
    os.environ.clear()
    os.environ.update({"PATH": PATH, "LANG": "C.UTF-8"})
    manager = Manager(folder / "units")
    syslog = Syslog(folder / "syslog.log")
    tmpfiles = subprocess.run(
        ["systemd-tmpfiles", "--create", "--boot", "--prefix=/run"],
        capture_output=True,
        text=True,
        check=False,
    )
    if tmpfiles.returncode not in (0, 65, 73):  # partial failures are normal in a namespace
        manager.note(f"systemd-tmpfiles: exit {tmpfiles.returncode}: {tmpfiles.stderr.strip()}")
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(CONTROL)
    os.chmod(CONTROL, 0o600)
    control.listen(8)
    manager.boot(BOOT_UNITS)

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGCHLD, lambda *_: None)
    print(f"READY {spec['host_pid']}", flush=True)
    lab = sys.stdin.buffer  # a pipe from the lab: EOF when the lab is gone, even SIGKILLed
    while not stopping:
        try:
            ready, _, _ = select.select([control, syslog.sock, lab], [], [], 0.2)
        except InterruptedError:
            ready = []
        if lab in ready and not os.read(lab.fileno(), 512):
            manager.note("the lab is gone: shutting down")
            break
        if syslog.sock in ready:
            syslog.drain()
        if control in ready:
            conn, _ = control.accept()
            with conn:
                request = json.loads(_read_all(conn))
                code, text = manager.command(request["argv"])
                conn.sendall(json.dumps({"code": code, "out": text}).encode())
        manager.tick()
    manager.shutdown()
    syslog.drain()


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    spec["host_pid"] = int(os.readlink("/proc/self"))  # before /proc is this node's
    mount_all(spec)
    install_shims(spec)
    serve(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
