"""Never lose an alert: damaged files, a wrong-shaped store, unreadable files, a full disk,
flapping, rate limits shared across processes, and secrets echoed by servers."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ha_notify.event import FLAPPING, TRANSITION
from ha_notify.notify.spool import Spool
from ha_notify.notify.store import SUPPRESSED, StateStore
from tests.conftest import WriteConfig, mail_channel, run_bin
from tests.http_recorder import Answer, Recorder, Request, server_fixture  # noqa: F401
from tests.smtp_server import SMTPServer


def pending_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "spool" / "pending"


def test_damaged_and_foreign_files_are_quarantined_and_counted(
    write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """Garbage and strangers in pending/ are set aside, listed with a reason, never blocking."""
    server = SMTPServer()
    cfg = write_config({"mail": mail_channel(server.port)})
    assert cli("master", "-c", cfg).code == 0  # server down: spooled
    (pending_dir(tmp_path) / "broken.json").write_text('{"event": {"state": ')
    (pending_dir(tmp_path) / "shape.json").write_text('{"event": {"state": 5}, "channels": 3}')
    (pending_dir(tmp_path) / "notes.txt").write_text("an operator's note")
    text = cli("status", "-c", cfg).out
    assert "quarantined files: 3" in text and "damaged spool file" in text
    assert "not a spool file" in text
    report = json.loads(cli("status", "--json", "-c", cfg).out)
    assert len(report["quarantined"]) == 3
    assert all(q["reason"] for q in report["quarantined"])
    assert Spool(tmp_path / "state").counts() == {
        "pending": {"mail": 1},
        "dead": {},
        "quarantined": 3,
        "unreadable": 0,
    }
    server.start()
    try:
        flushed = cli("flush", "-c", cfg)
    finally:
        server.stop()
    assert flushed.code == 0 and "sent 1" in flushed.out and "quarantined 3" in flushed.out
    assert "quarantined:" in flushed.err and len(server.messages) == 1


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2, 3]",
        '{"INSTANCE:VI_1": {"seq": "seven", "state": 5}}',
        '{"INSTANCE:VI_1": {"seq": 2, "history": [{"state": 1}]}}',
        '{"INSTANCE:VI_1": "MASTER"}',
        "{not json",
        '{"INSTANCE:VI_1": {"seq": 1, "state": "backup", "since": NaN}}',
        '{"INSTANCE:VI_1": {"seq": 1, "state": "backup", "since": -5}}',
        '{"INSTANCE:VI_1": {"seq": 1, "history": [{"state": "x", "seq": 1, "ts": Infinity}]}}',
    ],
)
def test_wrong_shaped_state_is_reset_loudly(
    content: str, smtp: SMTPServer, write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """Valid JSON of the wrong shape (or none): notify, flush and status still work."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    assert cli("backup", "-c", cfg, "-i", "VI_1").code == 0  # seq 1, delivered
    (tmp_path / "state" / "state.json").write_text(content)
    result = cli("master", "-c", cfg, "-i", "VI_1")
    assert result.code == 0, result.err
    assert "internal error" not in result.err
    assert cli("flush", "-c", cfg).code == 0
    report = json.loads(cli("status", "--json", "-c", cfg).out)
    assert report["instances"]["INSTANCE:VI_1"]["seq"] == 2  # continued from the spool
    assert [m.message["X-HA-Notify-State"] for m in smtp.messages] == ["BACKUP", "MASTER"]
    assert "was BACKUP" in smtp.messages[1].message["Subject"]


