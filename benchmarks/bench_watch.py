"""What `ha-notify watch` costs and how fast it reacts (run as root).

A real haproxy (master-worker, loopback, temporary files) runs in a pid namespace with the
watcher (`--deep`, interval 1). In the same window a driver forks `killall -0 haproxy` every
2 s in the same namespace, as keepalived's tutorial vrrp_script does. Printed:

1. CPU per day: the watcher's CPU (its threads' schedstat run time, its children's rusage)
   over the window, and per round, against
   the sum of killall's own rusage, both extrapolated to 24 h, and their ratio (target <= 1).
   The watcher runs in a network namespace joined by a veth to a peer that holds the VIP,
   and probes it with ARP every 5 s (``probe_interval``), as on a BACKUP node.
2. Fault to file: from haproxy SIGKILLed / a frontend disabled / haproxy SIGSTOPped until the
   track file says 1, each several times (target <= interval + timeout + 0.2 s).
3. Memory: VmRSS of a watcher running many rounds back to back (a long day compressed:
   interval 0.01), sampled along the way.

    sudo .venv/bin/python benchmarks/bench_watch.py [--window 120] [--faults 5] [--rounds 20000]
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
print = functools.partial(print, flush=True)  # progress shows as it comes
sys.path.insert(0, str(REPO))

from tests.haproxy_helpers import Haproxy, Namespace, runtime_api, wait_for  # noqa: E402
from tests.pair_net import VIP, Pair  # noqa: E402
from tests.watch_helpers import Watch, kill_all  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
DAY = 86_400.0
TIMEOUT = 1.0  # [checks.haproxy] timeout of the watcher under test

# Runs inside the namespace: killall -0 haproxy every 2 s, its own CPU summed from rusage.
KILLALL_DRIVER = """
import os, signal, sys, time
total, runs, start = 0.0, 0, time.monotonic()
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    pid = os.posix_spawnp("killall", ["killall", "-0", "haproxy"], os.environ)
    _, _, usage = os.wait4(pid, 0)
    total += usage.ru_utime + usage.ru_stime
    runs += 1
    time.sleep(max(0.0, start + runs * 2.0 - time.monotonic()))
