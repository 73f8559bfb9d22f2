"""The inbox: a notify that cannot get the state lock in time queues its event, lock-free,
and exits 0 by its deadline; the next holder of the lock numbers it exactly once, in order.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from benchmarks.storm import _hook_events
from tests.conftest import BIN, WriteConfig, mail_channel, run_bin
from tests.http_recorder import Recorder
from tests.smtp_server import SilentServer

ENV = {"HA_NOTIFY_SYSLOG": "off", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
# strace counts each injected syscall on its own: renames and unlinks are killed in turn.
WRITES = ("rename,renameat,renameat2", "unlink,unlinkat")


@pytest.fixture
def hook() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


def inbox(state: Path) -> list[Path]:
    folder = state / "inbox"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def pending(state: Path) -> list[dict[str, Any]]:
    folder = state / "spool" / "pending"
    files = sorted(folder.glob("*.json")) if folder.exists() else []
    return [json.loads(f.read_text())["event"] for f in files]


class HeldLock:
    """The test holds state.lock, as a stuck or slow holder would."""

    def __init__(self, state: Path) -> None:
        state.mkdir(exist_ok=True, mode=0o700)
        self.fh = open(state / "state.lock", "w")  # noqa: SIM115 - closed by release()
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def release(self) -> None:
        self.fh.close()


def notify(cfg: Path, state: str, name: str = "VI_1") -> subprocess.CompletedProcess[str]:
    return run_bin(state, "-c", str(cfg), "-i", name, env=ENV)


def test_lock_held_queues_in_inbox_and_exits_in_time(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """A notify that cannot get the lock queues its event and exits 0 within deadline + 1 s."""
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=2)
    state = tmp_path / "state"
    assert notify(cfg, "fault").returncode == 0
    held = HeldLock(state)
    try:
        began = time.monotonic()
        proc = notify(cfg, "master")
        took = time.monotonic() - began
    finally:
        held.release()
    assert proc.returncode == 0, proc.stderr
    assert took < 2 + 1, f"returned after {took:.2f}s"
    assert "queued behind the state lock; numbered and sent by the next notify/flush" in (
        proc.stderr
    )
    assert "Nothing was spooled" not in proc.stderr
    [queued] = inbox(state)
    data = json.loads(queued.read_text())
    assert data["event"]["state"] == "master" and data["argv"][0] == "master"
    assert data["started"] <= time.time()
    status = json.loads(run_bin("status", "--json", "-c", str(cfg), env=ENV).stdout)
    assert status["pending"]["hook"]["pending"] == 1
    assert [q["state"] for q in status["queued"]] == ["master"]
    assert notify(cfg, "backup").returncode == 0
    got = [(e["state"], e["seq"], e["previous"]) for e in _hook_events(hook)]
    assert got == [("fault", 1, None), ("master", 2, "fault"), ("backup", 3, "master")]
    assert inbox(state) == [] and pending(state) == []


def test_flush_numbers_the_inbox_in_arrival_order(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """Queued events are numbered by flush in process start order, each sent once."""
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=1)
    state = tmp_path / "state"
    held = HeldLock(state)
    try:
        for s in ("master", "backup", "fault", "master"):
            assert notify(cfg, s).returncode == 0
    finally:
        held.release()
    assert len(inbox(state)) == 4
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=20)
    flushed = run_bin("flush", "-c", str(cfg), env=ENV)
    assert flushed.returncode == 0, flushed.stderr
    got = [(e["state"], e["seq"], e["previous"]) for e in _hook_events(hook)]
    assert got == [
        ("master", 1, None),
        ("backup", 2, "master"),
        ("fault", 3, "backup"),
        ("master", 4, "fault"),
    ]
    assert len({e["id"] for e in _hook_events(hook)}) == 4
    assert inbox(state) == [] and pending(state) == []
    stored = json.loads((state / "state.json").read_text())["INSTANCE:VI_1"]
    assert stored["seq"] == 4 and stored["state"] == "master"


def test_damaged_inbox_file_is_quarantined_and_counted(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """An unparseable inbox file is set aside with its reason; the others still go."""
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=1)
    state = tmp_path / "state"
    held = HeldLock(state)
    try:
        assert notify(cfg, "master").returncode == 0
    finally:
        held.release()
    (state / "inbox" / "0123.json").write_text('{"event": {"state": "mas')
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=20)
    assert run_bin("flush", "-c", str(cfg), env=ENV).returncode == 0
    assert [e["state"] for e in _hook_events(hook)] == ["master"]
    status = json.loads(run_bin("status", "--json", "-c", str(cfg), env=ENV).stdout)
    [bad] = status["quarantined"]
    assert "inbox-0123.json" in bad["file"] and "damaged inbox file" in bad["reason"]
    assert inbox(state) == []


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_kill_at_every_write_point_of_the_adoption(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """SIGKILL at each rename/unlink of a flush that adopts two queued events: each event
    ends in the spool once or stays queued, never both and never neither."""
    for calls in WRITES:
        points = kill_each(calls, write_config, hook, tmp_path)
        print(f"killed at each of {points} {calls.split(',')[0]}s")
        assert points >= 2  # spool files then state.json; the two inbox files


def kill_each(calls: str, write_config: WriteConfig, hook: Recorder, tmp_path: Path) -> int:
    """Kill a flush at the N-th of ``calls`` for every N; how many there were."""
    for n in range(1, 30):
        folder = tmp_path / f"{calls[:6]}{n}"
        folder.mkdir()
        name = f"VI_{calls[:6]}{n}"
        cfg = write_config(
            {"hook": {"type": "webhook", "url": hook.url("/hook")}},
            deadline=2,
            state_dir=str(folder / "state"),
        )
        state = folder / "state"
        assert notify(cfg, "backup", name).returncode == 0
        held = HeldLock(state)
        try:
            assert notify(cfg, "master", name).returncode == 0
            assert notify(cfg, "fault", name).returncode == 0
        finally:
            held.release()
        assert len(inbox(state)) == 2
        cfg = write_config(
            {"hook": {"type": "webhook", "url": hook.url("/hook")}},
            deadline=20,
            state_dir=str(folder / "state"),
        )
        strace = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}"]
        strace += ["-e", f"inject={calls}:signal=SIGKILL:when={n}"]
        killed = subprocess.run(
            [*strace, str(BIN), "flush", "-c", str(cfg)],
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        where = f"kill at {calls} {n} (exit {killed.returncode})"
        queued = {json.loads(p.read_text())["event"]["id"] for p in inbox(state)}
        sent = {e["id"] for e in _hook_events(hook) if e["name"] == name}
        spooled = {e["id"] for e in pending(state)}
        # Never neither: the first backup and the two queued events are each somewhere (an
        # event spooled and still queued is the killed adopter's; the next one only drops it).
        assert len(queued | spooled | sent) == 3, where
        status = json.loads(run_bin("status", "--json", "-c", str(cfg), env=ENV).stdout)
        waiting = status["pending"].get("hook", {}).get("pending", 0)
        assert waiting == len(queued | spooled), where  # an event counted once
        assert run_bin("flush", "-c", str(cfg), env=ENV).returncode == 0
        assert notify(cfg, "backup", name).returncode == 0
        # A kill between a send and its recording resends it with the same id (the one
        # documented duplicate): count each id once.
        mine = list({e["id"]: e for e in _hook_events(hook) if e["name"] == name}.values())
        got = [(e["state"], e["seq"], e["previous"]) for e in mine]
        assert got == [
            ("backup", 1, None),
            ("master", 2, "backup"),
            ("fault", 3, "master"),
            ("backup", 4, "fault"),
        ], where
        assert len({e["id"] for e in mine}) == 4, where
        assert inbox(state) == [] and pending(state) == [], where
        if killed.returncode == 0:  # the last N: nothing left to kill
            return n - 1
    raise AssertionError("the flush never ran to its end")


def test_fifty_at_once_with_a_hung_relay_and_cpu_hogs(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    """50 notifies at once, a relay that never answers, busy CPUs: all exit 0, and after a
    flush the spool holds 50 events numbered 1..50, none lost, none doubled."""
    hung = SilentServer()
    cfg = write_config(
        {"mail": mail_channel(hung.port, timeout=60)}, deadline=3, flap_threshold=1000
    )
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    states = ["master", "backup", "fault"]

    def one(i: int) -> tuple[int, float]:
        began = time.monotonic()
        code = notify(cfg, states[i % 3]).returncode
        return code, time.monotonic() - began

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            runs = list(pool.map(one, range(50)))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    state = tmp_path / "state"
    queued = len(inbox(state))
    print(f"slowest notify {max(t for _, t in runs):.2f}s; {queued} of 50 queued in the inbox")
    assert [code for code, _ in runs] == [0] * 50
    try:
        assert run_bin("flush", "-c", str(cfg), env=ENV).returncode == 0
    finally:
        hung.stop()
    assert inbox(state) == []
    events = pending(state)
    assert sorted(e["seq"] for e in events) == list(range(1, 51))
    assert len({e["id"] for e in events}) == 50


def test_sigterm_while_waiting_says_nothing_was_sent(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    """Lock held, inbox unwritable, SIGTERM during the wait: exit 1, and the message says
    the alert was not sent because of the signal, never "sending directly"."""
    hung = SilentServer()
    cfg = write_config({"mail": mail_channel(hung.port, timeout=60)}, deadline=3)
    state = tmp_path / "state"
    held = HeldLock(state)
    (state / "inbox").write_text("a file where the inbox folder belongs")
    try:
        proc = subprocess.Popen(
            [str(BIN), "master", "-c", str(cfg)], env=ENV, stderr=subprocess.PIPE, text=True
        )
        lock = str(state / "state.lock")

        def waiting() -> bool:
            try:
                fds = list(Path(f"/proc/{proc.pid}/fd").iterdir())
                return any(os.readlink(fd) == lock for fd in fds)
            except OSError:
                return False

        for _ in range(2400):  # bounded poll for the event "the notify opened the lock"
            if waiting():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        held.release()
        hung.stop()
    assert proc.returncode == 1, err
    assert "Sending directly" not in err
    assert "the inbox could not be written" in err
    assert "NOT delivered via mail: stopped by SIGTERM before it was sent (this alert is LOST)" in (
        err
    )
    assert hung.conns == []
