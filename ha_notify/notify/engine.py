"""The notify path: record the state, spool the event, deliver within the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, TypeVar

from ha_notify import aio
from ha_notify.channels import Context, build
from ha_notify.config import Config
from ha_notify.errors import Backlog, ConfigError, LockBusy, SpoolError
from ha_notify.event import STABLE, Event, Node
from ha_notify.notify import direct, dispatch, node
from ha_notify.notify.delivery import Delivery
from ha_notify.notify.dispatch import Built, Outcome
from ha_notify.notify.inbox import QUEUED, Inbox, adopt, backlogged, started_at
from ha_notify.notify.render import Renderer
from ha_notify.notify.report import (
    ChannelResult,
    NotifyReport,
    verdict,
)
from ha_notify.notify.spool import Spool
from ha_notify.notify.store import SUPPRESSED, Recorded, Settled, StateStore
from ha_notify.notify.summary import haproxy_summary

log = logging.getLogger(__name__)
T = TypeVar("T")
# Seconds kept back from the deadline for what follows a cut-short delivery (recording the
# attempts, closing sockets, exiting): 50 runs at once on 2 cores still end in time.
CLEANUP = 0.25
# Seconds a delivery cut by the deadline after handing its message over may still wait for
# the server's answer (aio.committed): cut there, it would be sent again, a duplicate. It ends
# by deadline + 0.5 s, inside the hard limit of deadline + 1 s.
GRACE = CLEANUP + 0.5
# Seconds kept back from the deadline, when waiting for the state lock, to write the event
# to the inbox instead (fsync included) and exit in time.
INBOX_RESERVE = 0.5
LOCK_MIN = 0.2  # a run whose deadline is already gone still tries the lock this long


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends: keepalived may SIGTERM a notify script,
    and by then the event must be in the spool. A signal that came meanwhile acts after."""
    deferred = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, deferred)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass(frozen=True)
class StateChange:
    """One state change as keepalived (or a person) reported it."""

    state: str
    name: str
    kind: str = "INSTANCE"
    priority: Optional[int] = None


class Spooled(NamedTuple):
    """What record() did: this event's deliveries, notes for the operator, and whether the
    event went to the inbox (numbered and sent by the next holder of the state lock)."""

    deliveries: list[Delivery]
    notes: tuple[str, ...]
    queued: bool = False


