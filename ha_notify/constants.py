"""Facts every path shares (check, notify, watch, doctor), each defined once.

Dependency-free: ``ha-notify check`` imports this on its hot path, so it imports nothing.
"""

from __future__ import annotations

CONFIG_PATH = "/etc/ha-notify/config.toml"
CONFIG_ENV = "HA_NOTIFY_CONFIG"  # the config file when --config is not given
RUN_DIR = "/run/ha-notify"  # check results and the parsed-[checks] cache
RUN_DIR_ENV = "HA_NOTIFY_RUN_DIR"
SYSLOG_ENV = "HA_NOTIFY_SYSLOG"  # another syslog socket (tests); "off" disables syslog
STDERR_ENV = "HA_NOTIFY_LOG_STDERR"  # "1": log to stderr even when it is not a terminal

# keepalived's notify_master/backup/fault/stop scripts; DELETED only reaches `notify`.
SCRIPT_STATES = ("master", "backup", "fault", "stop")
STATES = (*SCRIPT_STATES, "deleted")
# Pair alerts from the watcher; a channel's ``states`` may name them too.
PAIR_KINDS = ("split_brain", "unserved", "not_serving")

# Exit codes of every command (errors.ExitCode names them; the check path uses these ints).
EXIT_OK = 0  # notify: delivered or safely spooled; check: healthy
EXIT_FAILED = 1  # notify: neither delivered nor spooled; check: unhealthy
EXIT_USAGE = 2  # usage or configuration error; nothing was sent

# The one cap on every configured duration (timeouts, deadline, max_age, intervals): a week.
# Longer is a typo, and would overflow poll()'s int milliseconds.
MAX_SECONDS = 604800.0

# Entry-point groups of third-party plugins (ha_notify.plugin describes the contract).
CHANNELS_GROUP = "ha_notify.channels"
CHECKS_GROUP = "ha_notify.checks"
