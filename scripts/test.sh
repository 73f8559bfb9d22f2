#!/bin/sh
# Every test, from a fresh Debian machine as root: installs haproxy, keepalived, iproute2 and
# a virtualenv, then runs ruff, mypy and pytest (real SMTP/HTTP servers, real haproxy, real
# keepalived pairs in network namespaces). Extra arguments go to pytest.
#
#     sudo scripts/test.sh
#     sudo scripts/test.sh -k email -x
set -eu
. "$(dirname "$0")/bootstrap.sh"
bootstrap
cd "$REPO"
echo "== ruff" >&2
"$VENV/bin/ruff" check .
echo "== mypy" >&2
"$VENV/bin/mypy"
echo "== pytest" >&2
exec "$VENV/bin/pytest" "$@"
