"""The pair probe inside the watcher: split brain, unserved VIP, not serving, on a thread.

:class:`~ha_notify.watch.pair.PairProbe` waits for ARP replies (``arp_wait``), for TCP
connects to VIP:port and spaces gratuitous ARPs; none of that may delay the round that writes
keepalived's track file. So it runs on a thread of its own, every ``[watch] probe_interval``
(sooner to confirm a suspicion), with what the last round saw (VIPs, VRRP states) and the
addresses this node holds read just before each probe (its own netlink socket). The round
only hands over its context and the FIFO's ``MASTER_RX_LOWER_PRI`` lines (which wake the
thread at once) and publishes the last probe's metrics.

Alerts are spooled on the thread (one event per episode start or end, numbered under the state
lock) and delivered by a ``ha-notify flush`` child (:mod:`ha_notify.watch.flusher`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Optional

from ha_notify.errors import HaNotifyError, ProbeError
from ha_notify.event import parse_fifo_signal
from ha_notify.watch import serving
from ha_notify.watch.flusher import Flusher
from ha_notify.watch.pair import Alert, PairProbe, Settings, to_event
from ha_notify.watch.probe import RoundContext, Sample
from ha_notify.watch.vips import AddressTable

if TYPE_CHECKING:
    from ha_notify.config import Config
    from ha_notify.notify.engine import Notifier
    from ha_notify.watch.health import HaproxyHealth

log = logging.getLogger(__name__)


class HaproxyBinds:
    """haproxy's frontend binds, from the haproxy.cfg the health check uses (re-read when a
    file changes): ``[checks.haproxy] haproxy_config``, else the running haproxy's ``-f``,
    else /etc/haproxy/haproxy.cfg."""

    def __init__(self, health: HaproxyHealth) -> None:
        self.health = health
        self._stamp: object = None
        self._binds: list[serving.Bind] = []
        self.trouble = ""

    def paths(self) -> list[str]:
        from ha_notify.checks import haproxy, procfs
        from ha_notify.checks.runner import build_options

        options = build_options(self.health.request, self.health.settings, time.monotonic())
        proc = None
        if self.health.pidfile:
            try:
                with open(self.health.pidfile, "rb") as handle:
                    first = handle.read(64).split()
                proc = procfs.stat(int(first[0])) if first and first[0].isdigit() else None
            except OSError:
                proc = None
        return haproxy.config_paths(options, proc)

    def __call__(self) -> list[serving.Bind]:
        try:
            paths = self.paths()
            stamp = [(p, os.stat(p).st_mtime_ns) for p in paths]
            if stamp != self._stamp:
                self._binds = [b for p in paths for b in serving.binds_from_config(p)]
                self._stamp = stamp
        except (OSError, ProbeError, HaNotifyError) as exc:
            if isinstance(exc, OSError) and exc.strerror:
                message = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
            else:
                message = str(exc)
            if message != self.trouble:
                log.error("not_serving probe: cannot read haproxy's binds: %s", message)
                self.trouble = message
            return self._binds
        self.trouble = ""
        return self._binds


class PairWatch:
    """The watcher's pair probe (Probe protocol); :meth:`start` runs it on its thread."""

    def __init__(self, config: Config, health: HaproxyHealth) -> None:
        w = config.watch
        settings = Settings(
            probe_interval=w.probe_interval,
            unserved_after=w.unserved_after,
            garp_after_split_brain=w.garp_after_split_brain,
        )
        self.config = config
        self.pair = PairProbe(settings, binds=HaproxyBinds(health))
        self.flusher = Flusher(config.path)
        self.table = AddressTable()
        self.notifier: Optional[Notifier] = None
        self.probes = 0  # probes run so far
        self.alerts: list[Alert] = []  # every alert raised (the newest KEEP)
        self._ctx: Optional[RoundContext] = None
        self._signals: list[str] = []
        self._samples: tuple[Sample, ...] = ()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    # Probe protocol: called by the round, never blocks.
    def round(self, ctx: RoundContext) -> None:
        names = []
        for line in ctx.fifo_lines:
            signal = parse_fifo_signal(line)
            if signal is not None and signal.kind == "INSTANCE":
                names.append(signal.name)
        with self._lock:
            first = self._ctx is None
            self._ctx = ctx
            self._signals += names
        if names or first:
            self._wake.set()

    def metrics(self) -> Iterable[Sample]:
        with self._lock:
            return self._samples

    # the thread
    def start(self) -> None:
        self.thread = threading.Thread(target=self._serve, name="pair", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread is not None:
            self.thread.join()
        self.table.close()

    def take_over(self, old: PairWatch) -> None:
        """After SIGHUP: keep the open episodes (an ongoing split brain is not raised twice)."""
        old.stop()
        self.pair.episodes = old.pair.episodes
        self.pair.signals = old.pair.signals
        self.pair.next_probe = old.pair.next_probe
        self.probes = old.probes

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # a bug must not end pair awareness for good
                log.error("pair probe failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            wait = self.pair.next_probe - time.time()
            self._wake.wait(min(max(wait, 0.0), self.pair.settings.probe_interval))
            self._wake.clear()

    def step(self) -> list[Alert]:
        """One probe when due (or signalled): alerts spooled and handed to a flush child."""
        with self._lock:
            ctx, names, self._signals = self._ctx, self._signals, []
        if ctx is None:
            return []
        now = time.time()
        for name in names:
            self.pair.signal(name, now)
        if now < self.pair.next_probe:
            return []
        states = {name: vrrp.state for name, vrrp in ctx.vrrp.items()}
        alerts = self.pair.round(now, ctx.vips, self._held(ctx), states)
        self.probes += 1
        samples = tuple(
            Sample(name, (("vip", vip),), float(value))
            for name, by_vip in self.pair.metrics().items()
            for vip, value in by_vip.items()
        )
        with self._lock:
            self._samples = samples
        if alerts:
            self.alerts = (self.alerts + alerts)[-100:]
            self.send(alerts)
        return alerts

    def _held(self, ctx: RoundContext) -> frozenset[str]:
        """What this node holds now (the round's view may be up to ``interval`` old)."""
        wanted = {vip.address for vip in ctx.vips}
        try:
            return frozenset(wanted & self.table.addresses())
        except OSError:
            return ctx.held

    def send(self, alerts: list[Alert]) -> None:
        """Spool every alert (fast, in-process), then deliver in a flush child."""
        if self.notifier is None:
            from ha_notify.notify.engine import Notifier  # Jinja2 and channels: only once needed

            self.notifier = Notifier(self.config)
        notifier = self.notifier
        deadline = time.monotonic() + self.config.general.deadline
        facts = notifier.node()
        spooled = 0
        for alert in alerts:
            event = to_event(alert, self.config.general.cluster, facts)
            try:
                spooled += len(notifier.spool_alert(event, deadline))
            except (HaNotifyError, OSError) as exc:
                what = f"{alert.kind} alert for {alert.vip.address}"
                log.error("cannot spool the %s: %s", what, exc)
        if spooled or not notifier.inbox.empty():  # flush also numbers queued alerts
            self.flusher.kick()
