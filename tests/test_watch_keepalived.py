"""The watcher under a real keepalived (network namespace): the reference wiring fails safe.

keepalived runs as the reference config has it (contrib/keepalived/keepalived-node1-watch.conf):
``track_file`` with ``init_file 1 overwrite`` and weight 0, plus ``vrrp_track_process`` on
the watcher's command line. Alone on its link, the instance becomes MASTER when healthy.
"""

from __future__ import annotations

import random
import re
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.haproxy_helpers import Haproxy, Namespace, requirements, wait_for
from tests.watch_helpers import Watch, kill_all

pytestmark = pytest.mark.root
VIP = "10.254.0.100"
STATE = re.compile(r"\(VI_W\):? entering (\w+) state", re.IGNORECASE)

KEEPALIVED_CONF = """\
global_defs {{
    router_id watchtest
}}
track_file haproxy_verdict {{
    file "{track}"
    weight 0
    init_file 1 overwrite
}}
vrrp_track_process ha_notify_watch {{
    process {argv}
    param_match partial
    quorum 1
    terminate_delay 1
    weight 0
}}
vrrp_instance VI_W {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    priority 100
    advert_int 1
    track_file {{
        haproxy_verdict
    }}
    track_process {{
        ha_notify_watch
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


class Keepalived:
    """keepalived --vrrp in a network namespace of its own, its states read from its log."""

    def __init__(self, tmp: Path, watch: Watch) -> None:
        self.net = f"hawatch-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.net], check=True)
        for cmd in (
            ["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
            ["addr", "add", "10.254.0.1/24", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
            ["link", "set", "peer0", "up"],
        ):
            subprocess.run(["ip", "-n", self.net, *cmd], check=True)
        self.conf = tmp / "keepalived.conf"
        self.conf.write_text(
            KEEPALIVED_CONF.format(
                track=watch.track,
                argv=" ".join(watch.argv()),
                vrid=random.randint(1, 255),
                vip=VIP,
            )
        )
        self.tmp = tmp
        self.states: list[str] = []
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--no-syslog",
                "--vrrp",
                "--namespace",
                self.net,
                "-f",
                str(self.conf),
                "--pid",
                str(self.tmp / "k.pid"),
                "--vrrp_pid",
                str(self.tmp / "v.pid"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            found = STATE.search(line)
            if found:
                self.states.append(found.group(1))

    def state(self) -> str:
        return self.states[-1] if self.states else ""

    def wait_state(self, state: str) -> None:
        try:
            wait_for(lambda: self.state() == state, f"keepalived {state}", limit=30)
        except AssertionError:
            raise AssertionError(
                f"keepalived never {state}; config:\n{self.conf.read_text()}\nits log:\n"
                + "".join(self.lines)
            ) from None

    def holds_vip(self) -> bool:
        out = subprocess.run(
            ["ip", "-n", self.net, "-o", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
        )
        return f" {VIP}/" in out.stdout

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=30)
            self.reader.join(timeout=30)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        subprocess.run(["ip", "netns", "del", self.net], check=False)


@pytest.fixture
def ns() -> Iterator[Namespace]:
    """A pid namespace for haproxy and the watcher."""
    reason = requirements()
    if reason:
        pytest.skip(reason)
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed")
    space = Namespace()
    try:
        yield space
    finally:
        space.close()


@pytest.fixture
def setup(ns: Namespace, tmp_path: Path) -> Iterator[tuple[Haproxy, Watch, Keepalived]]:
    """haproxy, a watcher (not started) and keepalived (not started) wired like contrib."""
    proxy = Haproxy(ns, tmp_path, master_worker=True).start()
    watch = Watch(ns, tmp_path, proxy)
    keepalived = Keepalived(tmp_path, watch)
    try:
        yield proxy, watch, keepalived
    finally:
        keepalived.close()
        watch.stop()
        proxy.close()


def test_stale_healthy_file_cannot_keep_master(setup: tuple[Haproxy, Watch, Keepalived]) -> None:
    """SIGKILL on the watcher leaves "0" in the file, yet keepalived leaves MASTER (FAULT)."""
    _proxy, watch, keepalived = setup
    watch.start().wait_value("0\n", "a healthy verdict")
    keepalived.start()
    keepalived.wait_state("MASTER")
    assert keepalived.holds_vip()
    watch.signal(signal.SIGKILL)
    keepalived.wait_state("FAULT")
    assert watch.value() == "0\n"  # the stale "healthy" file is still there
    wait_for(lambda: not keepalived.holds_vip(), "the VIP to go")
    watch.proc.wait()
    watch.start()  # what systemd's Restart=always does
    keepalived.wait_state("MASTER")


def test_init_file_keeps_node_out_until_the_watcher_speaks(
    setup: tuple[Haproxy, Watch, Keepalived],
) -> None:
    """keepalived overwrites an old "0" with 1 at start: no MASTER before the watcher writes."""
    _proxy, watch, keepalived = setup
    watch.track.parent.mkdir(parents=True, exist_ok=True)
    watch.track.write_text("0\n")  # left by a previous run
    keepalived.start()
    keepalived.wait_state("FAULT")
    assert watch.track.read_text().strip() == "1"
    assert "MASTER" not in keepalived.states
    watch.start()
    keepalived.wait_state("MASTER")


@pytest.mark.parametrize("fault", ["kill", "frontend"])
def test_haproxy_faults_move_the_node_to_fault(
    setup: tuple[Haproxy, Watch, Keepalived], ns: Namespace, fault: str
) -> None:
    """haproxy killed, or a frontend disabled: the watcher writes 1 and keepalived goes FAULT."""
    proxy, watch, keepalived = setup
    watch.start().wait_value("0\n", "a healthy verdict")
    keepalived.start()
    keepalived.wait_state("MASTER")
    if fault == "kill":
        kill_all(ns, proxy, signal.SIGKILL)
    else:
        from tests.haproxy_helpers import runtime_api

        runtime_api(proxy.sock, "disable frontend fe_http")
    keepalived.wait_state("FAULT")
    assert watch.value() == "1\n"
    assert not keepalived.holds_vip()
