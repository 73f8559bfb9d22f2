"""Attacks on state_dir with foreign files: a FIFO where a JSON file belongs, and JSON nested
too deep for the parser. Each must be set aside (or ignored) loudly, never hang a notify or
end it in "internal error", and the next alert must still be delivered."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import run_bin
from tests.http_recorder import Recorder


@pytest.fixture
def hook() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)


DEEP = "[" * 100_000
DAMAGE: dict[str, Callable[[Path], None]] = {
    "fifo as state.json": lambda s: fifo(s / "state.json"),
    "fifo as the last delivered event": lambda s: fifo(
        s / "spool" / "done" / f"{sha('INSTANCE:VI_1')}.json"
    ),
    "fifo as a channel's wait file": lambda s: fifo(s / "spool" / "waits" / f"{sha('hook')}.json"),
    "deeply nested state.json": lambda s: (s / "state.json").write_text(DEEP),
    "deeply nested pending file": lambda s: (s / "spool" / "pending" / "deep.json").write_text(
        DEEP
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_foreign_file_neither_hangs_nor_crashes(
    damage: str, tmp_path: Path, hook: Recorder
) -> None:
    """Never lose an alert: a foreign file in state_dir blocks nothing and crashes nothing."""
    state = tmp_path / "state"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[general]\ncluster = "atk"\nstate_dir = "{state}"\n\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url("/hook")}"\n'
    )
    cfg.chmod(0o600)
    assert run_bin("master", "-i", "VI_1", "-c", str(cfg)).returncode == 0
    DAMAGE[damage](state)
    done = run_bin("backup", "-i", "VI_1", "-c", str(cfg))  # the timeout guards a hang only
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    sent = [r.json() for r in hook.on("/hook")]
    assert [(e["state"], e["seq"]) for e in sent] == [("master", 1), ("backup", 2)]
    status = run_bin("status", "-c", str(cfg))
    assert status.returncode == 0 and "internal error" not in status.stderr
