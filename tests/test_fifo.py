"""`ha-notify fifo`: keepalived's notify FIFO read in order, malformed lines skipped, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ha_notify.errors import UsageError
from ha_notify.event import FifoLine, parse_fifo_line
from tests.conftest import BIN, WriteConfig, mail_channel
from tests.smtp_server import SMTPServer
from tests.test_durability import wait_for

LINES = [
    ('INSTANCE "VI_1" MASTER 100', FifoLine("INSTANCE", "VI_1", "master", 100)),
    ("INSTANCE VI_1 BACKUP 90", FifoLine("INSTANCE", "VI_1", "backup", 90)),
    ('GROUP "G1" FAULT 0', FifoLine("GROUP", "G1", "fault", 0)),
    ('INSTANCE "VI_1" STOP', FifoLine("INSTANCE", "VI_1", "stop", None)),
    ('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100', None),
    ('INSTANCE "VI_1" MASTER_PRIORITY 90', None),
    ('INSTANCE "VI_1" BACKUP_PRIORITY 80', None),
    ("VS [192.0.2.1]:tcp:80 UP", None),
    ("RS [192.0.2.2]:tcp:80 [192.0.2.1]:tcp:80 DOWN", None),
    ("", None),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_fifo_line_forms(line: str, expected: FifoLine | None) -> None:
    """Every documented FIFO line form parses; informational ones are skipped."""
    assert parse_fifo_line(line) == expected


@pytest.mark.parametrize(
    "line", ["garbage", 'INSTANCE "VI_1" falut 100', "INSTANCE", 'INSTANCE "VI_1" MASTER 100 extra']
)
def test_malformed_fifo_lines(line: str) -> None:
    """Malformed lines raise a UsageError naming the line (the reader logs and skips it)."""
    with pytest.raises(UsageError):
        parse_fifo_line(line)


def start_reader(fifo: Path, cfg: Path) -> subprocess.Popen[str]:
    """Start a reader; its stderr goes to a file next to the FIFO (a pipe could fill up)."""
    env = {**os.environ, "HA_NOTIFY_SYSLOG": "off", "HA_NOTIFY_LOG_STDERR": "1"}
    with open(f"{fifo}.{os.urandom(4).hex()}.log", "w") as log:  # the child keeps its copy
        return subprocess.Popen(
            [str(BIN), "fifo", str(fifo), "-c", str(cfg)], env=env, stderr=log, text=True
        )


def reader_log(fifo: Path) -> str:
    return "".join(p.read_text() for p in fifo.parent.glob(f"{fifo.name}.*.log"))


def state(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    path = tmp_path / "state" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(1000):
    inst = i % 10
    state = ("MASTER", "BACKUP", "FAULT")[(i // 10) % 3]
    os.write(fd, f'INSTANCE "VI_{inst}" {state} {i % 256}\\n'.encode())
    if i == 500:
        os.write(fd, b"this line is garbage\\n")
os.close(fd)
"""


