"""Hostile inbox contents and folders: a FIFO, folder, symlink or 100 MB file named like an
entry, a read-only inbox, a disk full one page short, an entry the script user cannot read.
Adoption never hangs, crashes or blocks the other events; each notify ends in time."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.storm import _hook_events
from tests.conftest import WriteConfig, run_bin
from tests.http_recorder import Recorder
from tests.test_inbox import ENV, HeldLock, inbox, notify, pending


@pytest.fixture
def hook() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


def queue(cfg: Path, state: Path, s: str) -> Path:
    """Queue ``s`` in the inbox (the lock held, as by a busy holder); its inbox file."""
    held = HeldLock(state)
    try:
        proc = notify(cfg, s)
    finally:
        held.release()
    assert proc.returncode == 0, proc.stderr
    [path] = [p for p in inbox(state) if json.loads(p.read_text())["event"]["state"] == s]
    return path


def sent(hook: Recorder) -> list[str]:
    return [e["state"] for e in _hook_events(hook)]


def test_fifo_folder_symlinks_and_a_huge_file_are_set_aside_in_time(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """A FIFO, a folder, a dangling symlink, a symlink to a valid entry and a 100 MB file,
    each named `<id>.json`: a notify returns 0 within deadline + 1 s and sends its own and
    the real queued event; every impostor is quarantined (status lists it), none adopted."""
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=2)
    state = tmp_path / "state"
    assert notify(cfg, "backup").returncode == 0
    real = queue(cfg, state, "master")
    folder = state / "inbox"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(real.read_text().replace(real.stem, "f" * 32))
    names = [uuid.uuid4().hex for _ in range(5)]
    os.mkfifo(folder / f"{names[0]}.json")
    (folder / f"{names[1]}.json").mkdir()
    (folder / f"{names[2]}.json").symlink_to(tmp_path / "nowhere")
    (folder / f"{names[3]}.json").symlink_to(elsewhere)
    with open(folder / f"{names[4]}.json", "wb") as fh:
        fh.truncate(100 << 20)
    began = time.monotonic()
    proc = notify(cfg, "fault")
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert took < 2 + 1, f"notify took {took:.2f}s"
    assert sent(hook) == ["backup", "master", "fault"]
    assert list(folder.iterdir()) == [] and elsewhere.exists()
    status = json.loads(run_bin("status", "--json", "-c", str(cfg), env=ENV).stdout)
    bad = {Path(q["file"]).name.split("-", 2)[2]: q["reason"] for q in status["quarantined"]}
    assert sorted(bad) == sorted(f"{n}.json" for n in names)
    assert "too big" in bad[f"{names[4]}.json"]
    assert "not a regular file" in bad[f"{names[0]}.json"]
    assert status["queued"] == [] and status["unreadable"] == []


@pytest.mark.root
def test_read_only_inbox_blocks_nothing_and_nothing_is_sent_twice(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """The inbox folder goes read-only with an event in it: the next notifies number it once
    (it cannot be removed, so each only retries the removal) and send their own; a notify
    that meets the busy lock then sends directly, exit 1, in time; once writable, all clean."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a read-only bind mount")
    cfg = write_config({"hook": {"type": "webhook", "url": hook.url("/hook")}}, deadline=2)
    state = tmp_path / "state"
    assert notify(cfg, "backup").returncode == 0
    queue(cfg, state, "master")
    folder = str(state / "inbox")
    subprocess.run(["mount", "--bind", folder, folder], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", folder, folder], check=True)
        first = notify(cfg, "fault")
        second = notify(cfg, "backup")
        held = HeldLock(state)
        try:
            began = time.monotonic()
            direct = notify(cfg, "master")
            took = time.monotonic() - began
        finally:
            held.release()
    finally:
        subprocess.run(["umount", folder], check=True)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert direct.returncode == 1 and took < 2 + 1, (took, direct.stderr)
    assert "the inbox could not be written" in direct.stderr
    assert "Read-only file system" in direct.stderr
    assert sent(hook)[:4] == ["backup", "master", "fault", "backup"]
    assert len(inbox(state)) == 1
    assert run_bin("flush", "-c", str(cfg), env=ENV).returncode == 0
    assert inbox(state) == [] and pending(state) == []
    mine = [e for e in _hook_events(hook) if e["seq"] > 0]
    assert [(e["state"], e["seq"]) for e in mine] == [
        ("backup", 1),
        ("master", 2),
        ("fault", 3),
        ("backup", 4),
    ]


@pytest.mark.root
def test_disk_full_one_page_short_while_queueing(
    write_config: WriteConfig, hook: Recorder, tmp_path: Path
) -> None:
    """One page left: the queued event fits in the inbox; the next notify cannot spool
    anything (adoption included), sends its own directly (exit 1) in time and leaves the
    queued one where it is; with room again, a flush numbers and sends it, once."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)], check=True)
    try:
        state = disk / "state"
        cfg = write_config(
            {"hook": {"type": "webhook", "url": hook.url("/hook")}},
            deadline=2,
            state_dir=str(state),
        )
        assert notify(cfg, "backup").returncode == 0
        fillers = []
        while True:  # fill page by page, then give exactly one page back
            path = disk / f"filler-{len(fillers)}"
            try:
                path.write_bytes(b"\0" * 4096)
            except OSError:
                path.unlink()
                break
            fillers.append(path)
        tries = []
        while not inbox(state):  # one page back at a time until the event fits in the inbox
            fillers.pop().unlink()
            held = HeldLock(state)
            try:
                tries.append(notify(cfg, "master"))
            finally:
                held.release()
            assert [p.name for p in (state / "inbox").iterdir() if p.name.startswith(".tmp")] == []
        print(f"queued after {len(tries)} pages given back; the earlier tries went directly")
        for t in tries[:-1]:  # no room: sent directly, loudly, and nothing left behind
            assert t.returncode == 1 and "No space left on device" in t.stderr, t.stderr
        assert tries[-1].returncode == 0, tries[-1].stderr
        began = time.monotonic()
        full = notify(cfg, "fault")
        took = time.monotonic() - began
        status = json.loads(run_bin("status", "--json", "-c", str(cfg), env=ENV).stdout)
        for path in fillers:
            path.unlink()
        flushed = run_bin("flush", "-c", str(cfg), env=ENV)
        left = inbox(state)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert full.returncode == 1 and took < 2 + 1, (took, full.stderr)
    assert "No space left on device" in full.stderr
    assert [q["state"] for q in status["queued"]] == ["master"]
    assert flushed.returncode == 0, flushed.stderr
    assert left == []
    events = _hook_events(hook)
    got = [(e["state"], e["seq"]) for e in events]
    assert got[0] == ("backup", 1) and got.count(("master", 2)) == 1
    assert len({e["id"] for e in events}) == len(events)  # none twice
    assert ("fault", 0) in got or "LOST" in full.stderr  # sent directly, unnumbered


@pytest.mark.root
def test_inbox_file_the_script_user_cannot_read(
    write_config: WriteConfig, hook: Recorder, nobody_bin: Path
) -> None:
    """A root-owned 0600 inbox file in nobody's state dir: nobody's notifies go on (never
    numbering it), status lists it as unreadable with the chown that fixes it; after the
    chown a flush numbers and sends it once."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    world = Path(tempfile.mkdtemp(prefix="ha-notify-inbox-"))
    try:
        world.chmod(0o755)
        state = world / "state"
        cfg = world / "config.toml"
        chan = {"hook": {"type": "webhook", "url": hook.url("/hook")}}
        shutil.copy(write_config(chan, state_dir=str(state), deadline=2), cfg)
        os.chown(cfg, nobody.pw_uid, nobody.pw_gid)
        state.mkdir(mode=0o700)
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
        as_nobody += ["--clear-groups", str(nobody_bin)]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*as_nobody, *args, "-c", str(cfg)], capture_output=True, text=True, env=ENV
            )

        assert run("backup").returncode == 0
        held = HeldLock(state)
        try:
            assert run("master").returncode == 0
        finally:
            held.release()
        [stranger] = inbox(state)
        os.chown(stranger, 0, 0)
        stranger.chmod(0o600)
        done = run("fault")
        assert done.returncode == 0, done.stderr
        assert sent(hook) == ["backup", "fault"]
        report = json.loads(run("status", "--json").stdout)
        [unreadable] = report["unreadable"]
        assert unreadable["file"] == str(stranger) and report["quarantined"] == []
        assert "owner uid 0: chown it to state_dir's owner" in unreadable["reason"]
        text = run("status").stdout
        assert f"{stranger}: cannot be read now (Permission denied)" in text
        os.chown(stranger, nobody.pw_uid, nobody.pw_gid)
        assert run("flush").returncode == 0
        assert inbox(state) == []
        assert sent(hook) == ["backup", "fault", "master"]
        assert run("status", "--json").returncode == 0
    finally:
        shutil.rmtree(world)
