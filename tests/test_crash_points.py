"""A kill at every write point: one event reaches every channel or none, numbers never reused.

strace counts the renames (every durable write ends in one) of a normal ``ha-notify master``
to two channels, then for every N kills a fresh run with SIGKILL on entering its N-th rename.
After each kill a flush and a next event must show: the event delivered to both channels
(recipients included) or to neither, one id per event, the next event numbered and told its
previous state accordingly. Then a bounded storm of random SIGKILL/SIGTERM.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.storm import ENV, _hook_events, _mail_events, config, storm
from tests.conftest import BIN
from tests.http_recorder import Recorder
from tests.smtp_server import SMTPServer

RENAMES = "rename,renameat,renameat2"
pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def ha_notify(*args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*(strace or []), str(BIN), *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=False, timeout=300)


def renames_of_a_normal_run(folder: Path, cfg: Path) -> int:
    trace = folder / "renames.trace"
    strace = ["strace", "-f", "-qq", "-o", str(trace), "-e", f"trace={RENAMES}"]
    assert ha_notify("master", "-i", "VI_count", "-c", str(cfg), strace=strace).returncode == 0
    return sum(1 for line in trace.read_text().splitlines() if "rename" in line)


@pytest.fixture
def servers() -> tuple[SMTPServer, Recorder]:
    smtp, hook = SMTPServer().start(), Recorder().start()
    yield smtp, hook  # type: ignore[misc]
    smtp.stop()
    hook.stop()


def test_kill_at_every_rename(tmp_path: Path, servers: tuple[SMTPServer, Recorder]) -> None:
    """SIGKILL at each write point of a notify: all channels or none, seq and previous right."""
    smtp, hook = servers
    cfg = config(tmp_path, smtp.port, hook.url("/hook"))
    assert ha_notify("backup", "-i", "VI_count", "-c", str(cfg)).returncode == 0
    points = renames_of_a_normal_run(tmp_path, cfg)
    assert points >= 3  # the event file, state.json, the legs' updates
    for n in range(1, points + 2):  # the last one: nothing to kill, a normal run
        name = f"VI_{n}"
        assert ha_notify("backup", "-i", name, "-c", str(cfg)).returncode == 0
        strace = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}"]
        strace += ["-e", f"inject={RENAMES}:signal=SIGKILL:when={n}"]
        killed = ha_notify("master", "-i", name, "-c", str(cfg), strace=strace)
        assert ha_notify("flush", "-c", str(cfg)).returncode == 0
        assert ha_notify("fault", "-i", name, "-c", str(cfg)).returncode == 0
        assert ha_notify("flush", "-c", str(cfg)).returncode == 0  # what a loaded run left
        got = [e for e in _mail_events(smtp) + _hook_events(hook) if e["name"] == name]
        masters = [e for e in got if e["state"] == "master"]
        faults = [e for e in got if e["state"] == "fault"]
        where = f"kill at rename {n} of {points} (exit {killed.returncode})"
        assert {e["to"] for e in faults} == {"ops1@example.com", "ops2@example.com", "hook"}
        assert len({e["id"] for e in faults}) == 1, where
        if masters:
            assert {e["to"] for e in masters} == {e["to"] for e in faults}, where
            assert len({e["id"] for e in masters}) == 1, where  # duplicates keep their id
            assert {e["seq"] for e in masters} == {2} and faults[0]["seq"] == 3, where
            assert faults[0]["previous"] == "master", where
        else:
            assert faults[0]["seq"] == 2 and faults[0]["previous"] == "backup", where
        pending = tmp_path / "state" / "spool" / "pending"
        assert list(pending.glob("*.json")) == [], where
    assert ha_notify("status", "-c", str(cfg)).returncode == 0


def test_storm_of_kills(tmp_path: Path) -> None:
    """40 notifies, random SIGKILL/SIGTERM, then flush: nothing lost, reused or re-identified."""
    counts = storm(tmp_path, runs=40, parallel=8, seed=20240610)
    print(counts.line())
    assert counts.sigkill and counts.sigterm and counts.events
    assert counts.lost == counts.reused == counts.wrong_previous == 0, counts.line()
    assert counts.different_id_duplicates == 0 and counts.still_pending == 0, counts.line()
