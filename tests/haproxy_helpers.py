"""Real haproxy for the check tests (and the benchmark), isolated in a pid namespace.

Every haproxy (and every fake process called haproxy) a test starts lives in its own pid and
mount namespace (``unshare --pid --mount-proc``), and the check under test runs inside it
through ``nsenter``: a /proc scan then sees only that test's processes, never another
engineer's haproxy, and closing the namespace kills everything in it and nothing else.
Ports are chosen by binding port 0 on 127.0.0.1; every file lives under the test's tmp dir.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from tests.silent import Silent, tcp, unix

REPO = Path(__file__).resolve().parents[1]
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NOBODY = 65534

# pid 1 of a test namespace: reaps orphans (a daemonized haproxy is one) until killed.
_REAPER = """
import os, time

while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.1)
"""


def requirements() -> Optional[str]:
    """Why the haproxy tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (pid namespaces, haproxy, setpriv)"
    if not os.access(HAPROXY, os.X_OK):
        return "haproxy is not installed (apt-get install -y haproxy)"
    for tool in ("unshare", "nsenter", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is missing"
    return None


def wait_for(condition: Callable[[], object], what: str, limit: float = 60.0) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``limit`` seconds (a
    guard against a hang, not a measure: 20 s was once not enough for a haproxy reload on a
    machine running four test workers and other runs beside)."""
    end = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Namespace:
    """A pid + mount namespace whose pid 1 reaps orphans; ``close`` kills all inside."""

    def __init__(self) -> None:
        self.unshare = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                sys.executable,
                "-c",
                _REAPER,
            ],
            start_new_session=True,
        )
        self.pid = int(wait_for(self._holder, "the namespace's pid 1"))  # type: ignore[arg-type]
        self.ns = os.readlink(f"/proc/{self.pid}/ns/pid")

    def _holder(self) -> Optional[int]:
        try:
            kids = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children").read_text()
        except OSError:
            return None
        return int(kids.split()[0]) if kids.split() else None

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", "-t", str(self.pid), "-p", "-m", "--", *argv]

    def run(self, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload,no-any-return]
            self.command(*argv), capture_output=True, text=True, **kwargs
        )

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*argv), text=True, **kwargs)  # type: ignore[call-overload,no-any-return]

    def host_pid(self, ns_pid: int) -> Optional[int]:
        """The host pid of the namespace's process ``ns_pid`` (None once it is gone)."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != self.ns:
                    continue
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == str(ns_pid):
                    return int(entry)
        return None

    def state(self, ns_pid: int) -> Optional[str]:
        """The /proc state letter of ``ns_pid`` (Z for a zombie), None when reaped."""
        host = self.host_pid(ns_pid)
        if host is None:
            return None
        try:
            stat = Path(f"/proc/{host}/stat").read_text()
        except OSError:
            return None
        return stat.rsplit(")", 1)[1].split()[0]

    def kill(self, ns_pid: int, sig: int) -> None:
        host = self.host_pid(ns_pid)
        assert host is not None, f"pid {ns_pid} is not in the namespace"
        os.kill(host, sig)

    def children(self, ns_pid: int) -> list[int]:
        """Namespace pids of the children of ``ns_pid``."""
        host = self.host_pid(ns_pid)
        if host is None:
            return []
        try:
            kids = Path(f"/proc/{host}/task/{host}/children").read_text().split()
        except OSError:
            return []
        found = []
        for kid in kids:
            status = Path(f"/proc/{kid}/status").read_text()
            found += [int(ln.split()[-1]) for ln in status.splitlines() if ln.startswith("NSpid:")]
        return found

    def close(self) -> None:
        if self.unshare.poll() is None:
            os.killpg(self.unshare.pid, signal.SIGKILL)
        self.unshare.wait()


class CheckRun:
    """``ha-notify check ...`` as keepalived runs it: a fresh interpreter, one line on stderr."""

    def __init__(
        self, tmp: Path, ns: Optional[Namespace] = None, exe: Optional[Path] = None
    ) -> None:
        self.tmp = tmp
        self.ns = ns
        self.exe = exe  # the installed ha-notify (for users who cannot enter the checkout)
        self.run_dir = tmp / "run"
        self.config = tmp / "config.toml"
        if not self.config.exists():
            self.config.write_text("")
            self.config.chmod(0o644)
        self.syslog_env = "off"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(REPO),
            HA_NOTIFY_CONFIG=str(self.config),
            HA_NOTIFY_RUN_DIR=str(self.run_dir),
            HA_NOTIFY_SYSLOG=self.syslog_env,
        )
        return env

    def argv(self, *args: str, user: Optional[int] = None) -> list[str]:
        """The command line of ``ha-notify check ARGS`` (as ``user``, in the namespace)."""
        start = [str(self.exe)] if self.exe else [sys.executable, "-m", "ha_notify"]
        argv = [*start, "check", *args]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
        if self.ns is not None:
            argv = self.ns.command(*argv)
        return argv

    def __call__(self, *args: str, user: Optional[int] = None) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args, user=user)
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=60)


