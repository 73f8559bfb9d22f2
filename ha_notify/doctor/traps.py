"""The keepalived.conf traps a seasoned admin spots at a glance, each with its one-line fix.

``state MASTER`` with ``nopreempt`` (keepalived ignores nopreempt then), a ``weight`` on a
tracked check with ``nopreempt`` (the failover never happens), ``router_id`` /
``virtual_router_id`` mix-ups and the ``route_id`` typo (keepalived ignores unknown
keywords), and ``auth_type PASS`` (a clear-text password that keeps nobody out).
"""

from __future__ import annotations

from typing import Optional

from ha_notify.doctor import Finding, fail, ok, warn
from ha_notify.keepalived_conf import Block, KeepalivedConf, blocks

CHECK = "keepalived traps"
DEFAULT_WEIGHT = {"track_script": 0, "track_file": 1}  # keepalived's defaults per kind
SOURCES = {"track_script": "vrrp_script", "track_file": "track_file"}


def findings(conf: Optional[KeepalivedConf]) -> list[Finding]:
    """One finding per trap found, or one ok line."""
    if conf is None:
        return []
    every = blocks(conf)
    found: list[Finding] = []
    for block in every:
        found += _typos(block)
        if block.kind == "vrrp_instance":
            found += _instance(block, every)
    instances = sum(1 for b in every if b.kind == "vrrp_instance")
    return found or [ok(CHECK, f"none in {instances} vrrp_instance(s)")]


def _typos(block: Block) -> list[Finding]:
    where = f"{block.kind} {block.name}".strip()
    if block.value("route_id") is None:
        return []
    return [
        fail(
            CHECK,
            f"{where}: `route_id` is not a keepalived keyword; keepalived logs it as unknown "
            "and ignores it",
            "write router_id NAME in global_defs (this node's name), and virtual_router_id "
            "1-255 in each vrrp_instance (the same on both nodes)",
        )
    ]


def _instance(block: Block, every: list[Block]) -> list[Finding]:
    where = f"vrrp_instance {block.name}"
    found: list[Finding] = []
    if block.value("router_id") is not None:
        found.append(
            fail(
                CHECK,
                f"{where}: router_id belongs in global_defs (it names the node); keepalived "
                "ignores it here",
                "use virtual_router_id 1-255 here, the same on both nodes",
            )
        )
    vrid = block.value("virtual_router_id")
    if vrid is None and block.value("router_id") is None:
        found.append(
            fail(
                CHECK,
                f"{where}: no virtual_router_id: keepalived refuses the instance",
                "add virtual_router_id 1-255, the same on both nodes and unique on the LAN",
            )
        )
    elif vrid is not None and not (vrid and vrid[0].isdigit() and 1 <= int(vrid[0]) <= 255):
        found.append(
            fail(
                CHECK,
                f"{where}: virtual_router_id {' '.join(vrid)} is not a number from 1 to 255",
                "use virtual_router_id 1-255, the same on both nodes",
            )
        )
    state = (block.value("state") or [""])[0].upper()
    nopreempt = block.value("nopreempt") is not None
    if nopreempt and state == "MASTER":
        found.append(
            warn(
                CHECK,
                f"{where}: state MASTER with nopreempt: keepalived ignores nopreempt unless the "
                "initial state is BACKUP, so this node takes the VIP back each time it returns",
                "state BACKUP on both nodes (priority picks the first MASTER)",
            )
        )
    if nopreempt:
        found += [
            fail(
                CHECK,
                f"{where}: {kind} {name} has weight {weight} and the instance has nopreempt: a "
                "failing check only lowers the priority, the peer never preempts, and the VIP "
                "stays on the broken node",
                f"weight 0 on {name} (a failing check puts the instance in FAULT and the peer "
                "takes over), or drop nopreempt",
            )
            for kind, name, weight in _weights(block, every)
            if weight != 0
        ]
    for words in block.children.get("authentication", []):
        if words[:2] == ["auth_type", "PASS"] or words[:2] == ["auth_type", "pass"]:
            found.append(
                warn(
                    CHECK,
                    f"{where}: auth_type PASS sends the password in clear in every advert (only "
                    "8 characters are used) and keeps no one out; RFC 3768 removed it",
                    "delete the authentication block on both nodes, and accept VRRP only from "
                    "the peer (nft: ip saddr PEER ip protocol vrrp accept)",
                )
            )
    return found


def _weights(instance: Block, every: list[Block]) -> list[tuple[str, str, int]]:
    """(kind, name, effective weight) of each check the instance tracks."""
    result = []
    for kind, source in SOURCES.items():
        for words in instance.children.get(kind, []):
            name = words[0]
            weight = _number(words[words.index("weight") + 1 :][:1]) if "weight" in words else None
            if weight is None:
                defined = next((b for b in every if b.kind == source and b.name == name), None)
                weight = _number(defined.value("weight") if defined else None)
            result.append((kind, name, DEFAULT_WEIGHT[kind] if weight is None else weight))
    return result


def _number(words: Optional[list[str]]) -> Optional[int]:
    try:
        return int(words[0]) if words else None
    except ValueError:
        return None
