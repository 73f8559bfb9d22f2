#!/bin/sh
# Every test, from a fresh Debian machine as root: installs haproxy, keepalived, iproute2 and
# a virtualenv, then runs ruff (lint and format), mypy and pytest (real SMTP/HTTP servers,
# real haproxy, real keepalived pairs in network namespaces) and builds the docs site
# (mkdocs build --strict). Then two more lanes run the
# tests that need neither root, haproxy nor keepalived: on Python 3.9 (the oldest supported)
# and on the newest Python found, each in its own virtualenv (.venv-py39, .venv-newest).
# The lanes run one after the other once the main lane has passed. Extra arguments go to
# every pytest run.
#
#     sh scripts/test.sh
#     sh scripts/test.sh -k email -x
#     LANES= sh scripts/test.sh        # the main lane only
#
# With CI=true a skipped root, haproxy or keepalived test fails the run (tests/conftest.py).
set -eu
. "$(dirname "$0")/bootstrap.sh"
. "$(dirname "$0")/pythons.sh"
START=$(date +%s)
bootstrap
cd "$REPO"
LANES=${LANES-py39 newest}
NON_ROOT="not root and not haproxy and not keepalived"
# Most tests wait on sockets, subprocesses and timers, not the CPU: pytest-xdist runs them on
# TEST_WORKERS workers (0: one process, no xdist). A test file runs on one worker (loadfile), so
# a module-scoped fixture (a lab run, a wheel build) runs once.
TEST_WORKERS=${TEST_WORKERS-4}
case "$TEST_WORKERS" in
    '' | *[!0-9]*)
        echo "test.sh: TEST_WORKERS must be a number of workers (0: no xdist), got '$TEST_WORKERS'" >&2
        exit 2
        ;;
esac
XDIST=""
[ "$TEST_WORKERS" -eq 0 ] || XDIST="-n $TEST_WORKERS --dist loadfile"

# lane_python NAME: the interpreter of lane NAME; nothing (and why, on stderr) when it is absent.
lane_python() {
    case "$1" in
        py39)
            python=$(python_version 3.9)
            if [ -z "$python" ]; then
                echo "lanes: NO Python 3.9 found (PATH, pyenv, /usr/bin, /usr/local/bin);" \
                    "the 3.9 lane did NOT run. Install one, e.g. pyenv install 3.9" >&2
            fi
            ;;
        newest)
            python=$(python_newest)
            main=$("$VENV/bin/python" -c 'import sys; print(*sys.version_info[:2])')
            if [ -n "$python" ] && [ "$("$python" -c 'import sys; print(*sys.version_info[:2])')" = "$main" ]; then
                python=""
            fi
            if [ -z "$python" ]; then
                echo "lanes: no Python newer than the main lane's found; the newest lane is the main one" >&2
            fi
            ;;
        *)
            echo "lanes: unknown lane '$1' in LANES (expected py39, newest)" >&2
            return 2
            ;;
    esac
    echo "$python"
}

# prepare NAME PYTHON: the virtualenv .venv-NAME with `pip install -e '.[test]'`.
prepare() {
    venv="$REPO/.venv-$1" python=$2
    if [ ! -x "$venv/bin/python" ]; then
        echo "lanes: creating $venv with $python"
        "$python" -m venv "$venv"
    fi
    if [ ! -e "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
        echo "lanes: pip install -e '.[test]' into $venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
        touch "$venv/.installed"
    fi
}

# lane NAME: waits for its virtualenv (prepared while the main lane ran), then the tests.
lane() {
    name=$1 venv="$REPO/.venv-$1"
    shift
    eval "pid=\$pid_$name"
    if ! wait "$pid"; then
        cat "$REPO/.lane-$name.log" >&2
        echo "lanes: preparing $venv failed (above)" >&2
        return 1
    fi
    cat "$REPO/.lane-$name.log" >&2
    echo "== pytest, lane $name ($("$venv/bin/python" -V)): -m '$NON_ROOT'" >&2
    status=0
    # shellcheck disable=SC2086
    "$venv/bin/pytest" -q -p no:cacheprovider -m "$NON_ROOT" $XDIST "$@" || status=$?
    [ "$status" -eq 5 ] && status=0 # 5: the arguments selected no test for this lane
    return "$status"
}

# The lanes' virtualenvs are made while the main lane runs (pip waits on the disk, not the
# CPU: a fresh clone saves about a minute); their tests run after it, one lane after the other:
# side by side they put 100 notify processes on two cores at once, and the deadline tests then
# measured the load, not the code.
# If the main lane fails, a preparation still running is left to finish (its log is
# .lane-NAME.log): the next run finds the virtualenv ready.
lanes=""
for name in $LANES; do
    python=$(lane_python "$name") || exit 2
    [ -n "$python" ] || continue
    prepare "$name" "$python" >"$REPO/.lane-$name.log" 2>&1 &
    eval "pid_$name=\$!"
    lanes="$lanes $name"
done

echo "== ruff" >&2
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy" >&2
"$VENV/bin/mypy"
echo "== docs (mkdocs build --strict)" >&2
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --site-dir "$REPO/site"
echo "== pytest ($("$VENV/bin/python" -V))" >&2
# shellcheck disable=SC2086  # XDIST is split into its options on purpose
"$VENV/bin/pytest" $XDIST "$@"

failed=""
for name in $lanes; do
    status=0
    lane "$name" "$@" || status=$?
    [ "$status" -eq 0 ] || failed="$failed $name"
done
if [ -n "$failed" ]; then
    echo "== FAILED in lane(s):$failed" >&2
    exit 1
fi
echo "== all passed in $(($(date +%s) - START)) s" >&2
