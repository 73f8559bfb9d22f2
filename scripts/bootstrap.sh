# Sourced by scripts/test.sh and scripts/lab.sh: installs what a fresh Debian machine lacks.
#   - Debian packages: haproxy, keepalived, iproute2, psmisc (killall, for the benchmarks),
#     python3-venv, and the fleet kit's engines (prometheus for promtool, prometheus-alertmanager
#     for amtool, prometheus-node-exporter), nftables (the lab's split brain) and procps (pgrep,
#     the reference config's liveness check), iputils-arping and acl (the deploy checklist's
#     packages, which `lab.sh --checklist` installs on its nodes); only the missing ones, with
#     apt-get, as root.
#   - the repo's virtualenv .venv with `pip install -e '.[test]'`.
# Sets VENV to the virtualenv's folder.

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV="$REPO/.venv"

bootstrap() {
    missing=""
    command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
    command -v keepalived >/dev/null 2>&1 || missing="$missing keepalived"
    command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
    command -v killall >/dev/null 2>&1 || missing="$missing psmisc"
    command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
    command -v amtool >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
    command -v prometheus-node-exporter >/dev/null 2>&1 || missing="$missing prometheus-node-exporter"
    command -v nft >/dev/null 2>&1 || missing="$missing nftables"
    command -v pgrep >/dev/null 2>&1 || missing="$missing procps"
    command -v arping >/dev/null 2>&1 || missing="$missing iputils-arping"
    command -v setfacl >/dev/null 2>&1 || missing="$missing acl"
    /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
    if [ -n "$missing" ]; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "bootstrap: missing:$missing; install them (apt-get install -y$missing) as root" >&2
            return 2
        fi
        echo "bootstrap: installing$missing" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086  # word splitting of the package list is intended
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "bootstrap: creating $VENV" >&2
        /usr/bin/python3 -m venv "$VENV"
    fi
    echo "bootstrap: pip install -e '.[test]' into $VENV" >&2
    (cd "$REPO" && "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]')
}
