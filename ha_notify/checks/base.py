"""The contract every check fulfils, built-in or third-party.

Writing a check is writing a function::

    # mypkg/redis_check.py
    from ha_notify.checks import CheckOptions, CheckResult

    def check(options: CheckOptions) -> CheckResult:
        ...
        return CheckResult(healthy=False, reason="redis answered LOADING")

and registering it in the plugin's ``pyproject.toml``::

    [project.entry-points."ha_notify.checks"]
    redis = "mypkg.redis_check:check"

``ha-notify check redis ARGS...`` then calls it with the positional arguments in
``options.args`` and the ``[checks.redis]`` table of the config file in ``options.table``.
A check returns unhealthy results; it raises :class:`~ha_notify.errors.CheckError` only when
it cannot run as configured (exit code 2). It finishes before ``options.deadline``
(a ``time.monotonic()`` value). Keep its imports light: it runs every few seconds, forever.
"""

from __future__ import annotations

from typing import Protocol

from ha_notify.checks import CheckOptions, CheckResult


class Check(Protocol):
    """A health check: options in, result out."""

    def __call__(self, options: CheckOptions, /) -> CheckResult: ...