def test_damaged_state_entry_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged entry is reset with a loud line naming it; other instances keep theirs."""
    state = tmp_path / "state"
    state.mkdir()
    good = {"state": "master", "seq": 4, "since": 1.0}
    (state / "state.json").write_text(json.dumps({"A": {"seq": []}, "B": good}))
    assert StateStore(state).snapshot() == {"B": good}
    assert "entry A is damaged" in caplog.text


@pytest.mark.root
def test_unreadable_pending_file_blocks_nothing(
    smtp: SMTPServer, write_config: WriteConfig, nobody_bin: Path
) -> None:
    """A root-owned file in a script user's pending/ is quarantined; delivery goes on."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    world = Path(tempfile.mkdtemp(prefix="ha-notify-unreadable-"))
    try:
        world.chmod(0o755)
        state = world / "state"
        cfg = world / "config.toml"
        shutil.copy(write_config({"mail": mail_channel(smtp.port)}, state_dir=str(state)), cfg)
        os.chown(cfg, nobody.pw_uid, nobody.pw_gid)
        state.mkdir(mode=0o700)
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
        as_nobody += ["--clear-groups", str(nobody_bin)]
        env = {"HA_NOTIFY_SYSLOG": "off", "PATH": "/usr/bin:/bin"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*as_nobody, *args, "-c", str(cfg)], capture_output=True, text=True, env=env
            )

        assert run("backup").returncode == 0
        stranger = state / "spool" / "pending" / "0123456789abcdef.json"
        stranger.write_text("{}")  # root-owned, mode 0600 under umask 077
        stranger.chmod(0o600)
        done = run("master")
        assert done.returncode == 0, done.stderr
        assert [m.message["X-HA-Notify-State"] for m in smtp.messages] == ["BACKUP", "MASTER"]
        report = json.loads(run("status", "--json").stdout)
        # Unreadable is not damaged: left in place (an operator's chown fixes it), counted.
        assert report["quarantined"] == [] and stranger.exists()
        [unreadable] = report["unreadable"]
        assert unreadable["file"] == str(stranger)
        assert "cannot be read now (Permission denied)" in unreadable["reason"]
    finally:
        shutil.rmtree(world)


@pytest.mark.root
def test_spool_fits_but_state_does_not(
    smtp: SMTPServer, write_config: WriteConfig, tmp_path: Path, cli
) -> None:
    """Room for the event file but not state.json: sent once, no direct-send duplicate."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)], check=True)
    try:
        (disk / "state").mkdir(mode=0o700)
        cfg = write_config({"mail": mail_channel(smtp.port)}, state_dir=str(disk / "state"))
        assert cli("backup", "-c", cfg).code == 0  # folders, state.json, caches exist now
        fillers = []
        while True:  # fill page by page, then give exactly one page back
            path = disk / f"filler-{len(fillers)}"
            try:
                path.write_bytes(b"\0" * 4096)
            except OSError:
                path.unlink()
                break
            fillers.append(path)
        fillers[-1].unlink()
        result = cli("master", "-c", cfg)
        for path in fillers[:-1]:
            path.unlink()
        after = cli("fault", "-c", cfg)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert result.code == 0, result.err
    assert (
        "state.json could not be written" in result.err and "Nothing was spooled" not in result.err
    )
    assert after.code == 0, after.err
    got = [(m.message["X-HA-Notify-State"], m.message["Message-ID"]) for m in smtp.messages]
    assert [s for s, _ in got] == ["BACKUP", "MASTER", "FAULT"]
    assert len({i for _, i in got}) == 3
    assert "was MASTER" in smtp.messages[2].message["Subject"]  # previous recovered


def test_flapping_settles_before_recording(tmp_path: Path) -> None:
    """After a quiet window the next change is a plain transition, sent at once."""
    store = StateStore(tmp_path, flap_threshold=3, flap_window=60)
    settled = []
    subjects = []
    for i, state in enumerate(["master", "backup", "master", "backup", "master"]):
        rec, _ = store.record("K", state, lambda r: None, now=1000.0 + i)
        subjects.append(rec.subject)
    assert subjects == [TRANSITION] * 3 + [FLAPPING, SUPPRESSED]
    rec, _ = store.record("K", "fault", lambda r: None, now=2000.0, on_settled=settled.append)
    assert rec.subject == TRANSITION and rec.previous == "master"
    assert len(settled) == 1 and settled[0].state == "master"
    assert rec.seq == settled[0].seq + 1


def test_same_state_repeats_are_not_flapping(tmp_path: Path) -> None:
    """keepalived repeating BACKUP ten times is not a flapping pair."""
    store = StateStore(tmp_path, flap_threshold=3, flap_window=60)
    subjects = [
        store.record("K", "backup", lambda r: None, now=1.0 + i)[0].subject for i in range(10)
    ]
    assert subjects == [TRANSITION] * 10


def test_dry_run_says_when_folded(smtp: SMTPServer, write_config: WriteConfig, cli) -> None:
    """render and --dry-run say that an event would be folded into the flapping summary."""
    cfg = write_config({"mail": mail_channel(smtp.port)}, flap_threshold=2, flap_window=600)
    for state in ("master", "backup", "master"):
        assert cli(state, "-c", cfg).code == 0
    assert "folded into the flapping summary" in cli("backup", "--dry-run", "-c", cfg).out
    assert "folded into the flapping summary" in cli("render", "fault", "-c", cfg).out


def robot(limit: int) -> tuple[list[float], object]:
    """A DingTalk robot that takes ``limit`` messages, then answers 130101 (send too fast)."""
    seen: list[float] = []

    def answer(request: Request) -> Answer:
        seen.append(time.monotonic())
        if len(seen) > limit:
            return Answer(200, {"errcode": 130101, "errmsg": "send too fast"})
        return Answer(200, {"errcode": 0, "errmsg": "ok"})

    return seen, answer


def test_rate_limited_robot_is_left_alone_by_every_run(
    server: Recorder, write_config: WriteConfig, cli
) -> None:
    """30 events, a robot that refuses after 20: exactly one refused request, then silence."""
    seen, answer = robot(20)
    server.respond("/robot/send", answer)  # type: ignore[arg-type]
    url = server.url("/robot/send") + "?access_token=0123456789abcdef"
    cfg = write_config({"ding": {"type": "dingtalk", "url": url}}, flap_threshold=1000)
    for i in range(30):
        assert cli(("master", "backup")[i % 2], "-c", cfg).code == 0
    proc = run_bin("backup", "-c", str(cfg))  # another process knows about the wait too
    assert proc.returncode == 0 and "asked to wait" in proc.stderr
    assert len(seen) == 21
    report = json.loads(cli("status", "--json", "-c", cfg).out)
    assert report["pending"]["ding"]["pending"] == 11
    assert report["pending"]["ding"]["attempts"] == 1  # the oldest was tried once


def test_other_groups_retry_only_when_due(server: Recorder, write_config: WriteConfig, cli) -> None:
    """A notify for VI_2 does not hammer VI_1's failing delivery before its backoff."""
    server.answer("/hook", Answer(503, "down"), Answer(200, "ok"))
    cfg = write_config({"hook": {"type": "webhook", "url": server.url("/hook")}})
    assert cli("master", "-c", cfg, "-i", "VI_1").code == 0  # 503: pending
    assert cli("master", "-c", cfg, "-i", "VI_2").code == 0
    names = [r.json()["name"] for r in server.on("/hook")]
    assert names == ["VI_1", "VI_2"]


