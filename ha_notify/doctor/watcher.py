"""doctor's view of ``ha-notify watch``: the keepalived side of the pairing, and the unit.

keepalived reads a *missing* track file as healthy and keeps the last value of a writer that
died, so a ``track_file`` fed by the watcher is only safe when keepalived also writes 1 at
start (``init_file 1 overwrite``), fails on it (``weight 0``), and tracks the watcher process
itself (``vrrp_track_process`` on ``ha-notify ... watch``). And the watcher must be started
at boot: its systemd unit enabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ha_notify.config import Config
from ha_notify.doctor import Finding, fail, ok, warn
from ha_notify.keepalived_conf import Block, KeepalivedConf, blocks

NAME = "watch"
UNIT = "ha-notify-watch.service"
UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)
EXAMPLE = "ha-notify example keepalived node1-watch"


def findings(conf: Optional[KeepalivedConf], config: Optional[Config]) -> list[Finding]:
    """The pairing lint and the unit check, when keepalived reads the watcher's track file."""
    if conf is None or config is None:
        return []
    track = str(config.watch.track_file)
    all_blocks = blocks(conf)
    files = [b for b in all_blocks if b.kind in ("track_file", "vrrp_track_file")]
    ours = [b for b in files if (b.value("file") or [""])[0] == track]
    if not ours:
        if files:
            named = ", ".join((b.value("file") or ["?"])[0] for b in files)
            return [
                warn(
                    NAME,
                    f"keepalived's track_file reads {named}, [watch] track_file is {track}",
                    "make them the same file",
                )
            ]
        return [ok(NAME, "keepalived.conf does not use the watcher's track_file (not wired)")]
    result = [_track_file(b) for b in ours]
    result.append(_track_process(all_blocks, config))
    result.append(unit_finding())
    return result


def _track_file(block: Block) -> Finding:
    where = f"track_file {block.name}"
    weight = block.value("weight")
    if weight is None or weight[0] != "0":
        return fail(
            where,
            f"weight is {weight[0] if weight else 'not set (1)'}: an unhealthy verdict only "
            "changes the priority, and a nopreempt backup never takes over",
            "set `weight 0`, so a 1 in the file puts the instance in FAULT",
        )
    init = block.value("init_file")
    if init is None or init[:2] != ["1", "overwrite"]:
        return fail(
            where,
            "no `init_file 1 overwrite`: keepalived reads a missing or old file as healthy, "
            "so a node can become MASTER before the watcher has said a word",
            "add `init_file 1 overwrite` to the track_file block",
        )
    return ok(where, "weight 0, init_file 1 overwrite")


def _track_process(all_blocks: list[Block], config: Config) -> Finding:
    where = "vrrp_track_process (watcher)"
    for block in all_blocks:
        if block.kind != "vrrp_track_process":
            continue
        process = block.value("process") or []
        if not any(w.endswith("ha-notify") or w == "ha_notify" for w in process):
            continue
        if "watch" not in process:
            continue
        weight = block.value("weight")
        if weight is None or weight[0] != "0":
            return fail(
                where,
                f"{block.name}: weight is {weight[0] if weight else 'not set (1)'}",
                "set `weight 0`: a dead watcher must put the instance in FAULT",
            )
        interpreter = _interpreter(process)
        if interpreter is not None and process[0] != interpreter:
            return fail(
                where,
                f"{block.name}: matches {process[0]}, but {process[1]} runs under "
                f"{interpreter}: keepalived would never count the watcher",
                f"start the process line with {interpreter}",
            )
        if config.path is not None and "--config" in process:
            named = process[process.index("--config") + 1 :][:1]
            if named and named[0] != str(config.path):
                return warn(
                    where,
                    f"{block.name}: tracks a watcher for {named[0]}, doctor read {config.path}",
                    "use the same --config in the unit's ExecStart and here",
                )
        return ok(where, f"{block.name}: weight 0 on {' '.join(process[:4])}")
    return fail(
        where,
        "no vrrp_track_process on `ha-notify watch`: keepalived keeps the last value of a "
        "dead watcher, so a stale healthy file could hold MASTER",
        f"add the vrrp_track_process block that `{EXAMPLE}` prints and list it in track_process",
    )


def _interpreter(process: list[str]) -> Optional[str]:
    """The interpreter in the ``#!`` line of the ha-notify script the process line names."""
    script = next((w for w in process[1:] if w.endswith("/ha-notify")), None)
    if script is None:
        return None
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return words[0] if words else None


def unit_finding(dirs: Optional[tuple[Path, ...]] = None) -> Finding:
    """Whether ha-notify-watch.service is installed and enabled (a ``*.wants`` link)."""
    dirs = UNIT_DIRS if dirs is None else dirs
    where = UNIT
    installed = [d / UNIT for d in dirs if (d / UNIT).exists()]
    if not installed:
        return fail(
            where,
            "not installed: nothing writes the track file, keepalived keeps the node in FAULT",
            f"ha-notify example systemd {UNIT} > /etc/systemd/system/{UNIT}, then "
            "systemctl enable --now ha-notify-watch",
        )
    wants = [p for d in dirs if d.is_dir() for p in d.glob(f"*.wants/{UNIT}")]
    if not wants:
        return fail(
            where,
            f"{installed[0]} is not enabled: after a reboot no watcher runs",
            "systemctl enable --now ha-notify-watch",
        )
    return ok(where, f"enabled ({wants[0].parent.name})")