class HttpServer:
    """A real HTTP server on 127.0.0.1 that answers 200 (an UP backend server)."""

    def __init__(self) -> None:
        class Ok(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_OPTIONS(self) -> None:
                self.do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a health check that hangs up early is not a test failure

        self.server = Quiet(("127.0.0.1", 0), Ok)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HoldServer(Silent):
    """A TCP server on 127.0.0.1 that accepts connections and keeps them open (a long job)."""

    def __init__(self) -> None:
        super().__init__(tcp())


class HangingSocket(Silent):
    """A unix stream socket that accepts connections and never answers (a hung haproxy)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(unix(path))


def runtime_api(sock_path: Path, command: str) -> str:
    """One command on haproxy's stats socket (from the host; the socket is a file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_status(sock_path: Path, backend: str, server: str) -> Optional[str]:
    """A server's status column in ``show stat`` (None while haproxy does not answer)."""
    try:
        text = runtime_api(sock_path, "show stat")
    except OSError:
        return None
    lines = text.splitlines()
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") == server:
            return row.get("status")
    return None


BASE_CONFIG = """\
global
    stats socket {sock} mode 600 level admin
    {master}
defaults
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe_http
    mode http
    bind 127.0.0.1:{fe_port}
    default_backend be_up
backend be_up
    mode http
    option httpchk
    server web1 127.0.0.1:{up_port} check inter 100ms rise 1 fall 1
{extra}"""

DOWN_BACKEND = """\
backend be_down
    mode http
    server dead1 127.0.0.1:{down_port} check inter 100ms rise 1 fall 1
"""

TCP_FRONTEND = """\
frontend fe_tcp
    mode tcp
    bind 127.0.0.1:{tcp_port}
    default_backend be_hold
backend be_hold
    mode tcp
    server hold1 127.0.0.1:{hold_port}
"""


class Haproxy:
    """One real haproxy (daemon or master-worker) in a namespace, with its own files."""

    def __init__(
        self,
        ns: Namespace,
        tmp: Path,
        *,
        master_worker: bool = False,
        down_backend: bool = False,
        hold: Optional[HoldServer] = None,
        pidfile: Optional[Path] = None,
    ) -> None:
        self.ns = ns
        self.tmp = tmp
        self.master_worker = master_worker
        self.up = HttpServer()
        self.sock = tmp / "haproxy.sock"
        self.pidfile = pidfile or tmp / "haproxy.pid"
        self.cfg = tmp / "haproxy.cfg"
        self.fe_port = free_port()
        self.tcp_port = free_port()
        extra = DOWN_BACKEND.format(down_port=free_port()) if down_backend else ""
        if hold is not None:
            extra += TCP_FRONTEND.format(tcp_port=self.tcp_port, hold_port=hold.port)
        self.cfg.write_text(
            BASE_CONFIG.format(
                sock=self.sock,
                master="master-worker no-exit-on-failure" if master_worker else "",
                fe_port=self.fe_port,
                up_port=self.up.port,
                extra=extra,
            )
        )

    def argv(self, *extra: str) -> list[str]:
        mode = ["-W", "-D"] if self.master_worker else ["-D"]
        return [HAPROXY, *mode, "-f", str(self.cfg), "-p", str(self.pidfile), *extra]

    def start(self) -> Haproxy:
        result = self.ns.run(*self.argv())
        assert result.returncode == 0, result.stderr
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        wait_for(lambda: server_status(self.sock, "be_up", "web1") == "UP", "haproxy to be UP")
        if self.master_worker:  # the worker can answer before its master handles SIGUSR2
            wait_for(self.master_catches_sigusr2, "the master's signal handlers")

    def master_catches_sigusr2(self) -> bool:
        """Whether the master has its SIGUSR2 handler: a reload sent before that is lost."""
        host = self.ns.host_pid(self.pids()[0])
        if host is None:
            return False
        status = Path(f"/proc/{host}/status").read_text()
        caught = next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:"))
        return bool(int(caught, 16) & (1 << (signal.SIGUSR2 - 1)))

    def pids(self) -> list[int]:
        """Namespace pids in the pidfile (the master's in master-worker mode).

        haproxy rewrites its pidfile on reload (unlinked or empty for a moment): wait it out.
        """

        def read() -> list[int]:
            try:
                return [int(w) for w in self.pidfile.read_text().split()]
            except (FileNotFoundError, ValueError):
                return []

        pids: list[int] = wait_for(read, "haproxy's pidfile")
        return pids

    def workers(self) -> list[int]:
        return self.ns.children(self.pids()[0])

    def stop(self) -> None:
        """SIGTERM the processes in the pidfile and wait until they are reaped."""
        for pid in self.pids():
            if self.ns.state(pid) is not None:
                self.ns.kill(pid, signal.SIGTERM)
        wait_for(lambda: all(self.ns.state(p) is None for p in self.pids()), "haproxy to stop")

    def close(self) -> None:
        self.up.close()


def fake_haproxy(tmp: Path) -> Path:
    """A copy of sleep called haproxy: the kernel names a process after its executable."""
    path = tmp / "haproxy"
    shutil.copy("/bin/sleep", path)
    return path
