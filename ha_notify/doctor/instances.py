"""What keepalived last told this node's ha-notify: a node in FAULT cannot become MASTER.

Everything else doctor checks can be fine while keepalived holds the node in FAULT for a
reason only it sees (a tracked file or process, an interface down, a peer's config): the
notify line records each state, so doctor reads it back, and says when keepalived has been
running for a while without ever reaching the notify script.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Optional

from ha_notify.config import Config
from ha_notify.doctor import Finding, fail, ok, warn
from ha_notify.fsutil import read_text
from ha_notify.keepalived_conf import KeepalivedConf, blocks
from ha_notify.notify.store import StateStore

CHECK = "vrrp state"
KINDS = {"vrrp_instance": "INSTANCE", "vrrp_sync_group": "GROUP"}  # keepalived's notify TYPE
GRACE = 30.0  # seconds keepalived may run before its first notify must have arrived
WHY = "keepalived's log says why (journalctl -u keepalived | grep -i fault)"


def findings(config: Optional[Config], conf: Optional[KeepalivedConf]) -> list[Finding]:
    """One finding per VRRP instance of keepalived.conf that ha-notify has a state for."""
    if config is None:
        return []
    g = config.general
    snapshot = StateStore(g.state_dir, g.flap_threshold, g.flap_window).snapshot()
    if conf is not None:  # an instance renamed or removed since keeps its last state: skip it
        names = {f"{KINDS[b.kind]}:{b.name}" for b in blocks(conf) if b.kind in KINDS}
        snapshot = {k: v for k, v in snapshot.items() if k in names}
    if not snapshot:
        damage = _damage(g.state_dir / "state.json")
        if damage:
            return [warn(CHECK, f"{g.state_dir / 'state.json'} is {damage}: the last states "
                         "are unknown", "keepalived's next notify writes a new one; until then "
                         "its log says the state (journalctl -u keepalived)")]  # fmt: skip
        return [_nothing_recorded()]
    found = []
    for key, entry in sorted(snapshot.items()):
        state = str(entry.get("state", "?")).upper()
        since = _when(entry.get("since"))
        detail = f"{key}: {state} since {since}"
        if state == "FAULT":
            found.append(fail(CHECK, f"{detail}: this node cannot become MASTER", WHY))
        elif state == "STOP":
            found.append(warn(CHECK, f"{detail}: keepalived stopped", "systemctl start keepalived"))
        else:
            found.append(ok(CHECK, detail))
    return found


def _nothing_recorded() -> Finding:
    age = keepalived_age()
    if age is None:
        return warn(CHECK, "keepalived is not running", "systemctl start keepalived")
    if age < GRACE:
        return ok(CHECK, f"keepalived started {age:.0f}s ago; no state recorded yet")
    return warn(
        CHECK,
        f"keepalived has run for {age:.0f}s and never reached `ha-notify notify`",
        "check the notify line and keepalived's log for the script (journalctl -u keepalived)",
    )


def _damage(path: Path) -> str:
    """Why state.json cannot be read ("" when it is fine or absent)."""
    try:
        data = json.loads(read_text(path))
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, RecursionError) as exc:
        return f"unreadable ({exc})"
    return "" if isinstance(data, dict) else f"not an object ({type(data).__name__})"


def _namespaces(pid: str) -> tuple[int, str]:
    """How deep ``pid``'s PID namespace is and, when readable (root), its network namespace."""
    with open(f"/proc/{pid}/status") as handle:
        depth = next((len(line.split()) - 1 for line in handle if line.startswith("NSpid:")), 1)
    try:
        net = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        net = ""
    return depth, net


def keepalived_age() -> Optional[float]:
    """Seconds since the oldest keepalived process of this node started; None when none runs."""
    try:
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        starts = keepalived_starts()
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return max(uptime - start / tick for start in starts.values()) if starts else None


def keepalived_starts() -> dict[int, int]:
    """This node's keepalived processes: pid -> start time (clock ticks since boot).

    A keepalived in another PID or network namespace (a container's, a lab's) is not this
    node's: the host sees those processes too, and must not take them for its own."""
    mine = _namespaces("self")
    starts = {}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                text = handle.read()
            if text[text.find("(") + 1 : text.rfind(")")] != "keepalived":
                continue
            depth, net = _namespaces(pid)
        except OSError:
            continue
        if depth == mine[0] and net in ("", mine[1]):
            starts[int(pid)] = int(text[text.rfind(")") + 2 :].split()[19])
    return starts


def _when(value: object) -> str:
    try:
        stamp = float(value)  # type: ignore[arg-type]
        return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return "an unknown time"
