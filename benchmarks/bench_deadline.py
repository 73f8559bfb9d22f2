"""The deadline is hard: N notifies at once against a relay that accepts and never answers.

Each process is timed from its fork to its exit (interpreter start-up included: the deadline
counts from process start). Target: the slowest within ``deadline`` + 1 s, every event
spooled. Also one run against a relay that hangs after DATA (no QUIT courtesy past the
deadline). The machine's load average is printed: other work on the cores counts too.

    .venv/bin/python benchmarks/bench_deadline.py [--runs 50] [--deadline 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.smtp_server import SilentServer, SMTPServer

BIN = Path(sys.executable).parent / "ha-notify"
ENV = {"HA_NOTIFY_SYSLOG": "off", "PATH": "/usr/bin:/bin"}


def config(folder: Path, port: int, deadline: float) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f"""[general]
state_dir = "{folder / "state"}"
deadline = {deadline}
flap_threshold = 100000

[channels.mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 60
from = "keepalived@lb1.example.com"
to = ["ops1@example.com"]
"""
    )
    path.chmod(0o600)
    return path


def at_once(port: int, runs: int, deadline: float) -> tuple[list[float], int, set[int]]:
    """Lifetimes of ``runs`` notifies started together; events left pending; exit codes."""
    with tempfile.TemporaryDirectory(prefix="ha-notify-deadline-") as tmp:
        cfg = config(Path(tmp), port, deadline)
        lives: list[float] = []
        codes: set[int] = set()

        def one(i: int) -> None:
            began = time.monotonic()
            args = [str(BIN), "master", "-i", f"VI_{i % 5}", "-c", str(cfg)]
            done = subprocess.run(args, env=ENV, capture_output=True, check=False)
            lives.append(time.monotonic() - began)
            codes.add(done.returncode)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pending = len(list((Path(tmp) / "state" / "spool" / "pending").glob("*.json")))
        return lives, pending, codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--deadline", type=float, default=5.0)
    opts = parser.parse_args()
    load = os.getloadavg()[0]
    silent = SilentServer().start()
    try:
        lives, pending, codes = at_once(silent.port, opts.runs, opts.deadline)
    finally:
        silent.stop()
    print(
        f"{opts.runs} at once, hung relay, deadline {opts.deadline:g}s (load {load:.1f}): "
        f"slowest {max(lives):.2f}s, median {statistics.median(lives):.2f}s, "
        f"limit {opts.deadline + 1:g}s; spooled {pending}/{opts.runs}, exit codes {sorted(codes)}"
    )
    hanging = SMTPServer().start()
    hanging.recorder.data_hang = True
    try:
        lives, pending, codes = at_once(hanging.port, 1, 2.0)
    finally:
        hanging.stop()
    print(f"relay hanging after DATA, deadline 2s: {lives[0]:.2f}s (limit 3s), spooled {pending}")


if __name__ == "__main__":
    main()
