"""The command line of ``ha-notify check``, defined once: the parser (:mod:`runner`), its
usage errors and ``--help`` (:mod:`usage`), and the typer ``check`` group all read this table.

Plain tuples and dicts: it is imported on the hot path.
"""

from __future__ import annotations

from ha_notify.constants import CONFIG_ENV, CONFIG_PATH

# option -> (attribute, METAVAR or "" for a flag, help); "" help: an alias, not listed.
OPTIONS = {
    "--pidfile": (
        "pidfile",
        "PATH",
        "Pidfile to verify [default: [checks.*] pidfile, then /run/NAME.pid, /var/run/NAME.pid, "
        "/run/NAME/NAME.pid; /proc scan if none exists]",
    ),
    "--no-pidfile": ("no_pidfile", "", "Ignore pidfiles; find the process by exact name in /proc."),
    "--socket": (
        "socket",
        "PATH|HOST:PORT",
        "haproxy stats socket for --deep [default: [checks.haproxy] socket, then the "
        "`stats socket` of --haproxy-config or /etc/haproxy/haproxy.cfg]",
    ),
    "--haproxy-config": ("haproxy_config", "FILE", "haproxy.cfg to read the stats socket from."),
    "--deep": (
        "deep",
        "",
        "Also ask the runtime API: show info answers, not stopping, every frontend OPEN; "
        "backends with no server UP are reported, not failed (the pair shares them) "
        "[default: [checks.haproxy] deep, else off]",
    ),
    "--no-deep": ("no_deep", "", "Do not ask the runtime API, whatever [checks.haproxy] says."),
    "--min-up": (
        "min_up",
        "N",
        "Fail the node when a backend has fewer than N servers UP (only for backends that "
        "differ per node; by default they are reported, not failed)",
    ),
    "--ignore-backend": (
        "ignore_backend",
        "NAME",
        "A backend --deep does not judge; repeatable, added to [checks.haproxy] ignore_backends.",
    ),
    "--timeout": (
        "timeout",
        "SECONDS",
        "Bound the whole check, in seconds [default: config, then 2]",
    ),
    "--config": ("config", "PATH", f"Config file [default: ${CONFIG_ENV}, then {CONFIG_PATH}]"),
    "-c": ("config", "PATH", ""),  # as in every other ha-notify command
}
REPEATABLE = frozenset({"--ignore-backend"})
_COMMON = ("--pidfile", "--no-pidfile", "--timeout", "--config", "-c")

# check -> (positional argument and its help, options, what it answers)
CHECKS = {
    "haproxy": (
        ("", ""),
        tuple(OPTIONS),
        "Is haproxy alive (pidfile or /proc, master-worker aware) and, with --deep, serving?",
    ),
    "process": (
        ("NAME", "Exact process name, as killall matches it."),
        _COMMON,
        "Is a live (not zombie) process called NAME running? Pidfile first, then /proc.",
    ),
}
SUMMARY = (
    "Health checks for keepalived's vrrp_script: exit 0 healthy, 1 unhealthy, 2 usage or "
    "config error."
)
