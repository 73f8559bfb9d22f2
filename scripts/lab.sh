#!/bin/sh
# The failover lab, from a fresh Debian machine: installs what is missing, then runs the
# reference HAProxy + keepalived pair in network namespaces and prints the failover timeline.
#
#     sh scripts/lab.sh              # the timeline; exit 0 when every check passed
#     sh scripts/lab.sh --json       # the result as JSON on stdout, the timeline on stderr
#     sh scripts/lab.sh --keep       # keep the run's configs, logs and mails under /tmp
#     sh scripts/lab.sh --watch      # the pair on `ha-notify watch` + track_file
#     sh scripts/lab.sh --pair       # the watchers' pair alerts: split brain, unserved, not_serving
#     sh scripts/lab.sh --fleet      # --watch + node_exporter, Prometheus, Alertmanager: a split
#                                    # brain reaches a webhook as one alert, then resolves
#     sh scripts/lab.sh --checklist  # docs/getting-started.md's deploy checklist, as written,
#                                    # on two fresh lab machines; doctor must find nothing
#
# Installs only what is missing (see scripts/bootstrap.sh) with apt-get,
# then the repo's virtualenv (.venv, `pip install -e '.[test]'`). Exit 2 when not root or when
# this machine cannot create network namespaces.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "lab.sh: needs root (network namespaces, keepalived, port 80); run: sudo $0" >&2
    exit 2
fi

. "$(dirname "$0")/bootstrap.sh"
bootstrap

cd "$REPO"
exec "$VENV/bin/python" -m lab.failover_lab "$@"