class Notifier:
    """Everything one invocation needs: config, renderer, channels, store and spool."""

    def __init__(self, config: Config, deadline_at: Optional[float] = None) -> None:
        """``deadline_at`` is a ``time.monotonic()`` instant; by default [general] deadline
        seconds after the process started (see aio.command_start). A long-running caller
        (the FIFO reader, the watcher) passes each call its own ``deadline`` instead."""
        self.config = config
        g = config.general
        self.renderer = Renderer(g.language, g.templates_dir)
        self.store = StateStore(g.state_dir, g.flap_threshold, g.flap_window)
        self.spool = Spool(g.state_dir, g.max_age)
        self.inbox = Inbox(g.state_dir, self.spool.quarantine)
        self.store.adopter = self._adopt
        if deadline_at is None:
            deadline_at = aio.command_start() + config.general.deadline
        self.deadline_at = deadline_at
        self._channels: Optional[dict[str, Built]] = None
        self.cut_by = ""  # what cut the last run() short: "SIGTERM", "the deadline", or ""

    @property
    def channels(self) -> dict[str, Built]:
        """Every configured channel, built once; one that fails to build is reported, kept."""
        if self._channels is None:
            context = Context(self.renderer, self.config.general)
            built: dict[str, Built] = {}
            for cfg in self.config.channels:
                try:
                    built[cfg.name] = build(cfg, context)
                except ConfigError as exc:
                    log.error("channel %s cannot be used: %s", cfg.name, exc)
                    built[cfg.name] = exc
            self._channels = built
        return self._channels

    def remaining(self, deadline: Optional[float] = None) -> float:
        """Seconds left before ``deadline`` (default: this run's), negative once passed."""
        return (self.deadline_at if deadline is None else deadline) - time.monotonic()

    def lock_wait(self, deadline: Optional[float] = None) -> float:
        """How long to wait for the state lock: until shortly before the deadline, keeping
        time to queue the event in the inbox instead (the deadline is hard)."""
        return max(self.remaining(deadline) - INBOX_RESERVE, LOCK_MIN)

    def _adopt(self, data: dict[str, Any], until: Optional[float], upto: Optional[float]) -> bool:
        """Under the state lock: number the events queued in the inbox (see inbox.py)."""
        if self.inbox.empty():
            return True

        def settled(s: Settled, event: Event) -> Event:
            return self._spool_settled(s, event.node, event.haproxy)

        return adopt(self.inbox, self.store, self.spool, data, self.wanted, settled, until, upto)

    def adopt(self, deadline: Optional[float] = None) -> None:
        """Number what waits in the inbox now (flush, the FIFO reader's housekeeping); if
        another process holds the state lock, it does."""
        if not self.inbox.empty() and not self.store.adopt(self.lock_wait(deadline)):
            log.info("state lock busy: its holder numbers the queued events")

    def node(self) -> Node:
        g = self.config.general
        return node.gather(g.virtual_addresses, g.state_dir if g.state_dir.is_dir() else None)

    def make_event(self, req: StateChange, facts: Optional[Node] = None, **fields: Any) -> Event:
        """An event for ``req``; node facts and the haproxy summary are gathered unless given."""
        g = self.config.general
        if "haproxy" not in fields:
            fields["haproxy"] = haproxy_summary(self.config.checks)
        return Event(
            state=req.state,
            name=req.name,
            kind=req.kind,
            priority=req.priority,
            cluster=g.cluster,
            node=facts or self.node(),
            virtual_addresses=g.virtual_addresses,
            **fields,
        )

    def preview(self, req: StateChange) -> Event:
        """The event ``req`` would make now (previous state, next number), recording nothing."""
        entry = self._entry(req)
        return self.make_event(req, previous=entry.get("state"), seq=int(entry.get("seq", 0)) + 1)

    def _entry(self, req: StateChange) -> dict[str, Any]:
        key = f"{req.kind}:{req.name}"
        try:
            entry = dict(self.store.snapshot().get(key, {}))
            newest = self.spool.latest(key)
        except OSError:
            return {}
        if newest is not None and newest.seq > int(entry.get("seq", 0)):
            entry.update(state=newest.state, seq=newest.seq)
        return entry

    def folded(self, req: StateChange) -> str:
        """Why ``req`` would send no message of its own now ("" if it would be sent)."""
        if self.store.decide(self._entry(req), req.state, time.time()) != SUPPRESSED:
            return ""
        return (
            f"{req.kind}:{req.name} is flapping: this {req.state.upper()} would be folded into "
            "the flapping summary (sent when the instance is stable again), not sent on its own"
        )

    def wanted(self, event: Event) -> list[str]:
        """The channels whose ``states`` filter lets this event through (tests go to all; a
        pair alert is matched by its kind)."""
        return [c.name for c in self.config.channels if event.is_test or c.wants(event.filter_key)]

    def run(
        self,
        coro: Awaitable[T],
        on_signal: Optional[Callable[[int], None]] = None,
        deadline: Optional[float] = None,
    ) -> Optional[T]:
        """Run ``coro`` within what is left of ``deadline`` (a ``time.monotonic()`` instant,
        default: this run's); SIGTERM cancels it cleanly.

        Returns None when the deadline or a signal cut it short: what was not sent is in
        the spool already.
        """
        left = self.remaining(deadline) - CLEANUP
        self.cut_by = ""
        if left <= 0:
            if asyncio.iscoroutine(coro):
                coro.close()
            log.warning("deadline reached: nothing more is tried in this run")
            self.cut_by = "the deadline"
            return None
        heard: list[int] = []

        def hear(sig: int) -> None:
            heard.append(sig)
            if on_signal is not None:
                on_signal(sig)

        result = aio.run_bounded(coro, left, hear, GRACE)
        if result is None:
            self.cut_by = signal.Signals(heard[0]).name if heard else "the deadline"
        return result

    def _spool_settled(self, s: Settled, facts: Node, summary: tuple[str, ...]) -> Event:
        kind, _, name = s.key.partition(":")
        event = self.make_event(
            StateChange(s.state, name, kind),
            facts,
            seq=s.seq,
            subject=STABLE,
            transitions=s.transitions,
            haproxy=summary,
        )
        self.spool.add(event, self.wanted(event))
        log.warning("%s is stable again in state %s", s.key, s.state.upper())
        return event

    def settle_flapping(self, deadline: Optional[float] = None) -> list[Event]:
        """Spool a "stable again" event for every instance whose flapping has ended."""
        if not self.store.any_flapping():
            return []
        facts = self.node()
        summary = haproxy_summary(self.config.checks)
        return self.store.settle(
            lambda s: self._spool_settled(s, facts, summary), timeout=self.lock_wait(deadline)
        )

    def record(
        self, req: StateChange, deadline: Optional[float] = None, upto: Optional[float] = None
    ) -> Spooled:
        """Record the state and spool its deliveries (nothing is sent yet); fast, in order.
        If the state lock cannot be had in time, the event is queued in the inbox instead.
        ``upto``: when the process reporting it started (wall clock), so inbox events of later
        processes are numbered after it. Raises SpoolError when neither the spool nor the
        inbox can be written."""
        key = f"{req.kind}:{req.name}"
        facts = self.node()  # gathered before taking the state lock
        summary = haproxy_summary(self.config.checks)

        def spool_it(rec: Recorded) -> list[Delivery]:
            if not self.config.channels or rec.subject == SUPPRESSED:
                return []
            event = self.make_event(
                req,
                facts,
                previous=rec.previous,
                seq=rec.seq,
                subject=rec.subject,
                transitions=rec.transitions,
                haproxy=summary,
            )
            return self.spool.add(event, self.wanted(event))

        try:
            rec, mine = self.store.record(
                key,
                req.state,
                spool_it,
                timeout=self.lock_wait(deadline),
                latest=self.spool.latest,
                on_settled=lambda s: self._spool_settled(s, facts, summary),
                upto=upto,
            )
        except LockBusy as exc:
            return self._queue(self.make_event(req, facts, haproxy=summary), exc)
        level = logging.WARNING if req.state in ("fault", "stop") else logging.INFO
        log.log(
            level,
            "%s %s: %s -> %s (priority %s, #%d)",
            req.kind,
            req.name,
            (rec.previous or "unknown").upper(),
            req.state.upper(),
            "-" if req.priority is None else req.priority,
            rec.seq,
        )
        notes = [rec.warning] if rec.warning else []
        if not self.config.channels:
            notes.append(
                f"recorded {key} {req.state.upper()} (#{rec.seq}); no channel is "
                f"configured (config: {self.config.path or 'none found'})"
            )
        elif rec.subject == SUPPRESSED:
            log.warning("%s is flapping: %s recorded, summarised when stable", key, req.state)
        self.settle_flapping(deadline)
        return Spooled(mine, tuple(notes))

    def _queue(self, event: Event, busy: LockBusy) -> Spooled:
        """The state lock was busy too long: queue ``event`` (unnumbered) in the inbox."""
        try:
            path = self.inbox.put(event)
        except OSError as exc:
            raise SpoolError(f"{busy}, and the inbox could not be written: {exc}") from exc
        what = f"{event.kind} {event.name} {event.filter_key.upper()}"
        said = backlogged(busy.waiting) if isinstance(busy, Backlog) else QUEUED
        log.warning("%s: %s (%s; event %s in %s)", what, said, busy, event.id, path.parent)
        return Spooled([], (f"{what}: {said} ({busy})",), queued=True)

    def spool_alert(self, event: Event, deadline: Optional[float] = None) -> list[Delivery]:
        """Spool an event that is not a state change (a pair alert) for every channel that
        wants its kind, numbered after the newest event of its key; nothing is sent yet."""
        wanted = self.wanted(event)
        if not wanted:
            return []

        def spool_it(seq: int) -> list[Delivery]:
            return self.spool.add(dataclasses.replace(event, seq=seq), wanted)

        wait = self.lock_wait(deadline)
        try:
            return self.store.numbered(event.key, spool_it, self.spool.latest, wait)
        except LockBusy as exc:  # like a notify: queued, numbered by the next lock holder
            self._queue(event, exc)
            return []

    def deliver(
        self,
        groups: set[tuple[str, str]],
        deadline: Optional[float] = None,
        on_signal: Optional[Callable[[int], None]] = None,
    ) -> Outcome:
        """Send the deliveries of ``groups`` (channel, key) now, with what is queued before
        them in order, and what else is due, within ``deadline``; the rest stays spooled."""
        outcome = Outcome()
        flush = dispatch.flush(self.spool, self.channels, outcome, due_only=True, mine=groups)
        if self.run(flush, on_signal, deadline) is None:
            direct.stopped(self, outcome, groups)
        return outcome

    def notify(self, req: StateChange, deadline: Optional[float] = None) -> NotifyReport:
        """Record, spool, deliver: the whole of ``ha-notify master`` and friends."""
        # SIGTERM waits until the event is on disk; run() then turns it into a clean stop.
        with signals_deferred():
            try:
                mine, notes, queued = self.record(req, deadline, started_at())
            except SpoolError as exc:
                return self.send_without_spool(req, exc, deadline)
            outcome = Outcome()
            if queued:  # the lock's holder is busy sending; it numbers and sends this one
                return NotifyReport((), notes)
            if self.config.channels:
                # This event's groups go at once (with what is queued before it, in order);
                # other pending deliveries only when their backoff is over.
                outcome = self.deliver({d.group for d in mine}, deadline)
            left = self.remaining(deadline) - CLEANUP
            return NotifyReport(verdict(mine, outcome, self.channels, left), notes)

    def send_without_spool(
        self, req: StateChange, exc: SpoolError, deadline: Optional[float] = None
    ) -> NotifyReport:
        """The event could not be spooled: try each channel once, directly (see direct.py)."""
        return direct.send_without_spool(self, req, exc, deadline)

    def flush(
        self, *, due_only: bool = False, retry_dead: bool = False, deadline: Optional[float] = None
    ) -> Outcome:
        if retry_dead:
            log.warning("moved %d dead deliveries back to pending", self.spool.revive())
        self.adopt(deadline)
        self.settle_flapping(deadline)
        outcome = Outcome()
        flush = dispatch.flush(self.spool, self.channels, outcome, due_only=due_only)
        if self.run(flush, None, deadline) is None:
            direct.stopped(self, outcome, None)
        return outcome

    def test(
        self, channel: Optional[str], deadline: Optional[float] = None
    ) -> tuple[ChannelResult, ...]:
        """A marked test message through one channel or all (see direct.py)."""
        return direct.test(self, channel, deadline)
