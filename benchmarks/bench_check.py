"""Side-by-side cost of `ha-notify check haproxy` against what it replaces (run as root).

Starts a real haproxy (daemon mode, loopback ports, temporary files) and times, interleaved in
the same rounds, the installed console script against `python -c pass` (same interpreter) and
`killall -0 haproxy`; then spawns 3,000 sleeping processes and times the /proc scan (no
pidfile) against killall. Prints medians (wall and CPU = user+sys of the child), the ratios
against DESIGN.md's targets, and the CPU cost per day at keepalived's `interval 2`.

    sudo .venv/bin/python benchmarks/bench_check.py [--rounds 40] [--procs 3000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.haproxy_helpers import (  # noqa: E402 - needs the repo root on sys.path
    BASE_CONFIG,
    HAPROXY,
    HttpServer,
    free_port,
    server_status,
    wait_for,
)

PYTHON = str(Path(sys.executable).parent / "python")  # the venv's real interpreter, no shim
HA_NOTIFY = str(Path(sys.executable).parent / "ha-notify")
RUNS_PER_DAY = 86_400 // 2  # vrrp_script ... interval 2


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, user+sys CPU seconds) of one run of ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime


def compare(
    cases: dict[str, list[str]], env: dict[str, str], rounds: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) per case, the cases shuffled within each round."""
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for name in names:  # warm-up: page cache, pyc files, the config cache
        measure(cases[name], env)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            wall, cpu = measure(cases[name], env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in cases}


def show(results: dict[str, tuple[float, float]]) -> None:
    for name, (wall, cpu) in results.items():
        per_day = cpu * RUNS_PER_DAY
        print(
            f"  {name:<44} wall {wall * 1000:7.2f} ms   cpu {cpu * 1000:6.2f} ms"
            f"   cpu/day at interval 2: {per_day:6.1f} s"
        )


def ratio(results: dict[str, tuple[float, float]], name: str, base: str, target: float) -> None:
    value = results[name][0] / results[base][0]
    verdict = "OK" if value <= target else "OVER TARGET"
    print(f"  {name} / {base}: {value:.2f}x (target <= {target:g}x) {verdict}")


def start_sleepers(count: int) -> subprocess.Popen[bytes]:
    """``count`` sleeping processes, children of one shell in its own process group."""
    shell = subprocess.Popen(
        ["sh", "-c", f"i=0; while [ $i -lt {count} ]; do sleep 900 & i=$((i+1)); done; wait"],
        start_new_session=True,
    )
    children = Path(f"/proc/{shell.pid}/task/{shell.pid}/children")
    wait_for(lambda: len(children.read_text().split()) >= count, f"{count} sleepers", 300)
    return shell


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group we created (our sleepers and their shell), and reap."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--procs", type=int, default=3000)
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.access(HAPROXY, os.X_OK) or not os.access(HA_NOTIFY, os.X_OK):
        print("needs root, haproxy and the installed console script (pip install -e .)")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))  # run the finally blocks
    tmp = Path(tempfile.mkdtemp(prefix="bench-check-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        HA_NOTIFY_RUN_DIR=str(tmp / "run"),
        HA_NOTIFY_CONFIG=str(tmp / "none.toml"),
        HA_NOTIFY_SYSLOG="off",
    )
    (tmp / "none.toml").write_text("")
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(REPO / "ha_notify")],
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )  # as a pip install would have
    up = HttpServer()
    sock, pidfile, cfg = tmp / "haproxy.sock", tmp / "haproxy.pid", tmp / "haproxy.cfg"
    cfg.write_text(
        BASE_CONFIG.format(sock=sock, master="", fe_port=free_port(), up_port=up.port, extra="")
    )
    config = tmp / "config.toml"
    config.write_text(f'[checks.haproxy]\npidfile = "{pidfile}"\nsocket = "{sock}"\n')
    sleepers = None
    try:
        subprocess.run([HAPROXY, "-D", "-f", str(cfg), "-p", str(pidfile)], check=True)
        wait_for(lambda: server_status(sock, "be_up", "web1") == "UP", "haproxy UP")
        with_config = {**env, "HA_NOTIFY_CONFIG": str(config)}
        check = [HA_NOTIFY, "check", "haproxy", "--pidfile", str(pidfile)]
        deep = [*check, "--deep", "--socket", str(sock)]
        for argv in (check, deep):
            assert subprocess.run(argv, env=env).returncode == 0, argv
        print(
            f"haproxy {pidfile.read_text().strip()} running; "
            f"{len(os.listdir('/proc'))} /proc entries; {args.rounds} rounds"
        )
        results = compare(
            {
                "python -c pass": [PYTHON, "-c", "pass"],
                "ha-notify check haproxy --pidfile P": check,
                "ha-notify check haproxy --deep": deep,
                "killall -0 haproxy": ["killall", "-0", "haproxy"],
                "ha-notify check haproxy --no-pidfile": [
                    HA_NOTIFY,
                    "check",
                    "haproxy",
                    "--no-pidfile",
                ],
            },
            env,
            args.rounds,
        )
        show(results)
        ratio(results, "ha-notify check haproxy --pidfile P", "python -c pass", 2)
        ratio(results, "ha-notify check haproxy --deep", "python -c pass", 3)
        print("\nwith a config file ([checks.haproxy] pidfile, socket; parsed once, then cached):")
        cfg_results = compare(
            {
                "python -c pass": [PYTHON, "-c", "pass"],
                "ha-notify check haproxy (config)": [HA_NOTIFY, "check", "haproxy"],
                "ha-notify check haproxy --deep (config)": [
                    HA_NOTIFY,
                    "check",
                    "haproxy",
                    "--deep",
                ],
            },
            with_config,
            args.rounds,
        )
        show(cfg_results)
        ratio(cfg_results, "ha-notify check haproxy (config)", "python -c pass", 2)
        ratio(cfg_results, "ha-notify check haproxy --deep (config)", "python -c pass", 3)
        print(f"\nwith {args.procs} extra sleeping processes, no pidfile:")
        sleepers = start_sleepers(args.procs)
        scan = [HA_NOTIFY, "check", "haproxy", "--no-pidfile"]
        assert subprocess.run(scan, env=env).returncode == 0
        busy = compare(
            {
                "killall -0 haproxy": ["killall", "-0", "haproxy"],
                "ha-notify check haproxy --no-pidfile": scan,
                "python -c pass": [PYTHON, "-c", "pass"],
            },
            env,
            args.rounds,
        )
        show(busy)
        ratio(busy, "ha-notify check haproxy --no-pidfile", "killall -0 haproxy", 3)
    finally:
        if sleepers is not None:
            stop_group(sleepers)
        if pidfile.exists() and pidfile.read_text().strip():
            pid = int(pidfile.read_text())
            if Path(f"/proc/{pid}/comm").exists():
                os.kill(pid, signal.SIGTERM)  # only the haproxy this script started
        up.close()
        subprocess.run(["rm", "-rf", str(tmp)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
