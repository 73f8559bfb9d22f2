"""Attacks on the spool's retry paths: `flush --retry-dead` killed at each write point, and
raced by a concurrent `flush`. A delivery must reach its channel once (plus the one
documented same-id duplicate), and a delivered event must never be counted dead."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.storm import ENV
from tests.conftest import BIN
from tests.http_recorder import Answer, Recorder

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
WRITES = "rename,renameat,renameat2,unlink,unlinkat"


@pytest.fixture
def hook() -> Recorder:
    server = Recorder().start()
    yield server  # type: ignore[misc]
    server.stop()


def ha_notify(*args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*(strace or []), str(BIN), *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=False, timeout=300)


def write_config(folder: Path, url: str, *, channels: tuple[str, ...] = ("hook",)) -> Path:
    lines = ["[general]", 'cluster = "atk"', f'state_dir = "{folder / "state"}"', ""]
    for name in channels:
        lines += [f"[channels.{name}]", 'type = "webhook"', f'url = "{url}/{name}"', ""]
    path = folder / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def dead_counts(cfg: Path) -> dict[str, int]:
    from ha_notify.config import load
    from ha_notify.notify.spool import Spool

    counts = Spool(load(cfg).general.state_dir).counts()
    return dict(counts["dead"])


def ids(hook: Recorder, path: str) -> list[str]:
    return [str(r.json()["event_id"]) for r in hook.on(path)]


def writes_of(folder: Path, cfg: Path) -> list[tuple[str, int]]:
    """(syscall, n) for every write of a normal run: strace counts each syscall apart."""
    trace = folder / "writes.trace"
    strace = ["strace", "-f", "-qq", "-o", str(trace), "-e", f"trace={WRITES}"]
    assert ha_notify("flush", "--retry-dead", "-c", str(cfg), strace=strace).returncode == 0
    seen: dict[str, int] = {}
    for line in trace.read_text().splitlines():
        name = line.split()[1].split("(")[0]
        seen[name] = seen.get(name, 0) + 1
    return [(name, n) for name, count in seen.items() for n in range(1, count + 1)]


def one_dead_event(folder: Path, hook: Recorder) -> Path:
    """A fresh state_dir holding one event whose only delivery was refused for good."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    cfg = write_config(folder, hook.url(""))
    hook.answer("/hook", Answer(404, "no such hook"))
    assert ha_notify("master", "-c", str(cfg)).returncode == 1
    assert dead_counts(cfg) == {"hook": 1}
    hook.answer("/hook", Answer(200, "ok"))
    hook.requests.clear()
    return cfg


def test_retry_dead_killed_at_every_write_point(tmp_path: Path, hook: Recorder) -> None:
    """Never lose, never twice: `flush --retry-dead` SIGKILLed at each rename/unlink."""
    cfg = one_dead_event(tmp_path / "count", hook)
    points = writes_of(tmp_path / "count", cfg)
    assert len(points) >= 3  # revive's write and unlink, filing the delivered event
    for call, n in points:
        cfg = one_dead_event(tmp_path / f"{call}{n}", hook)
        strace = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={WRITES}"]
        strace += ["-e", f"inject={call}:signal=SIGKILL:when={n}"]
        killed = ha_notify("flush", "--retry-dead", "-c", str(cfg), strace=strace)
        accepted_before_kill = len(hook.on("/hook"))
        # The timer's flush, then the operator retrying what the killed command left.
        assert ha_notify("flush", "-c", str(cfg)).returncode == 0
        assert ha_notify("flush", "--retry-dead", "-c", str(cfg)).returncode == 0
        assert ha_notify("flush", "-c", str(cfg)).returncode == 0
        got = ids(hook, "/hook")
        why = f"kill at {call} #{n}: {killed.stderr[-300:]}"
        assert len(set(got)) == 1, why
        assert len(got) <= 1 + accepted_before_kill, why  # the same-id duplicate only
        assert dead_counts(cfg) == {}, why
        hook.requests.clear()


def wait_stopped(trace: Path) -> int:
    """The pid strace stopped with the injected SIGSTOP, once it has (polling its log)."""
    while True:
        text = trace.read_text() if trace.exists() else ""
        for line in text.splitlines():
            if "stopped by SIGSTOP" in line:
                return int(line.split()[0])
        time.sleep(0.02)


