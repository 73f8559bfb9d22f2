"""The watcher's rounds, its signals and its ``--once`` mode.

Signals are blocked and taken with ``sigtimedwait`` between rounds, so a round is never cut
in half: SIGTERM/SIGINT end the loop after the current round (exit 0), SIGHUP reloads the
config (a broken new config is logged and the old one kept). The track file is not touched
on exit: a ``systemctl restart`` must not fail the node over, and a watcher that stays dead
is caught by keepalived's ``vrrp_track_process`` on it (see the reference config).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Iterable
from time import monotonic, time
from typing import Callable, Optional

from ha_notify.checks import CheckResult
from ha_notify.config import Config, load
from ha_notify.errors import ExitCode, HaNotifyError
from ha_notify.watch import vips as vips_mod
from ha_notify.watch.feed import FifoFeed
from ha_notify.watch.health import HaproxyHealth
from ha_notify.watch.metrics import MetricsFile, NodeMetrics
from ha_notify.watch.pairwatch import PairWatch
from ha_notify.watch.probe import RoundContext, Sample, WatchProbe
from ha_notify.watch.trackfile import TrackFile
from ha_notify.watch.waker import Waker

log = logging.getLogger(__name__)
# Factories of extra probes (the pair-level ones register here); each gets the config.
PROBES: list[Callable[[Config], WatchProbe]] = []


class Watcher:
    """Everything one config needs for a round; rebuilt whole on SIGHUP."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.health = HaproxyHealth(config.checks, config.path)
        self.vips = tuple(vips_mod.discover(config))
        self.track = TrackFile(config.watch.track_file)
        path = config.watch.metrics_file
        self.metrics_file = MetricsFile(path) if path is not None else None
        channels = config.channels
        self.node = NodeMetrics(config.general.state_dir, (c.name for c in channels), channels)
        self.probes: list[WatchProbe] = [self.health, self.node, *(make(config) for make in PROBES)]
        # Split brain, unserved, not serving: on its own thread, started by serve().
        self.pair = PairWatch(config, self.health) if self.vips else None
        if self.pair is not None:
            self.probes.append(self.pair)
        self.extra: list[WatchProbe] = []  # added with add_probe: kept across a reload
        self.cluster = config.general.cluster
        self.hostname = socket.gethostname()
        self.feed: Optional[FifoFeed] = None
        self._held_trouble = ""
        self._probe_trouble: dict[int, str] = {}

    def add_probe(self, probe: WatchProbe) -> None:
        self.extra.append(probe)
        self.probes.append(probe)

    def round(self) -> CheckResult:
        """Check, publish the verdict, run the probes, write the metrics."""
        verdict = self.health.run()
        self.track.publish(verdict.healthy)
        ctx = RoundContext(
            now=monotonic(),
            wall=time(),
            vips=self.vips,
            held=self._held(),
            verdict=verdict,
            vrrp=self.node.refresh(),
            fifo_lines=self.feed.take() if self.feed is not None else (),
        )
        for probe in self.probes:
            try:
                probe.round(ctx)
                self._probe_ok(probe)
            except Exception as exc:  # one broken probe must not stop health publishing
                self._probe_failed(probe, exc)
        if self.metrics_file is not None:
            try:
                self.metrics_file.publish(self._samples(), self.cluster, self.hostname)
                self._probe_ok(self.metrics_file)
            except Exception as exc:  # a probe's odd sample must not stop the rounds
                self._probe_failed(self.metrics_file, exc)
        return verdict

    def _samples(self) -> Iterable[Sample]:
        for probe in self.probes:
            try:
                yield from list(probe.metrics())
            except Exception as exc:
                self._probe_failed(probe, exc)

    def _held(self) -> frozenset[str]:
        try:
            held = frozenset(vips_mod.held(self.vips))
        except OSError as exc:
            if not self._held_trouble:
                log.error("cannot list this node's addresses (netlink): %s; retrying", exc)
            self._held_trouble = str(exc)
            return frozenset()
        if self._held_trouble:
            log.warning("listing this node's addresses works again")
            self._held_trouble = ""
        return held

    def _probe_failed(self, probe: object, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self._probe_trouble.get(id(probe)) != message:
            log.error("watch probe %s failed: %s", type(probe).__name__, message, exc_info=exc)
            self._probe_trouble[id(probe)] = message

    def _probe_ok(self, probe: object) -> None:
        if self._probe_trouble.pop(id(probe), None) is not None:
            log.warning("watch probe %s works again", type(probe).__name__)


def serve(config_path: Optional[str]) -> int:
    """Run rounds until SIGTERM/SIGINT; SIGHUP reloads. Config errors raise (exit 2)."""
    waker = Waker()
    waker.install()
    watcher = Watcher(load(config_path))
    fifo_path = watcher.config.watch.fifo
    if fifo_path is not None:
        watcher.feed = FifoFeed(fifo_path, watcher.config)
        watcher.feed.start(watcher.config.general.state_dir)
    if watcher.pair is not None:
        watcher.pair.start()
    log.info(
        "watching haproxy every %gs%s; track_file %s; metrics %s; %d virtual address(es)%s",
        watcher.config.watch.interval,
        " (deep)" if watcher.health.deep else "",
        watcher.track.path,
        watcher.metrics_file.path if watcher.metrics_file else "off",
        len(watcher.vips),
        _pair_words(watcher),
    )
    due = monotonic()
    while True:
        watcher.round()
        waker.follow(watcher.health.pidfile)
        interval = watcher.config.watch.interval
        now = monotonic()
        due += interval
        if due < now:  # a slow round (a hung socket): start again from now, no catch-up burst
            due = now + interval
        signum = waker.wait(due - monotonic())
        if signum is None:
            # Time is up, or a haproxy process exited: a round now, the schedule from here.
            due = monotonic()
            continue
        if signum != signal.SIGHUP:
            log.info("signal %d: watcher stopped", signum)
            return ExitCode.OK
        watcher = _reload(watcher, config_path)
        due = monotonic()


def _reload(old: Watcher, config_path: Optional[str]) -> Watcher:
    try:
        new = Watcher(load(config_path))
    except (HaNotifyError, OSError) as exc:
        log.error("SIGHUP: the new config is not used (%s); going on with the old one", exc)
        return old
    new.feed = old.feed
    if new.feed is not None:
        if new.config.watch.fifo != old.config.watch.fifo:
            log.warning("SIGHUP: [watch] fifo changed; restart the watcher to read the new FIFO")
        new.feed.reconfigure(new.config)
    for probe in old.extra:
        new.add_probe(probe)
    if old.pair is not None:
        if new.pair is not None:
            new.pair.take_over(old.pair)
        else:
            old.pair.stop()
    if new.pair is not None:
        new.pair.start()
    new.node.rounds = old.node.rounds  # a counter: no reset on reload
    log.info("SIGHUP: config reloaded from %s", new.config.path or "defaults")
    return new


def _pair_words(watcher: Watcher) -> str:
    """How the VIPs are probed, for the start-up line."""
    if watcher.pair is None:
        return "; no pair probe (no virtual address known)"
    blind = [v.address for v in watcher.vips if not v.interface]
    w = watcher.config.watch
    text = f"; ARP probe every {w.probe_interval:g}s, unserved after {w.unserved_after:g}s"
    if blind:
        text += f" (no interface known for {', '.join(blind)}: not probed; set keepalived_config)"
    return text


def once(config_path: Optional[str]) -> int:
    """One round, the verdicts on stdout: exit 0 healthy, 1 unhealthy (like ``check``)."""
    watcher = Watcher(load(config_path))
    verdict = watcher.round()
    out = sys.stdout
    out.write(f"check haproxy: {'healthy' if verdict.healthy else 'unhealthy'}: {verdict.reason}\n")
    written = "written" if not watcher.track.trouble else f"NOT written ({watcher.track.trouble})"
    out.write(f"track_file {watcher.track.path}: {0 if verdict.healthy else 1} {written}\n")
    ctx_held = watcher.node.ctx.held if watcher.node.ctx is not None else frozenset()
    for vip in watcher.vips:
        where = f" on {vip.interface}" if vip.interface else ""
        state = "held here" if vip.address in ctx_held else "not held here"
        out.write(f"vip {vip.address}{where}: {state}\n")
    for name, vrrp in sorted(watcher.node.vrrp.items()):
        out.write(f"vrrp {name}: {vrrp.state.upper()}\n")
    if watcher.metrics_file is not None:
        trouble = watcher.metrics_file.trouble
        written = f"NOT written ({trouble})" if trouble else "written"
        out.write(f"metrics_file {watcher.metrics_file.path}: {written}\n")
    return ExitCode.OK if verdict.healthy else ExitCode.FAILED
