"""``ha-notify status``: last state per instance, what is pending and when it is tried next,
each dead letter by id (newest first), the newest errors."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ha_notify.config import Config
from ha_notify.notify import deadletters
from ha_notify.notify.delivery import Delivery
from ha_notify.notify.inbox import Inbox, waiting
from ha_notify.notify.spool import Spool
from ha_notify.notify.store import StateStore


def collect(config: Config) -> dict[str, Any]:
    g = config.general
    now = time.time()
    store = StateStore(g.state_dir, g.flap_threshold, g.flap_window)
    spool = Spool(g.state_dir, g.max_age)
    instances = {}
    for key, entry in sorted(store.snapshot().items()):
        since = float(entry.get("since", now))
        instances[key] = {
            "state": entry.get("state"),
            "seq": entry.get("seq"),
            "since": datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds"),
            "flapping": entry.get("flapping_since") is not None,
        }
    channels: dict[str, Any] = {}
    recipients: list[dict[str, Any]] = []
    pending = deadletters.newest_first(spool.list_pending())
    for d in pending:  # newest first: the first error seen per channel is its newest
        info = channels.setdefault(
            d.channel, {"pending": 0, "oldest_age_s": 0.0, "last_error": "", "attempts": 0}
        )
        info["pending"] += 1
        age = now - d.created
        if age >= info["oldest_age_s"]:
            info["oldest_age_s"] = round(age, 1)
        if d.last_error and not info["last_error"]:
            info["last_error"] = d.last_error
        info["attempts"] = max(info["attempts"], d.attempts)
        recipients += _recipients(d, "pending")
    queued = []
    inbox = Inbox(g.state_dir, spool.quarantine)
    for q, names in waiting(inbox, spool, config.channels):
        for name in names:  # pending for its channels too
            info = channels.setdefault(
                name, {"pending": 0, "oldest_age_s": 0.0, "last_error": "", "attempts": 0}
            )
            info["pending"] += 1
            info["oldest_age_s"] = max(info["oldest_age_s"], round(now - q.started, 1))
        queued.append(
            {
                "event": q.event.id,
                "instance": q.event.key,
                "state": q.event.filter_key,
                "since": deadletters.clock(q.started),
                "argv": list(q.argv),
            }
        )
    dead = deadletters.newest_first(spool.list_dead())
    for d in dead:
        recipients += _recipients(d, "dead")
    from ha_notify.checks.settings import run_dir as checks_run_dir
    from ha_notify.checks.state import last_results

    checks = [
        {"state_file": name, "healthy": healthy, "last": text}
        for name, healthy, text in last_results(checks_run_dir(config.checks))
    ]
    return {
        "config": str(config.path) if config.path else None,
        "state_dir": str(g.state_dir),
        "instances": instances,
        "pending": channels,
        "queued": queued,
        "deliveries": [_pending(d, now) for d in sorted(pending, key=lambda d: d.next_attempt)],
        "dead": len(dead),
        "dead_last_error": dead[0].last_error if dead else "",
        "dead_letters": [_dead(d, now) for d in dead],
        "recipients": recipients,
        "quarantined": quarantined(spool),
        "unreadable": [
            {"file": str(p), "reason": r}
            for p, r in sorted({**spool.unreadable, **inbox.unreadable}.items())
        ],
        "checks": checks,
    }


def quarantined(spool: Spool) -> list[dict[str, str]]:
    return [{"file": str(q.path), "reason": q.reason} for q in spool.quarantine.list()]


def _pending(d: Delivery, now: float) -> dict[str, Any]:
    return {
        "id": deadletters.ref(d),
        "channel": d.channel,
        "instance": d.event.key,
        "seq": d.event.seq,
        "attempts": d.attempts,
        "next_attempt": deadletters.clock(max(d.next_attempt, now)),
        "next": deadletters.next_try(d, now),
        "last_error": d.last_error,
    }


def _dead(d: Delivery, now: float) -> dict[str, Any]:
    return {
        "id": deadletters.ref(d),
        "channel": d.channel,
        "instance": d.event.key,
        "seq": d.event.seq,
        "state": d.event.state,
        "given_up": deadletters.clock(deadletters.when(d)),
        "line": deadletters.describe(d, now),
        "last_error": d.last_error,
    }


def _recipients(d: Delivery, status: str) -> list[dict[str, Any]]:
    """Per-recipient detail of a delivery that some recipients already have or refused."""
    if not d.leg.sent_to and not d.leg.dead_to:
        return []
    return [
        {
            "channel": d.channel,
            "event": d.event.id,
            "status": status,
            "sent_to": list(d.leg.sent_to),
            "dead_to": dict(d.leg.dead_to),
            "last_error": d.last_error,
        }
    ]


def format_text(report: dict[str, Any]) -> str:
    lines = [
        f"config: {report['config'] or 'none (built-in defaults)'}",
        f"state_dir: {report['state_dir']}",
        "",
        "instances:",
    ]
    if not report["instances"]:
        lines.append("  (no state recorded yet)")
    for key, info in report["instances"].items():
        flag = "  FLAPPING" if info["flapping"] else ""
        lines.append(
            f"  {key:<24} {str(info['state']).upper():<8} #{info['seq']} since "
            f"{info['since']}{flag}"
        )
    lines += ["", "pending deliveries:"]
    if not report["pending"] and not report.get("queued"):
        lines.append("  none")
    for name, info in sorted(report["pending"].items()):
        lines.append(
            f"  {name:<16} {info['pending']} pending, oldest "
            f"{deadletters.ago(info['oldest_age_s'])} ago, {info['attempts']} attempts"
        )
        if info["last_error"]:
            lines.append(f"  {'':<16} newest error: {info['last_error']}")
    if report.get("queued"):
        lines.append(
            f"  {len(report['queued'])} events queued behind the state lock (numbered and sent "
            "by the next notify/flush):"
        )
    for q in report.get("queued", []):
        lines.append(f"  {'':<16} {q['instance']} {q['state'].upper()} since {q['since']}")
    for item in report.get("deliveries", []):
        lines.append(
            f"  {'':<16} {item['id']} ({item['instance']} #{item['seq']}): next attempt "
            f"{item['next']}"
        )
    for r in report["recipients"]:
        dead = ", ".join(f"{a} ({why})" for a, why in r["dead_to"].items()) or "none"
        lines.append(
            f"  {r['channel']:<16} event {r['event'][:12]} ({r['status']}): "
            f"sent to {', '.join(r['sent_to']) or 'nobody yet'}; given up for {dead}"
        )
    lines.append("")
    lines.append(f"given up (dead letters, newest first): {report['dead']}")
    for item in report.get("dead_letters", []):
        lines.append(f"  {item['line']}")
    if report["dead"]:
        lines.append(
            "  (`ha-notify flush --retry-dead ID` sends one again, --drop-dead ID forgets it)"
        )
    lines.append("")
    lines.append(f"quarantined files: {len(report['quarantined'])}")
    for q in report["quarantined"]:
        lines.append(f"  {q['file']}: {q['reason']}")
    if report.get("unreadable"):
        count = len(report["unreadable"])
        lines.append(f"unreadable now (left in place, tried again next run): {count}")
    for u in report.get("unreadable", []):
        lines.append(f"  {u['file']}: {u['reason']}")
    lines += ["", "health checks (last result of each vrrp_script check):"]
    if not report.get("checks"):
        lines.append("  none recorded")
    for check in report.get("checks", []):
        verdict = "healthy" if check["healthy"] else "UNHEALTHY"
        lines.append(f"  {verdict:<9} {check['last'] or check['state_file']}")
    return "\n".join(lines)
