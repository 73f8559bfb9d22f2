"""The haproxy check, run in-process each round: the one place the watcher calls the checks API.

Options are merged exactly as ``ha-notify check haproxy`` merges them (``[checks.haproxy]``
over the defaults, :func:`ha_notify.checks.runner.build_options`), so the verdict and its
reason are the ones an operator gets from the command; only the deadline is new each round.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from time import monotonic
from typing import Optional

from ha_notify.checks import CheckOptions, CheckResult
from ha_notify.checks.runner import CheckArgs, build_options, resolve
from ha_notify.checks.settings import ChecksSettings, bootstrap_run_dir
from ha_notify.errors import CheckError, HaNotifyError
from ha_notify.watch.probe import RoundContext, Sample

log = logging.getLogger(__name__)
NAME = "haproxy"


class HaproxyHealth:
    """``check haproxy`` with the config's ``[checks]``; logs only when the verdict changes."""

    def __init__(self, checks: dict[str, object], config_path: Optional[Path]) -> None:
        run_dir = str(checks.get("run_dir") or bootstrap_run_dir())
        self.settings = ChecksSettings(str(config_path) if config_path else None, run_dir, checks)
        self.request = CheckArgs(NAME)
        self.check = resolve(NAME)
        options = build_options(self.request, self.settings, monotonic())
        # The merge is the same every round (the config only changes on SIGHUP, with a new
        # HaproxyHealth): keep its fields, give each round its own deadline.
        self._fields = {name: getattr(options, name) for name in CheckOptions.__slots__}
        self.deep = options.deep
        self.timeout = options.timeout
        # The pidfile whose processes the loop follows (pidfds) to start a round on a crash.
        self.pidfile: Optional[str] = None
        if not options.no_pidfile:
            from ha_notify.checks.process import default_pidfiles

            candidates = (options.pidfile,) if options.pidfile else default_pidfiles(NAME)
            self.pidfile = next((p for p in candidates if os.path.exists(p)), candidates[0])
        if self.deep:  # a --deep without a stats socket is a config error: say so at start
            from ha_notify.checks.haproxy import socket_address

            socket_address(options)
        self.last: Optional[CheckResult] = None

    def run(self) -> CheckResult:
        """One check; a check that cannot run as configured is unhealthy, with the reason."""
        try:
            fields = self._fields
            options = CheckOptions(**{**fields, "deadline": monotonic() + self.timeout})
            result = self.check(options)
        except (CheckError, HaNotifyError) as exc:
            result = CheckResult(False, str(exc))
        except Exception as exc:  # never let one odd round stop the watcher
            log.debug("haproxy check crashed", exc_info=True)
            result = CheckResult(False, f"internal error in check: {type(exc).__name__}: {exc}")
        if self.last is None or result.healthy != self.last.healthy:
            level = logging.INFO if result.healthy else logging.WARNING
            word = "healthy" if result.healthy else "unhealthy"
            log.log(level, "check haproxy: %s: %s", word, result.reason)
        self.last = result
        return result

    # Probe protocol: the verdict is also a metric.
    def round(self, ctx: RoundContext) -> None:
        del ctx

    def metrics(self) -> Iterable[Sample]:
        if self.last is None:
            return ()
        return (Sample("ha_notify_check_healthy", (("check", NAME),), float(self.last.healthy)),)
