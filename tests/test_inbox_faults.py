"""Faults injected (strace) at every write point of a notify's inbox write: a SIGKILL, ENOSPC
or EIO at the temp file's open, write, fsync, chmod, rename, and the folder's open and fsync.
Each event ends in the inbox (numbered later, once) or is sent directly and loudly (exit 1);
never lost in silence, never adopted half-written, never sent twice."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.storm import _hook_events
from tests.conftest import BIN, WriteConfig, run_bin
from tests.http_recorder import Recorder
from tests.test_inbox import ENV, HeldLock, inbox, notify

CALLS = "openat,write,fsync,chmod,rename"
# Each write point of Inbox.put: its syscall and how its line reads in `strace -y` (fds
# shown with their paths), in the order they happen.
POINTS = (
    ("openat", r'openat\(AT_FDCWD[^,]*, "[^"]*/inbox/\.tmp-'),
    ("write", r"write\(\d+</[^>]*/inbox/\.tmp-"),
    ("fsync", r"fsync\(\d+</[^>]*/inbox/\.tmp-"),
    ("chmod", r'chmod\("[^"]*/inbox/\.tmp-'),
    ("rename", r'rename\("[^"]*/inbox/\.tmp-'),
    ("openat", r'openat\(AT_FDCWD[^,]*, "[^"]*/inbox", O_RDONLY'),
    ("fsync", r"fsync\(\d+</[^>]*/inbox>\)"),
)
FAULTS = ("signal=SIGKILL", "error=ENOSPC", "error=EIO")


@pytest.fixture
def hook() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


def traced(log: Path, *args: str, inject: str = "") -> subprocess.CompletedProcess[str]:
    """Run ha-notify under strace (main thread's calls of CALLS logged to ``log``)."""
    cmd = ["strace", "-f", "-qq", "-y", "-o", str(log), "-e", f"trace={CALLS}"]
    if inject:
        cmd += ["-e", f"inject={inject}"]
    return subprocess.run(
        [*cmd, str(BIN), *args], env=ENV, capture_output=True, text=True, check=False
    )


def main_calls(log: Path) -> list[tuple[str, str]]:
    """(syscall, line) of the traced process's main thread, in order."""
    lines = log.read_text().splitlines()
    main = lines[0].split()[0]
    found = []
    for line in lines:
        pid, _, rest = line.partition(" ")
        m = re.match(r"\s*(\w+)\(", rest)
        if pid == main and m:
            found.append((m.group(1), rest))
    return found


def ordinals(log: Path) -> list[int]:
    """For each of POINTS, which call of its syscall it is (strace's ``when=``)."""
    calls = main_calls(log)
    found, start = [], 0
    for syscall, pattern in POINTS:
        for i in range(start, len(calls)):
            if calls[i][0] == syscall and re.search(pattern, calls[i][1]):
                found.append(sum(1 for c, _ in calls[: i + 1] if c == syscall))
                start = i + 1
                break
        else:
            raise AssertionError(f"{syscall} /{pattern}/ not traced:\n{log.read_text()}")
    return found


def ready(folder: Path, write_config: WriteConfig, hook: Recorder, name: str) -> Path:
    """A state dir with one event recorded (`backup`); the config to use it, deadline 3 s."""
    cfg = write_config(
        {"hook": {"type": "webhook", "url": hook.url("/hook")}},
        deadline=3,
        state_dir=str(folder / "state"),
    )
    assert notify(cfg, "backup", name).returncode == 0
    return cfg


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_every_fault_at_every_inbox_write_point(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """Lock held; a notify's inbox write meets SIGKILL, ENOSPC or EIO at each write point:
    killed before its rename, nothing is queued and its temp file is never adopted; an
    error before the rename sends it directly (exit 1); after the rename it is queued (exit
    0). Then a flush: each event reached the hook at most once, and once unless killed."""
    calib = ready(tmp_path / "calib", write_config, hook, "VI_calib")
    held = HeldLock(tmp_path / "calib" / "state")
    try:
        assert traced(tmp_path / "calib.log", "master", "-c", str(calib), "-i", "VI_calib")
    finally:
        held.release()
    whens = ordinals(tmp_path / "calib.log")
    renamed = [s for s, _ in POINTS].index("rename")
    tally: dict[str, int] = {}
    for point, ((syscall, pattern), when) in enumerate(zip(POINTS, whens)):
        for fault in FAULTS:
            name = f"VI_{point}{fault.split('=')[1][:5]}"
            folder = tmp_path / name
            cfg = ready(folder, write_config, hook, name)
            state = folder / "state"
            log = tmp_path / f"{name}.log"
            held = HeldLock(state)
            try:
                proc = traced(
                    log,
                    *("master", "-c", str(cfg), "-i", name),
                    inject=f"{syscall}:{fault}:when={when}",
                )
            finally:
                held.release()
            outcome = "lost (said so)" if "LOST" in proc.stderr else f"exit {proc.returncode}"
            tally[outcome] = tally.get(outcome, 0) + 1
            where = f"{fault} at {syscall} #{when} (/{pattern}/), exit {proc.returncode}"
            hit = [c for c in main_calls(log) if c[0] == syscall][when - 1][1]
            assert re.search(pattern, hit), f"{where}: injected into {hit}"
            queued = inbox(state)
            if fault.startswith("signal"):
                assert proc.returncode != 0, where
                assert len(queued) == (1 if point > renamed else 0), where
            elif point > renamed:  # on disk in the inbox: queued, not sent directly as well
                assert proc.returncode == 0, f"{where}: {proc.stderr}"
                assert "queued behind the state lock" in proc.stderr, where
                assert len(queued) == 1, where
            else:
                assert proc.returncode == 1, f"{where}: {proc.stderr}"
                assert "the inbox could not be written" in proc.stderr, where
                assert queued == [], where
                assert "(unspooled)" in proc.stderr or "LOST" in proc.stderr, where
            left = [p.name for p in (state / "inbox").iterdir()] if queued else []
            assert all(n.endswith(".json") for n in left), f"{where}: {left}"
            flushed = run_bin("flush", "-c", str(cfg), env=ENV)
            assert flushed.returncode == 0, f"{where}: {flushed.stderr}"
            assert inbox(state) == [], where
            masters = [
                e for e in _hook_events(hook) if e["name"] == name and e["state"] == "master"
            ]
            if fault.startswith("signal") and point <= renamed:
                assert masters == [], where
            elif "LOST" not in proc.stderr:
                assert len(masters) == 1, f"{where}: {masters}"
                assert len({e["id"] for e in masters}) == 1, where
    print(f"{len(POINTS)} write points x {len(FAULTS)} faults: {tally}")
