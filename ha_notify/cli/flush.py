"""``ha-notify flush``: deliver what the spool holds; list, drop or retry dead letters."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ha_notify.argv import ALL
from ha_notify.cli.options import ConfigOpt
from ha_notify.config import load
from ha_notify.errors import ExitCode
from ha_notify.notify.engine import Notifier


def flush(
    config: Optional[str] = ConfigOpt,
    due: bool = typer.Option(
        False,
        "--due",
        help="Only deliveries whose backoff has expired (what the systemd timer runs).",
    ),
    retry_dead: Optional[str] = typer.Option(
        None,
        "--retry-dead",
        metavar="[ID]",
        help="Move the dead letter ID (or unique prefix), or with no ID all of them, back to "
        "pending first.",
    ),
    drop_dead: Optional[str] = typer.Option(
        None, "--drop-dead", metavar="ID", help="Forget the dead letter ID (or unique prefix)."
    ),
    list_dead: bool = typer.Option(
        False, "--list-dead", help="List dead letters by id, newest first; send nothing."
    ),
) -> int:
    """Deliver what the spool still holds."""
    from ha_notify.cli.status import quarantined
    from ha_notify.notify import deadletters

    notifier = Notifier(load(config))
    spool = notifier.spool
    if list_dead or drop_dead:
        if drop_dead:
            gone = deadletters.drop(spool, drop_dead)
            print(f"dropped {deadletters.ref(gone)} ({gone.event.key} #{gone.event.seq})")
        for d in deadletters.newest_first(spool.list_dead()) if list_dead else ():
            print(deadletters.describe(d))
        return ExitCode.OK
    if retry_dead is not None:
        print(deadletters.retry(spool, None if retry_dead == ALL else retry_dead))
    outcome = notifier.flush(due_only=due)
    pending = spool.list_pending()
    bad = quarantined(spool)
    print(
        f"sent {len(outcome.sent)}, still pending {len(pending)}, given up {len(outcome.dead)}, "
        f"quarantined {len(bad)}"
    )
    for d in sorted(pending, key=lambda d: d.next_attempt):
        print(f"  pending {deadletters.ref(d)}: next attempt {deadletters.next_try(d)}")
    for error in sorted(set(outcome.errors.values())):
        print(f"  error: {error}", file=sys.stderr)
    for q in bad:
        print(f"  quarantined: {q['file']}: {q['reason']}", file=sys.stderr)
    return ExitCode.FAILED if outcome.dead else ExitCode.OK
