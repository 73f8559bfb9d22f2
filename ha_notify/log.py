"""Logging: syslog always (keepalived discards a script's output), stderr when interactive."""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import sys

from ha_notify.constants import STDERR_ENV, SYSLOG_ENV


class _SysLog(logging.handlers.SysLogHandler):
    """Syslog that drops a record rather than block or print a traceback when it is full."""

    def handleError(self, record: logging.LogRecord) -> None:
        del record


def setup(verbose: bool = False) -> None:
    root = logging.getLogger("ha_notify")
    if getattr(root, "_ha_notify_ready", False):
        return
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    address = os.environ.get(SYSLOG_ENV, "/dev/log")
    if address != "off" and os.path.exists(address):
        try:
            handler = _SysLog(
                address=address,
                facility=logging.handlers.SysLogHandler.LOG_DAEMON,
                socktype=socket.SOCK_DGRAM,
            )
            # A stalled journald must not hold us past the deadline (typeshed lacks .socket).
            handler.socket.setblocking(False)  # type: ignore[attr-defined]
            handler.ident = "ha-notify: "
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
            root.addHandler(handler)
        except OSError:
            pass  # no syslog daemon: stderr below still tells an operator at a terminal
    if verbose or sys.stderr.isatty() or os.environ.get(STDERR_ENV) == "1":
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("ha-notify: %(levelname)s %(message)s"))
        root.addHandler(stream)
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    root._ha_notify_ready = True  # type: ignore[attr-defined]


def error(message: str) -> None:
    """A one-line error for the operator: stderr always, and syslog."""
    print(f"ha-notify: error: {message}", file=sys.stderr)
    logger = logging.getLogger("ha_notify")
    for handler in logger.handlers:
        if isinstance(handler, logging.handlers.SysLogHandler):
            handler.handle(logger.makeRecord("ha_notify", logging.ERROR, "", 0, message, (), None))