def test_thousand_lines_in_order(tmp_path: Path, write_config: WriteConfig) -> None:
    """1,000 lines from another process are recorded in order; garbage is logged and skipped."""
    cfg = write_config(flap_threshold=100000)
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    reader = start_reader(fifo, cfg)
    try:
        subprocess.run([sys.executable, "-c", WRITER, str(fifo)], check=True, timeout=120)
        wait_for(
            lambda: all(
                state(tmp_path).get(f"INSTANCE:VI_{i}", {}).get("seq") == 100 for i in range(10)
            ),
            "all 1,000 lines recorded",
        )
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.communicate(timeout=60)
    assert reader.returncode == 0
    err = reader_log(fifo)
    assert "malformed notify FIFO line: 'this line is garbage'; skipped" in err
    for i in range(10):
        history = state(tmp_path)[f"INSTANCE:VI_{i}"]["history"]
        written = [("master", "backup", "fault")[(n // 10) % 3] for n in range(i, 1000, 10)]
        assert [row["state"] for row in history] == written
        assert [row["seq"] for row in history] == list(range(1, 101))


def test_fifo_delivers_mail_in_order(
    smtp: SMTPServer, tmp_path: Path, write_config: WriteConfig
) -> None:
    """FIFO events become mails in keepalived's order; writers may come and go."""
    cfg = write_config({"mail": mail_channel(smtp.port)}, flap_threshold=100)
    fifo = tmp_path / "notify.fifo"
    reader = start_reader(fifo, cfg)  # the reader creates the FIFO when it is missing
    try:
        wait_for(fifo.exists, "the FIFO")
        for state_name in ("BACKUP", "MASTER", "FAULT", "BACKUP"):
            with open(fifo, "w") as writer:  # a new writer each time: close and reopen
                writer.write(f'INSTANCE "VI_1" {state_name} 100\n')
        wait_for(lambda: len(smtp.messages) == 4, "four mails")
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.communicate(timeout=60)
    got = [m.message["X-HA-Notify-State"] for m in smtp.messages]
    assert got == ["BACKUP", "MASTER", "FAULT", "BACKUP"]


def test_lines_after_sigterm_are_still_read(tmp_path: Path, write_config: WriteConfig) -> None:
    """keepalived signals the FIFO script before writing STOP: those lines are still recorded."""
    cfg = write_config()
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    reader = start_reader(fifo, cfg)
    try:
        with open(fifo, "w") as writer:
            writer.write('INSTANCE "VI_1" MASTER 100\n')
        wait_for(lambda: state(tmp_path).get("INSTANCE:VI_1", {}).get("seq") == 1, "MASTER")
        reader.send_signal(signal.SIGTERM)
        with open(fifo, "w") as writer:
            writer.write('INSTANCE "VI_1" STOP 100\n')
        assert reader.wait(60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.communicate()
    assert state(tmp_path)["INSTANCE:VI_1"]["state"] == "stop"


def test_new_reader_waits_for_old_one(tmp_path: Path, write_config: WriteConfig) -> None:
    """On reload a second reader waits for the first (a lock) instead of sharing the FIFO."""
    cfg = write_config()
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    old = start_reader(fifo, cfg)
    with open(fifo, "w") as writer:
        writer.write('INSTANCE "VI_1" BACKUP 90\n')
    wait_for(lambda: state(tmp_path).get("INSTANCE:VI_1", {}).get("seq") == 1, "old reader")
    new = start_reader(fifo, cfg)
    try:
        old.send_signal(signal.SIGTERM)
        assert old.wait(60) == 0
        with open(fifo, "w") as writer:
            writer.write('INSTANCE "VI_1" MASTER 100\n')
        wait_for(lambda: state(tmp_path)["INSTANCE:VI_1"]["seq"] == 2, "new reader")
        assert new.poll() is None
    finally:
        for proc in (old, new):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)


def test_sigterm_during_delivery_stops_the_reader(
    silent_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    write_config: WriteConfig,
) -> None:
    """A SIGTERM while a delivery hangs cancels it, keeps it spooled, and ends the reader."""
    cfg = write_config({"mail": mail_channel(silent_server.port, timeout=60)}, deadline=60)
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    reader = start_reader(fifo, cfg)
    try:
        with open(fifo, "w") as writer:
            writer.write('INSTANCE "VI_1" MASTER 100\n')
        wait_for(lambda: silent_server.conns, "the reader connecting to the hung server")
        reader.send_signal(signal.SIGTERM)
        assert reader.wait(60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.communicate()
    pending = list((tmp_path / "state" / "spool" / "pending").glob("*.json"))
    assert len(pending) == 1


def test_tail_of_an_overlong_line_is_not_an_event() -> None:
    """A line over 4 KiB is skipped whole: its tail never parses as a line of its own."""
    import queue
    import threading

    from ha_notify.notify.fifo import _reader

    read_fd, write_fd = os.pipe()
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(read_fd, lines), daemon=True).start()
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(b"A" * 70000 + b' INSTANCE "VI_9" FAULT 0\n')
        writer.write(b'INSTANCE "VI_1" MASTER 100\n')
    assert lines.get(timeout=30) == 'INSTANCE "VI_1" MASTER 100'
    assert lines.empty()


def test_every_line_read_is_spooled_when_the_grace_ends(
    silent_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    write_config: WriteConfig,
) -> None:
    """A hung relay eats the whole grace: lines read meanwhile are still spooled before exit."""
    cfg = write_config({"mail": mail_channel(silent_server.port, timeout=60)}, deadline=60)
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    reader = start_reader(fifo, cfg)
    states = ["MASTER", "BACKUP", "FAULT", "BACKUP", "STOP"]

    def seq() -> int:
        return int(state(tmp_path).get("INSTANCE:VI_1", {}).get("seq", 0))

    try:
        with open(fifo, "w") as writer:
            writer.write(f'INSTANCE "VI_1" {states[0]} 100\n')
        wait_for(lambda: silent_server.conns, "the reader connecting to the hung relay")
        reader.send_signal(signal.SIGTERM)
        with open(fifo, "w") as writer:
            writer.write("".join(f'INSTANCE "VI_1" {s} 100\n' for s in states[1:3]))
        wait_for(lambda: seq() == 3, "lines written after SIGTERM recorded")
        with open(fifo, "w") as writer:  # read while the grace's delivery hangs
            writer.write("".join(f'INSTANCE "VI_1" {s} 100\n' for s in states[3:]))
        assert reader.wait(60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.communicate()
    assert seq() == 5 and state(tmp_path)["INSTANCE:VI_1"]["state"] == "stop"
    files = list((tmp_path / "state" / "spool" / "pending").glob("*.json"))
    spooled = sorted(json.loads(p.read_text())["event"]["seq"] for p in files)
    assert spooled == [1, 2, 3, 4, 5]
