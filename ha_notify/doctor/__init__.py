"""``ha-notify doctor``: check an installed node, one line per check with the fix.

Checks run in order, each returning :class:`Finding` s; a check that crashes becomes a
``fail`` line naming the crash rather than a traceback. Exit 0 when nothing failed (warnings
do not fail), 1 when something did.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from ha_notify.event import clean

log = logging.getLogger(__name__)
OK, WARN, FAIL = "ok", "warn", "fail"
# How ha-notify's own command line would refuse ``SUB ARGS`` (None: it accepts them). The CLI
# passes its parser in: doctor never imports the CLI, which imports doctor.
Validate = Callable[[str, list[str]], Optional[str]]


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    check: str
    status: str
    detail: str
    fix: str = ""


def ok(check: str, detail: str) -> Finding:
    return Finding(check, OK, detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, WARN, detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, FAIL, detail, fix)


def format_table(findings: list[Finding]) -> str:
    """One line per check: status, name, detail, and the fix for warn and fail."""
    width = max((len(f.check) for f in findings), default=5)
    lines = []
    for f in findings:
        line = f"{f.status:<4}  {f.check:<{width}}  {clean(f.detail, 1000)}"
        if f.fix and f.status != OK:
            line += f"  -> fix: {clean(f.fix, 1000)}"
        lines.append(line)
    counts = {s: sum(1 for f in findings if f.status == s) for s in (OK, WARN, FAIL)}
    lines.append(f"{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    return "\n".join(lines)


def _guarded(name: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return check()
    except Exception as exc:  # a doctor that crashes helps nobody: report and go on
        log.debug("doctor check %s crashed", name, exc_info=True)
        return [
            fail(
                name,
                f"the check itself failed: {type(exc).__name__}: {exc}",
                "report this as a bug in ha-notify",
            )
        ]


def collect(
    config: Optional[str], keepalived_config: Path, validate: Validate, *, send: bool = False
) -> list[Finding]:
    """Every finding, in the order an operator fixes things."""
    from ha_notify.doctor import (
        fitness,
        host,
        installed,
        instances,
        local,
        reach,
        traps,
        vrrp,
        watcher,
        wiring,
    )

    findings: list[Finding] = []
    wired = wiring.Wiring.load(keepalived_config)
    env = local.Environment.load(config, wired)
    findings += _guarded("config", env.config_findings)
    findings += _guarded("secrets", env.secret_findings)
    findings += _guarded("state_dir", env.state_dir_findings)
    findings += _guarded("plugins", installed.findings)
    findings += _guarded("channels", lambda: reach.channel_findings(env, send=send))
    findings += _guarded("keepalived.conf", lambda: wired.findings(validate))
    findings += _guarded("keepalived traps", lambda: traps.findings(wired.conf))
    findings += _guarded("haproxy", lambda: local.haproxy_findings(env, wired))
    findings += _guarded("master-fit", lambda: fitness.findings(wired.conf, wired.default_user()))
    findings += _guarded("vrrp state", lambda: instances.findings(env.config, wired.conf))
    findings += _guarded("syslog", lambda: [host.syslog_finding()])
    findings += _guarded("flush timer", lambda: [host.timer_finding(env.config)])
    findings += _guarded("vrrp", vrrp.findings)
    findings += _guarded("watch", lambda: watcher.findings(wired.conf, env.config))
    return findings


def report(findings: list[Finding], *, as_json: bool) -> str:
    """The findings as the operator reads them: a table, or JSON."""
    if as_json:
        return json.dumps([asdict(f) for f in findings], indent=2, ensure_ascii=False)
    return format_table(findings)
