"""Reading haproxy.cfg like haproxy does, and reading files within the check's deadline."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ha_notify.checks import CheckResult, bounded, haproxy_cfg
from ha_notify.checks.state import changed, line

ENV = {"SOCK": "/run/s.sock", "DIR": "/run/haproxy"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stats socket /a.sock mode 660", ["stats", "socket", "/a.sock", "mode", "660"]),
        ('stats socket "${SOCK}" level user', ["stats", "socket", "/run/s.sock", "level", "user"]),
        ('stats socket "$SOCK"', ["stats", "socket", "/run/s.sock"]),
        ('stats socket "$DIR/check.sock"', ["stats", "socket", "/run/haproxy/check.sock"]),
        ('stats socket "${NOPE-/tmp/d.sock}"', ["stats", "socket", "/tmp/d.sock"]),
        ("stats socket '${SOCK}'", ["stats", "socket", "${SOCK}"]),
        ("stats socket ${SOCK}", ["stats", "socket", "${SOCK}"]),
        ('stats socket "/a b.sock" # comment', ["stats", "socket", "/a b.sock"]),
        (r"stats socket /a\ b.sock", ["stats", "socket", "/a b.sock"]),
        ('stats socket "/x#y.sock"', ["stats", "socket", "/x#y.sock"]),
        ("  # stats socket /old.sock", []),
    ],
)
def test_words_like_haproxy(text: str, expected: list[str]) -> None:
    """Quotes, escapes, comments and $VAR expansion (in double quotes only) as haproxy does."""
    assert haproxy_cfg.words(text, ENV) == expected


def test_unset_variable_is_named() -> None:
    """A variable with no value and no default raises Unset naming it."""
    with pytest.raises(haproxy_cfg.Unset) as caught:
        haproxy_cfg.words('stats socket "${MISSING}"', ENV)
    assert caught.value.name == "MISSING"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "global\n  stats socket /run/haproxy/admin.sock mode 660 level admin\n",
            "/run/haproxy/admin.sock",
        ),
        (
            "global\n  # stats socket /old.sock\n  stats socket ipv4@127.0.0.1:9999\n",
            "ipv4@127.0.0.1:9999",
        ),
        ('global\n  stats socket "/q.sock" level user\n', "/q.sock"),
        ('global\n  stats socket "${SOCK}" level user\n', "/run/s.sock"),
        (
            "global\n  stats timeout 30s\n  stats socket /a.sock\n  stats socket /b.sock\n",
            "/a.sock",
        ),
    ],
)
def test_stats_socket(tmp_path: Path, text: str, expected: str) -> None:
    """The first `stats socket` line of haproxy.cfg names the socket."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    assert haproxy_cfg.stats_socket([str(cfg)], time.monotonic() + 5, ENV) == expected


def test_stats_socket_directory(tmp_path: Path) -> None:
    """A configuration directory (haproxy -f DIR) is read in file-name order."""
    (tmp_path / "10-global.cfg").write_text("global\n  daemon\n")
    (tmp_path / "20-stats.cfg").write_text("global\n  stats socket /d.sock\n")
    assert haproxy_cfg.stats_socket([str(tmp_path)], time.monotonic() + 5, ENV) == "/d.sock"


def test_stats_socket_missing(tmp_path: Path) -> None:
    """A haproxy.cfg without a stats socket raises LookupError."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("global\n  daemon\n")
    with pytest.raises(LookupError):
        haproxy_cfg.stats_socket([str(cfg)], time.monotonic() + 5, ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("global\n    master-worker\n", True),
        ("global\n    master-worker no-exit-on-failure\n", True),
        ("global\n    daemon\n", False),
        ("global\n    # master-worker\n", False),
        ("global\ndefaults\n    master-worker\n", False),
    ],
)
def test_master_worker_keyword(tmp_path: Path, text: str, expected: bool) -> None:
    """`master-worker` counts in the global section only, not in a comment."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    assert haproxy_cfg.master_worker([str(cfg)], time.monotonic() + 5) is expected


def test_config_paths_from_argv() -> None:
    """Every -f of a haproxy command line, in both spellings."""
    argv = ["haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg", "-f/etc/haproxy/conf.d", "-p", "x"]
    assert haproxy_cfg.config_paths(argv) == ["/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d"]


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO is not opened for a blocking read: NotRegularFile, naming what it is."""
    fifo = tmp_path / "haproxy.pid"
    os.mkfifo(fifo)
    with pytest.raises(bounded.NotRegularFile, match="is a FIFO, not a regular file"):
        bounded.read_file(str(fifo), 4096, time.monotonic() + 60)
    with pytest.raises(bounded.NotRegularFile, match="is a directory"):
        bounded.read_regular(str(tmp_path), 4096)


def test_blocked_read_gives_up_at_the_deadline(tmp_path: Path) -> None:
    """A read blocked in the kernel (here: open of a FIFO without O_NONBLOCK) times out;
    while it stays blocked, another read of the same key fails at once, with no new thread."""
    fifo = tmp_path / "hung"
    os.mkfifo(fifo)

    def blocking_open() -> bytes:
        with open(fifo, "rb") as handle:  # waits for a writer, like a hung NFS read
            return handle.read()

    start = time.monotonic()
    with pytest.raises(TimeoutError, match="took longer than --timeout"):
        bounded.call(str(fifo), blocking_open, start + 0.3)
    assert 0.3 <= time.monotonic() - start < 5
    threads = threading.active_count()
    with pytest.raises(TimeoutError, match="still blocked"):
        bounded.call(str(fifo), blocking_open, time.monotonic() + 5)
    assert threading.active_count() == threads
    with open(fifo, "wb") as writer:  # release the blocked thread
        writer.write(b"x")
    deadline = time.monotonic() + 30
    while str(fifo) in bounded._stuck and time.monotonic() < deadline:
        time.sleep(0.01)  # the helper thread clears its own entry; no event to await here
    assert str(fifo) not in bounded._stuck
    assert bounded.call("other", lambda: b"ok", time.monotonic() + 5) == b"ok"


def test_change_detection_for_any_length(tmp_path: Path) -> None:
    """Reasons of 20 KB are compared by digest: the same one twice is no change."""
    reason = "; ".join(f"backend b{i} has 0 of 1 servers UP" for i in range(600))
    assert len(reason) > 20000
    path = str(tmp_path / "check.state")
    assert changed(path, CheckResult(False, reason)) is True
    assert changed(path, CheckResult(False, reason)) is False
    assert changed(path, CheckResult(False, reason + "!")) is True
    assert os.path.getsize(path) < 64
    assert changed(path, CheckResult(True, "pid 1", ("backend x down",))) is True
    assert changed(path, CheckResult(True, "pid 2", ("backend x down",))) is False
    assert changed(path, CheckResult(True, "pid 2")) is True


def test_syslog_line_is_bounded() -> None:
    """A syslog line never exceeds MAX_LINE characters (plus the cut notice)."""
    text = line(["haproxy"], CheckResult(False, "x" * 50000))
    assert len(text) < 2100
    assert text.endswith("more characters)")