def test_retry_dead_raced_by_a_flush_sends_nothing_twice(tmp_path: Path, hook: Recorder) -> None:
    """Concurrent runs never send twice: a flush lands while `--retry-dead` reads the spool."""
    folder = tmp_path / "race"
    folder.mkdir()
    cfg = write_config(folder, hook.url(""), channels=("dead", "live", "down"))
    hook.answer("/dead", Answer(404, "no such hook"))
    hook.answer("/live", Answer(503, "busy"))
    hook.answer("/down", Answer(503, "busy"))  # keeps the event in pending/ throughout
    ha_notify("master", "-c", str(cfg))
    assert dead_counts(cfg) == {"dead": 1}
    hook.answer("/dead", Answer(200, "ok"))
    hook.answer("/live", Answer(200, "ok"))
    hook.requests.clear()
    # --retry-dead has scanned the spool and stops as it opens the event's lock (before
    # taking it): about to rewrite the event file. A plain flush delivers "live" meanwhile.
    lock = next((folder / "state" / "spool" / "locks").glob("event-*.lock"))
    trace = folder / "open.trace"
    strace = ["strace", "-f", "-qq", "-o", str(trace), "-P", str(lock), "-e", "trace=openat"]
    strace += ["-e", "inject=openat:signal=SIGSTOP:when=1"]
    reviver = subprocess.Popen(
        [*strace, str(BIN), "flush", "--retry-dead", "-c", str(cfg)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        child = wait_stopped(trace)
        assert ha_notify("flush", "-c", str(cfg)).returncode == 0
        assert len(hook.on("/live")) == 1
        os.kill(child, signal.SIGCONT)
        _, err = reviver.communicate(timeout=300)
    finally:
        if reviver.poll() is None:
            reviver.kill()
            reviver.wait()
    assert ha_notify("flush", "-c", str(cfg)).returncode == 0
    assert len(hook.on("/live")) == 1, err[-400:]
    assert len(hook.on("/dead")) == 1, err[-400:]
    assert dead_counts(cfg) == {}


def test_a_notify_reads_a_waiting_backlog_a_bounded_number_of_times(
    tmp_path: Path, hook: Recorder
) -> None:
    """Backoff holds without re-reading the whole backlog once per waiting group."""
    cfg = write_config(tmp_path, hook.url(""))
    hook.answer("/hook", Answer(503, "busy"))
    for i in range(12):  # twelve instances, each with one delivery in backoff
        assert ha_notify("master", "-i", f"VI_{i}", "-c", str(cfg)).returncode == 0
    hook.answer("/hook", Answer(200, "ok"))
    hook.requests.clear()
    waiting = sorted((tmp_path / "state" / "spool" / "pending").iterdir())
    trace = tmp_path / "open.trace"
    strace = ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=openat"]
    assert ha_notify("master", "-i", "VI_new", "-c", str(cfg), strace=strace).returncode == 0
    assert [r.json()["name"] for r in hook.on("/hook")] == ["VI_new"]  # the rest not due
    text = trace.read_text()
    reads = [text.count(str(path)) for path in waiting]
    assert max(reads) <= 5, reads


def test_eight_concurrent_flushes_send_each_delivery_once_in_order(
    tmp_path: Path, hook: Recorder
) -> None:
    """Concurrent flush runs: every delivery once, per instance in sequence order."""
    cfg = write_config(tmp_path, hook.url(""), channels=("hook", "h2"))
    hook.answer("/hook", Answer(503, "busy"))
    hook.answer("/h2", Answer(503, "busy"))
    for i in range(12):
        ha_notify(("master", "backup")[i % 2], "-i", f"VI_{i % 3}", "-c", str(cfg))
    hook.answer("/hook", Answer(200, "ok"))
    hook.answer("/h2", Answer(200, "ok"))
    hook.requests.clear()
    runs = [
        subprocess.Popen([str(BIN), "flush", "-c", str(cfg)], env=ENV, stdout=subprocess.DEVNULL)
        for _ in range(8)
    ]
    assert [run.wait(timeout=300) for run in runs] == [0] * 8
    for path in ("/hook", "/h2"):
        events = [r.json() for r in hook.on(path)]
        assert len(events) == 12 and len({e["event_id"] for e in events}) == 12
        for name in ("VI_0", "VI_1", "VI_2"):
            seqs = [e["seq"] for e in events if e["name"] == name]
            assert seqs == sorted(seqs) == [1, 2, 3, 4]
