"""Entry point of the ``ha-notify`` console script.

``ha-notify check`` runs every few seconds on both nodes for as long as keepalived runs, so it
is dispatched here before typer (and everything else heavy) is imported.
"""

from __future__ import annotations

import sys

from ha_notify.constants import STATES

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms per check
if TYPE_CHECKING:
    from typing import Optional


NOTIFY_COMMANDS = (*STATES, "notify")


def main(argv: Optional[list[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] and args[0].startswith(("-c", "--config")):
        from ha_notify.argv import hoist_config  # `ha-notify -c FILE check haproxy`

        args = hoist_config(args)
    if args[:1] == ["check"]:  # --help too: written from the runner's own option table
        from ha_notify.checks.runner import main as check_main

        sys.exit(check_main(args[1:]))
    if args[:1] and args[0].lower() in NOTIFY_COMMANDS:
        # keepalived may SIGTERM a notify script at any moment: hold the signal from the
        # very start until the event is spooled (ha_notify.aio unblocks it then).
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    from ha_notify import aio

    aio.anchor_process_start()  # a notify's deadline counts from here, not from its imports
    from ha_notify.cli.app import run

    sys.exit(run(args))


if __name__ == "__main__":
    main()
