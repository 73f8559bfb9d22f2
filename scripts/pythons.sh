# Sourced by scripts/test.sh: finds the Python interpreters of this machine for the test lanes.
#   python_candidates    "MAJOR MINOR PATH" per interpreter that runs and can create a venv:
#                        python3.N on PATH, pyenv's versions, /usr/bin, /usr/local/bin, /opt
#   python_version X.Y   the path of a Python X.Y, or nothing
#   python_newest        the path of the newest Python 3, or nothing

python_candidates() {
    pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for python in $(
        for n in 20 19 18 17 16 15 14 13 12 11 10 9; do command -v "python3.$n" || true; done
        ls "$pyenv_root"/versions/3.*/bin/python3 2>/dev/null || true
        ls /usr/bin/python3.* /usr/local/bin/python3.* /opt/python3*/bin/python3 2>/dev/null || true
    ); do
        case "$python" in *-config | *m) continue ;; esac
        "$python" -c 'import sys, venv, ensurepip; print(*sys.version_info[:2], sys.executable)' \
            2>/dev/null || true
    done
}

python_version() {
    major=${1%%.*} minor=${1#*.}
    python_candidates | awk -v a="$major" -v b="$minor" '$1 == a && $2 == b { print $3; exit }'
}

python_newest() {
    python_candidates | sort -k1,1n -k2,2n | tail -n 1 | cut -d' ' -f3-
}
