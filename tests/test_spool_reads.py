"""Damaged vs transiently unreadable spool files: only bad content is quarantined; a read
that fails for a reason that may pass leaves the file in place, counted, for the next run."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from ha_notify import fsutil
from ha_notify.notify import spool as spool_module
from ha_notify.notify.spool import Spool
from tests.conftest import WriteConfig, mail_channel
from tests.smtp_server import SMTPServer


def spooled(cli, cfg: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    assert cli("master", "-c", cfg, "-i", "VI_1").code == 0  # the relay is down: spooled
    [path] = (tmp_path / "state" / "spool" / "pending").glob("*.json")
    return path


@pytest.mark.parametrize("code", [errno.EIO, errno.EMFILE, errno.ENOMEM, errno.EINTR, errno.EACCES])
def test_transient_read_error_leaves_the_file_in_place(
    code: int,
    write_config: WriteConfig,
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EIO, EMFILE, ENOMEM, EINTR, EACCES while reading: not quarantined, counted unreadable,
    and delivered by the next run once the error has passed."""
    server = SMTPServer()
    cfg = write_config({"mail": mail_channel(server.port)})
    path = spooled(cli, cfg, tmp_path)
    real = fsutil.read_text

    def failing(p: Path) -> str:
        if p == path:
            raise OSError(code, errno.errorcode[code])
        return real(p)

    with monkeypatch.context() as m:
        m.setattr(spool_module, "read_text", failing)
        report = json.loads(cli("status", "--json", "-c", cfg).out)
        spool = Spool(tmp_path / "state")
        assert spool.counts()["unreadable"] == 1
    assert path.exists() and report["quarantined"] == []
    [unreadable] = report["unreadable"]
    assert unreadable["file"] == str(path) and "left in place" in unreadable["reason"]
    server.start()
    try:
        assert cli("flush", "-c", cfg).code == 0
    finally:
        server.stop()
    assert [m.message["X-HA-Notify-State"] for m in server.messages] == ["MASTER"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("created", "NaN"),
        ("created", "Infinity"),
        ("created", "-1"),
        ("next_attempt", "NaN"),
        ("next_attempt", "-Infinity"),
        ("last_try", "-3"),
    ],
)
def test_bad_timestamps_are_quarantined(
    where: str,
    value: str,
    write_config: WriteConfig,
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A NaN, infinite or negative time in a spool file is invalid content: quarantined with
    its reason, never a crash, never sorted among the good ones."""
    server = SMTPServer()
    cfg = write_config({"mail": mail_channel(server.port)})
    path = spooled(cli, cfg, tmp_path)
    data = json.loads(path.read_text())
    marker = "__BAD__"
    if where == "created":
        data["created"] = marker
    else:
        data["channels"]["mail"][where] = marker
    path.write_text(json.dumps(data).replace(f'"{marker}"', value))
    assert cli("backup", "-c", cfg, "-i", "VI_2").code == 0
    report = json.loads(cli("status", "--json", "-c", cfg).out)
    [bad] = report["quarantined"]
    assert "damaged spool file" in bad["reason"] and "finite time" in bad["reason"]
    server.start()
    try:
        flushed = cli("flush", "-c", cfg)
    finally:
        server.stop()
    assert flushed.code == 0 and "internal error" not in flushed.err
    assert [m.message["X-HA-Notify-State"] for m in server.messages] == ["BACKUP"]


def test_event_renamed_into_place_counts_as_spooled_when_the_folder_fsync_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder fsync that fails after the rename leaves the event spooled, not an error: an
    error would make the notify send it directly, and the next run send the spooled copy."""
    import stat as stat_module

    from ha_notify.event import Event, Node

    real = os.fsync

    def failing_on_folders(fd: int) -> None:
        if stat_module.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    spool = Spool(tmp_path / "state")
    spool.ensure()
    monkeypatch.setattr(os, "fsync", failing_on_folders)
    event = Event(
        state="master", name="VI_1", cluster="c", node=Node("lb1", "lb1", (), None), seq=1
    )
    deliveries = spool.add(event, ["mail"])
    assert [d.channel for d in deliveries] == ["mail"]
    assert [p.name for p in spool.pending.glob("*.json")] == [f"{event.id}.json"]
    assert "folder not synced" in caplog.text