def test_echoed_secret_is_redacted_everywhere(
    server: Recorder, write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """A 404 body echoing the webhook path never reaches stderr, spool or status --json."""
    path = "/services/T000/B000/XoXsEcReT0123456789"
    server.answer(path, Answer(404, f"Cannot POST {path}"))
    cfg = write_config({"slack": {"type": "slack", "url": server.url(path)}})
    result = cli("master", "-c", cfg)
    assert result.code == 1 and "Cannot POST [redacted]" in result.err
    report = cli("status", "--json", "-c", cfg).out
    files = [p.read_text() for p in (tmp_path / "state").rglob("*.json")]
    for where in [result.err, result.out, report, *files]:
        assert "XoXsEcReT0123456789" not in where and "T000/B000" not in where


def test_spool_files_of_the_previous_version_are_kept(
    write_config: WriteConfig, cli, tmp_path: Path
) -> None:
    """One-file-per-channel spool files left by an upgrade are delivered or counted dead."""
    server = SMTPServer()
    cfg = write_config({"mail": mail_channel(server.port)})
    assert cli("backup", "-c", cfg).code == 0  # spooled (server down)
    [new] = list(pending_dir(tmp_path).glob("*.json"))
    data = json.loads(new.read_text())
    old = {"channel": "mail", "event": data["event"], "created": data["created"], "attempts": 2}
    new.unlink()
    (pending_dir(tmp_path) / "a-1.json").write_text(json.dumps(old))
    dead = tmp_path / "state" / "spool" / "dead"
    other = {**old, "event": {**data["event"], "id": "f" * 32, "seq": 0}}
    (dead / "b-1.json").write_text(json.dumps({**other, "last_error": "550 gone"}))
    assert Spool(tmp_path / "state").counts() == {
        "pending": {"mail": 1},
        "dead": {"mail": 1},
        "quarantined": 0,
        "unreadable": 0,
    }
    server.start()
    try:
        assert cli("flush", "-c", cfg).code == 0
    finally:
        server.stop()
    assert [m.message["X-HA-Notify-State"] for m in server.messages] == ["BACKUP"]
