"""Kill storm: many notifies killed at random moments, then one flush, then count.

Each run is ``ha-notify master|backup|fault -i VI_n`` against two channels (email to a real
aiosmtpd server, a webhook to a real HTTP recorder), several at once; a random one in five
runs in peace, the others get SIGKILL or SIGTERM after a random delay. Then ``flush``, and
the counts the promise is about:

- lost: an event (an instance's sequence number up to the last one recorded) that one of the
  channels never received;
- reused: a sequence number carried by two different events;
- wrong previous: an event whose "previous" is not the state of the event before it;
- different-id duplicates: the same delivery received twice under different ids;
- same-id duplicates (the one documented duplicate: killed after the server accepted).

    .venv/bin/python benchmarks/storm.py [--runs 200] [--parallel 8] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.http_recorder import Recorder
from tests.smtp_server import SMTPServer

BIN = Path(sys.executable).parent / "ha-notify"
STATES = ("master", "backup", "fault")
ENV = {"HA_NOTIFY_SYSLOG": "off", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Counts:
    runs: int = 0
    sigkill: int = 0
    sigterm: int = 0
    events: int = 0
    lost: int = 0
    reused: int = 0
    wrong_previous: int = 0
    different_id_duplicates: int = 0
    same_id_duplicates: int = 0
    still_pending: int = 0

    def line(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in vars(self).items())


def config(folder: Path, smtp_port: int, hook_url: str) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f"""[general]
cluster = "storm"
state_dir = "{folder / "state"}"
deadline = 5
flap_threshold = 100000

[channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "keepalived@lb1.example.com"
to = ["ops1@example.com", "ops2@example.com"]

[channels.hook]
type = "webhook"
url = "{hook_url}"
"""
    )
    path.chmod(0o600)
    return path


def _mail_events(smtp: SMTPServer) -> list[dict[str, Any]]:
    found = []
    for r in smtp.messages:
        body = r.message.get_body(("plain",)).get_content()
        seq = re.search(r"Sequence:\s+(\d+)", body)
        name = re.search(r"Instance:\s+(\S+)", body)
        # "BACKUP -> MASTER", or "MASTER (repeated, no change)": the previous state is MASTER
        state = re.search(r"State:\s+(?:(\w+) -> )?(\w+)( \(repeated)?", body)
        assert seq and name and state
        for rcpt in r.rcpt_tos:
            found.append(
                {
                    "id": str(r.message["X-HA-Notify-Event"]),
                    "name": name.group(1),
                    "seq": int(seq.group(1)),
                    "state": state.group(2).lower(),
                    "previous": (state.group(1) or "").lower()
                    or (state.group(2).lower() if state.group(3) else None),
                    "to": rcpt,
                }
            )
    return found


def _hook_events(hook: Recorder) -> list[dict[str, Any]]:
    found = []
    for req in hook.on("/hook"):
        data = req.json()
        found.append(
            {
                "id": data["event_id"],
                "name": data["name"],
                "seq": data["seq"],
                "state": data["state"],
                "previous": data["previous"],
                "to": "hook",
            }
        )
    return found


def count(folder: Path, smtp: SMTPServer, hook: Recorder, counts: Counts) -> Counts:
    """Compare what each channel (and each mail recipient) received with the store."""
    stored = json.loads((folder / "state" / "state.json").read_text())
    received = _mail_events(smtp) + _hook_events(hook)
    sinks = ("ops1@example.com", "ops2@example.com", "hook")
    for key, entry in stored.items():
        name = key.partition(":")[2]
        mine = [e for e in received if e["name"] == name]
        top = max([int(entry["seq"])] + [e["seq"] for e in mine])
        counts.events += top
        by_seq: dict[int, list[dict[str, Any]]] = {}
        for e in mine:
            by_seq.setdefault(e["seq"], []).append(e)
        for seq in range(1, top + 1):
            got = by_seq.get(seq, [])
            counts.lost += sum(1 for s in sinks if not any(e["to"] == s for e in got))
            ids = {e["id"] for e in got}
            counts.reused += len(ids) - 1 if ids else 0
            for s in sinks:
                mine_s = [e["id"] for e in got if e["to"] == s]
                counts.same_id_duplicates += len(mine_s) - len(set(mine_s))
                counts.different_id_duplicates += max(0, len(set(mine_s)) - 1)
            before = by_seq.get(seq - 1, [])
            if got and before and got[0]["previous"] != before[0]["state"]:
                counts.wrong_previous += 1
    pending = folder / "state" / "spool" / "pending"
    counts.still_pending = len(list(pending.glob("*.json")))
    return counts


def storm(folder: Path, runs: int, parallel: int, seed: int) -> Counts:
    """Run the storm in ``folder`` with its own servers; return the counts."""
    rng = random.Random(seed)
    smtp = SMTPServer().start()
    hook = Recorder().start()
    counts = Counts(runs=runs)
    try:
        cfg = config(folder, smtp.port, hook.url("/hook"))
        started = 0
        while started < runs:
            batch = []
            for _ in range(min(parallel, runs - started)):
                args = [str(BIN), rng.choice(STATES), "-i", f"VI_{rng.randrange(3)}"]
                batch.append(
                    subprocess.Popen([*args, "-c", str(cfg)], env=ENV, stderr=subprocess.DEVNULL)
                )
                started += 1
            for proc in batch:
                fate = rng.random()
                if fate < 0.8:
                    time.sleep(rng.uniform(0.0, 0.4))
                    sig = signal.SIGKILL if fate < 0.4 else signal.SIGTERM
                    if proc.poll() is None:
                        proc.send_signal(sig)
                        if sig == signal.SIGKILL:
                            counts.sigkill += 1
                        else:
                            counts.sigterm += 1
            for proc in batch:
                proc.wait()
        for _ in range(3):  # a flush retries what is left, whatever its backoff
            subprocess.run(
                [str(BIN), "flush", "-c", str(cfg)], env=ENV, capture_output=True, check=False
            )
        return count(folder, smtp, hook, counts)
    finally:
        smtp.stop()
        hook.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ha-notify-storm-") as tmp:
        began = time.monotonic()
        counts = storm(Path(tmp), opts.runs, opts.parallel, opts.seed)
        took = time.monotonic() - began
    print(f"storm (seed {opts.seed}, {took:.0f}s): {counts.line()}")
    bad = counts.lost + counts.reused + counts.wrong_previous + counts.different_id_duplicates
    sys.exit(1 if bad or counts.still_pending else 0)


if __name__ == "__main__":
    os.umask(0o077)
    main()
