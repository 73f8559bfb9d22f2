"""Is VRRP (IP protocol 112) filtered by this node's nftables rules?

Blocked VRRP is the usual cause of a split brain (both nodes MASTER). The ruleset comes from
``nft -j list ruleset`` (Debian's iptables is iptables-nft, so its rules are there too). Every
input and output base chain of the ``ip`` and ``inet`` families is walked as a VRRP packet would
be: rules that cannot match VRRP (another protocol, ``ct state``, ``iifname lo``) are skipped,
jumps are followed, and the first accept or drop decides; the chain's policy decides the rest.
A rule whose other conditions are unknown here (``ip saddr``) is taken to match.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any, Optional

from ha_notify.doctor import Finding, ok, warn

CHECK = "vrrp"
VRRP = ("vrrp", 112, "112")
PROTO_FIELDS = (("payload", "protocol"), ("meta", "l4proto"), ("payload", "nexthdr"))
NOT_VRRP_KEYS = ("ct",)  # connection-tracking state: VRRP adverts are never "established"
MAX_DEPTH = 16


def _right_values(right: Any) -> list[Any]:
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    return list(right) if isinstance(right, list) else [right]


def _classify(match: dict[str, Any]) -> Optional[bool]:
    """True: the condition holds for VRRP; False: it cannot; None: unknown here."""
    left, op = match.get("left", {}), match.get("op", "==")
    if not isinstance(left, dict):
        return None
    if "payload" in left:
        proto = left["payload"].get("protocol")
        field = left["payload"].get("field")
        if proto in ("tcp", "udp", "icmp", "sctp", "icmpv6", "ip6", "udplite", "dccp"):
            return False  # matches a header VRRP does not have
        if (proto, field) != ("ip", "protocol"):
            return None
    elif "meta" in left:
        key = left["meta"].get("key")
        if key == "iifname" and match.get("right") == "lo":
            return False if op == "==" else None
        if key != "l4proto":
            return None
    elif any(k in left for k in NOT_VRRP_KEYS):
        return False
    else:
        return None
    hit = any(v in VRRP for v in _right_values(match.get("right")))
    return hit if op in ("==", "in") else not hit


class Walker:
    """Follows one VRRP packet through the chains of one table."""

    def __init__(self, rules: dict[tuple[str, str, str], list[dict[str, Any]]]) -> None:
        self.rules = rules

    def verdict(
        self, family: str, table: str, chain: str, depth: int = 0
    ) -> Optional[tuple[str, str]]:
        """("accept"|"drop", which rule) or None when the chain falls through."""
        if depth > MAX_DEPTH:
            return None
        for rule in self.rules.get((family, table, chain), []):
            conditions = [_classify(e["match"]) for e in rule["expr"] if "match" in e]
            if False in conditions:
                continue
            where = f"{family} {table} chain {chain} rule handle {rule.get('handle')}"
            explicit = True in conditions
            for expr in rule["expr"]:
                if "accept" in expr:
                    return "accept", where
                if "drop" in expr or "reject" in expr:
                    if explicit or not conditions:
                        return "drop", where
                    break  # drops some traffic, by conditions we cannot judge: not VRRP
                for jump in ("jump", "goto"):
                    if jump in expr:
                        found = self.verdict(family, table, expr[jump]["target"], depth + 1)
                        if found is not None:
                            return found
                if "return" in expr:
                    return None
        return None


def blocked(ruleset: dict[str, Any]) -> list[str]:
    """Why VRRP cannot pass, one item per base chain that drops it (empty: it passes)."""
    items = ruleset.get("nftables", [])
    chains = [i["chain"] for i in items if "chain" in i]
    rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for item in items:
        if "rule" in item:
            r = item["rule"]
            rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r)
    walker = Walker(rules)
    found = []
    for c in chains:
        if c.get("family") not in ("ip", "inet") or c.get("hook") not in ("input", "output"):
            continue
        result = walker.verdict(c["family"], c["table"], c["name"])
        if result is None and c.get("policy") == "drop":
            result = ("drop", f"{c['family']} {c['table']} chain {c['name']} policy drop")
        if result is not None and result[0] == "drop":
            found.append(f"{c['hook']}: {result[1]}")
    return found


def _nft(command: Sequence[str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [*command, "-j", "list", "ruleset"], capture_output=True, text=True, timeout=10, check=False
    )
    return done.returncode, done.stdout, done.stderr.strip()


def findings(nft: Sequence[str] = ("nft",)) -> list[Finding]:
    """One finding: VRRP passes, is dropped (with the rule and the fix), or cannot be told."""
    if shutil.which(nft[0]) is None:
        return [ok(CHECK, "nft is not installed: no nftables rules filter VRRP")]
    code, out, err = _nft(nft)
    if code != 0:
        return [warn(CHECK, f"cannot read the nftables ruleset: {err}", "run doctor as root")]
    try:
        reasons = blocked(json.loads(out or "{}"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return [warn(CHECK, f"cannot understand `nft -j list ruleset`: {exc}", "report it")]
    if not reasons:
        return [ok(CHECK, "nftables lets VRRP (IP protocol 112) in and out")]
    return [
        warn(
            CHECK,
            f"nftables drops VRRP (IP protocol 112), the usual cause of a split brain: {why}",
            "accept it before that rule, e.g. nft insert rule inet filter input "
            "ip protocol vrrp accept (and the same for output if it drops)",
        )
        for why in reasons
    ]