print(f"{total} {runs} {time.monotonic() - start}", flush=True)
"""


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU of ``pid`` (host pid) in seconds: (main thread, everything). Threads' run time comes
    from schedstat (nanoseconds, where utime+stime count 10 ms ticks); reaped children's
    cutime + cstime are added to the total."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(fields[i]) for i in (13, 14)) / TICK
    main = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            ran = int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):  # a thread that just ended
            continue
        total += ran
        main += ran if int(task) == pid else 0.0
    return main, total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rounds(watch: Watch) -> int:
    for line in watch.metrics.read_text().splitlines():
        if line.startswith("ha_notify_watch_rounds_total{"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def stop_driver(proc: subprocess.Popen[str], in_ns: bool) -> tuple[float, float, float]:
    """SIGTERM the driver (nsenter's child when in the namespace); its (cpu, runs, seconds)."""
    pids = [proc.pid]
    if in_ns:
        pids = [
            int(k) for k in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    total, runs, elapsed = (float(x) for x in out.split())
    return total, runs, elapsed


class InNetwork:
    """``ns`` (pid + mount) with the network namespace ``netns`` on top, for Watch."""

    def __init__(self, ns: Namespace, netns: str) -> None:
        self.ns, self.netns = ns, netns

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
        # The network first: the pid namespace's mount namespace predates /run/netns/<name>.
        net = ["nsenter", f"--net=/run/netns/{self.netns}", "--"]
        return subprocess.Popen([*net, *self.ns.command(*argv)], text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def pair_series(watch: Watch) -> list[str]:
    text = watch.metrics.read_text() if watch.metrics.exists() else ""
    return [ln for ln in text.splitlines() if ln.startswith(("ha_notify_split", "ha_notify_vip_"))]


def cpu_per_day(ns: Namespace, tmp: Path, proxy: Haproxy, window: float, shm: Path) -> None:
    pair = Pair()
    pair.a.hold()  # the MASTER; the watcher runs on b and probes the VIP every 5 s
    extra = {"general": {"virtual_addresses": [VIP]}, "watch": {"probe_interval": 5.0}}
    watch = Watch(
        InNetwork(ns, pair.b.ns),  # type: ignore[arg-type]
        tmp / "cpu",
        proxy,
        interval=1.0,
        timeout=TIMEOUT,
        track_dir=shm / "cpu",
        extra=extra,
    )
    watch.start()
    # killall as keepalived runs it: on this host's process list (what a real node scans), and
    # in the namespace (a handful of processes: killall's floor).
    host = subprocess.Popen(
        [sys.executable, "-c", KILLALL_DRIVER], stdout=subprocess.PIPE, text=True
    )
    inner = ns.popen(sys.executable, "-c", KILLALL_DRIVER, stdout=subprocess.PIPE)
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    try:
        watch.wait_value("0\n", "a healthy verdict")
        watch.next_rounds(3)  # warm-up: imports done, sockets and caches made
        pid = watch.pid()
        assert pid is not None
        (main0, before), start, first = cpu_seconds(pid), time.monotonic(), rounds(watch)
        time.sleep(window)
        main1, after = cpu_seconds(pid)
        used, rounds_cpu, elapsed = after - before, main1 - main0, time.monotonic() - start
        done = max(rounds(watch) - first, 1)
    finally:
        host_cpu = stop_driver(host, in_ns=False)
        ns_cpu = stop_driver(inner, in_ns=True)
        series = pair_series(watch)
        watch.stop()
        pair.close()
    w_day = used / elapsed * DAY
    print(f"CPU over {elapsed:.0f} s, the same window (watcher: schedstat; killall: rusage):")
    print(
        f"  ha-notify watch --deep, interval 1, ARP probe every 5 s   ~{done} rounds, "
        f"{used:.3f} s CPU ({used / done * 1e6:.0f} us/round, {used / elapsed * 1000:.2f} ms/s)"
        f"  -> {w_day:7.1f} s/day"
    )
    print(
        f"    of which the rounds (main thread) {rounds_cpu / done * 1e6:.0f} us/round, the pair "
        f"probe thread and children {(used - rounds_cpu) / done * 1e6:.0f} us/round"
    )
    print(f"  pair series at the end: {'; '.join(series) or 'NONE (the probe did not run)'}")
    for label, (total, runs, took) in (
        (f"killall -0 every 2 s, host ({processes} processes)", host_cpu),
        ("killall -0 every 2 s, in the namespace", ns_cpu),
    ):
        day = total / took * DAY
        print(
            f"  {label:<44} {runs:.0f} runs, {total:.2f} s CPU "
            f"({total / max(runs, 1) * 1000:.2f} ms/run)  -> {day:7.1f} s/day; "
            f"watch/killall {w_day / day:.2f}x (target <= 1)"
        )


def fault_latency(ns: Namespace, tmp: Path, proxy: Haproxy, count: int, shm: Path) -> None:
    watch = Watch(ns, tmp / "lat", proxy, interval=1.0, timeout=TIMEOUT, track_dir=shm / "lat")
    watch.start()
    target = 1.0 + TIMEOUT + 0.2
    print(
        f"fault -> track file says 1 (interval 1, timeout {TIMEOUT:g}; target <= {target:.1f} s):"
    )
    try:
        for name in ("killed", "frontend disabled", "SIGSTOPped"):
            times = []
            for _ in range(count):
                watch.wait_value("0\n", "healthy")
                watch.next_rounds(1)
                time.sleep((hash(time.time()) % 1000) / 1000)  # a random phase in the round
                start = time.monotonic()
                if name == "killed":
                    kill_all(ns, proxy, signal.SIGKILL)
                elif name == "frontend disabled":
                    runtime_api(proxy.sock, "disable frontend fe_http")
                else:
                    kill_all(ns, proxy, signal.SIGSTOP)
                wait_for(lambda: watch.value() == "1\n", "the unhealthy verdict", limit=30)
                times.append(time.monotonic() - start)
                if name == "killed":
                    wait_for(lambda: all(ns.state(p) is None for p in proxy.pids()), "haproxy gone")
                    proxy.start()
                elif name == "frontend disabled":
                    runtime_api(proxy.sock, "enable frontend fe_http")
                else:
                    kill_all(ns, proxy, signal.SIGCONT)
            verdict = "ok" if max(times) <= target else "ABOVE TARGET"
            print(
                f"  {name:<18} median {statistics.median(times):.3f} s  "
                f"max {max(times):.3f} s  {verdict}"
            )
    finally:
        watch.stop()


def memory(ns: Namespace, tmp: Path, proxy: Haproxy, total: int, shm: Path) -> None:
    watch = Watch(ns, tmp / "mem", proxy, interval=0.01, timeout=TIMEOUT, track_dir=shm / "mem")
    watch.start()
    try:
        try:
            watch.wait_value("0\n", "healthy")
        except AssertionError:
            print(watch.log_text(), file=sys.stderr)
            raise
        pid = watch.pid()
        assert pid is not None
        samples: list[tuple[int, int]] = []
        step = max(total // 10, 1)
        while True:
            done = rounds(watch)
            samples.append((done, rss_kib(pid)))
            if done >= total:
                break
            wait_for(
                lambda done=done: rounds(watch) >= min(done + step, total), "rounds", limit=3600
            )
    finally:
        watch.stop()
    print(
        f"memory over {samples[-1][0]} rounds "
        f"(= {samples[-1][0] / 3600:.1f} h at interval 1), VmRSS:"
    )
    print("  " + "  ".join(f"{r}:{kib / 1024:.1f}M" for r, kib in samples))
    after_warmup = samples[1][1]
    growth = samples[-1][1] - after_warmup
    print(
        f"  growth after the first {samples[1][0]} rounds: {growth} KiB "
        f"({growth * 1024 / max(samples[-1][0] - samples[1][0], 1):.2f} bytes/round)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=120.0, help="CPU window, seconds")
    parser.add_argument("--faults", type=int, default=5, help="runs per fault kind")
    parser.add_argument("--rounds", type=int, default=20000, help="rounds for the memory run")
    parser.add_argument("--only", choices=("cpu", "faults", "memory"), help="run one part")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (pid namespaces, haproxy)", file=sys.stderr)
        return 2
    ns = Namespace()
    try:
        # The track file on tmpfs, as /run is on a real node; the metrics file on disk, as
        # Debian's /var/lib/prometheus/node-exporter is.
        with (
            tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp_name,
            tempfile.TemporaryDirectory(prefix="bench-watch-", dir="/dev/shm") as shm_name,
        ):
            tmp, shm = Path(tmp_name), Path(shm_name)
            proxy = Haproxy(ns, tmp, master_worker=True).start()
            for sub in ("cpu", "lat", "mem"):
                (tmp / sub).mkdir()
            try:
                if args.only in (None, "cpu"):
                    cpu_per_day(ns, tmp, proxy, args.window, shm)
                if args.only in (None, "faults"):
                    fault_latency(ns, tmp, proxy, args.faults, shm)
                if args.only in (None, "memory"):
                    memory(ns, tmp, proxy, args.rounds, shm)
            finally:
                proxy.close()
    finally:
        ns.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
