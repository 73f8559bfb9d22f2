"""Running the async part of a command within a hard deadline.

``asyncio.run`` waits for the default executor's threads when it finishes, and aiosmtplib
and httpx resolve host names in those threads: a hung resolver would hold a notify long past
its deadline, deaf to SIGTERM. Here every executor job runs in a daemon thread that nobody
waits for, so the deadline is a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import Any, Callable, Optional, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_started: Optional[float] = None  # monotonic instant the process started (console script)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Deliveries past their point of no return (see delivering()), each a future done when the
# delivery and the recording of its outcome have ended.
_committed: set[asyncio.Future[None]] = set()
_delivery: contextvars.ContextVar[Optional[asyncio.Future[None]]] = contextvars.ContextVar(
    "ha_notify_delivery", default=None
)
_ends: dict[asyncio.AbstractEventLoop, float] = {}  # per running loop: when it is cut for good


@contextlib.contextmanager
def delivering() -> Iterator[None]:
    """Wrap one send and the recording of its outcome. Once the channel said handed_over(),
    cutting it would leave the outcome unknown and the delivery would be sent again (a
    duplicate), so run_bounded lets it end, outcome recorded, within its ``grace``."""
    step: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    token = _delivery.set(step)
    try:
        yield
    finally:
        _delivery.reset(token)
        _committed.discard(step)
        step.set_result(None)


def time_left() -> float:
    """Seconds before run_bounded cuts the running loop for good (its grace included);
    infinite outside run_bounded. For courtesies (SMTP QUIT) that must not be cut."""
    end = _ends.get(asyncio.get_running_loop())
    return float("inf") if end is None else end - time.monotonic()


def handed_over() -> None:
    """Said by a channel when the server may now have the message (SMTP: from DATA on)."""
    step = _delivery.get()
    if step is not None and not step.done():
        _committed.add(step)


def was_handed_over() -> bool:
    """Whether the current delivery got past handed_over(): cut now, it may arrive twice."""
    return _delivery.get() in _committed


CANCEL_WAIT = 0.25  # seconds a cut task may take to end once cancelled


async def _bounded(
    task: asyncio.Task[T], timeout: float, grace: float, stop: asyncio.Future[None]
) -> T:
    """``task``'s result; cut (CancelledError) after ``timeout`` or once ``stop`` is done,
    except that a delivery past its point of no return (handed_over) then gets up to
    ``grace`` more seconds to end."""
    loop = asyncio.get_running_loop()
    first: set[asyncio.Future[Any]] = {task, stop}
    await asyncio.wait(first, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    end = _ends[loop] = time.monotonic() + grace
    said = False
    while not task.done():
        steps: set[asyncio.Future[Any]] = {
            s for s in _committed if s.get_loop() is loop and not s.done()
        }
        left = end - time.monotonic()
        if not steps or left <= 0:
            break
        if not said:
            said = True
            log.warning(
                "time is up while a server has a message; waiting up to %.2fs for its answer "
                "so that the message is not sent twice",
                left,
            )
        steps.add(task)
        await asyncio.wait(steps, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
    # A cancellation can be lost: in Python < 3.12, asyncio.wait_for (ours around a channel,
    # aiosmtplib's around each answer) may swallow it when what it waits on completes at
    # that moment, and the send then runs on to its own timeout (a SIGTERM ignored for a
    # minute, seen once under load). Cancel again until the task ends, for a bounded time.
    give_up = time.monotonic() + CANCEL_WAIT
    while not task.done() and time.monotonic() < give_up:
        await asyncio.wait({task}, timeout=0.05)
        if not task.done():
            task.cancel()
    if not task.done():
        raise asyncio.CancelledError
    return await task


class DaemonExecutor(concurrent.futures.ThreadPoolExecutor):
    """One daemon thread per job, never joined (asyncio insists on a ThreadPoolExecutor)."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=work, daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        del wait, cancel_futures  # nothing to wait for, by design


def run_bounded(
    coro: Awaitable[T],
    timeout: float,
    on_signal: Optional[Callable[[int], None]] = None,
    grace: float = 0.0,
) -> Optional[T]:
    """Run ``coro`` for at most ``timeout`` seconds; SIGTERM/SIGINT cancel it.

    A delivery past its point of no return at that moment (handed_over: the server may have
    the message) gets up to ``grace`` seconds more to end and record its outcome, so that a
    message the server took is recorded as sent rather than sent again.

    Returns None when the timeout or a signal cut it short. ``on_signal`` also hears about
    the signal (the FIFO reader stops after it). The signal handlers in place before are
    restored afterwards.
    """
    if set(SIGNALS) & signal.sigpending():
        # Held by the caller (while spooling) and already here: stop before anything
        # starts, or the first step of a send (a connect) would still run.
        info = signal.sigtimedwait(SIGNALS, 0)
        if asyncio.iscoroutine(coro):
            coro.close()
        if info is not None and on_signal is not None:
            on_signal(info.si_signo)
        return None
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    loop = asyncio.new_event_loop()
    loop.set_default_executor(DaemonExecutor())
    _ends[loop] = time.monotonic() + timeout + grace  # until the cut; then set again
    task = loop.create_task(_as_coroutine(coro))
    stop: asyncio.Future[None] = loop.create_future()  # done on SIGTERM/SIGINT

    def interrupted(sig: int) -> None:
        if not stop.done():
            stop.set_result(None)
        if on_signal is not None:
            on_signal(sig)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, interrupted, sig)
    # A caller may hold these signals (until its event was spooled): with the handlers in
    # place they can come now, and one that is already pending cancels at once.
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    try:
        return loop.run_until_complete(_bounded(task, timeout, grace, stop))
    except (asyncio.TimeoutError, asyncio.CancelledError):
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _ends.pop(loop, None)
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        leftovers = asyncio.all_tasks(loop)
        for left in leftovers:
            left.cancel()
        if leftovers:  # bounded: a task that loses its cancellation is abandoned, not awaited
            loop.run_until_complete(asyncio.wait(leftovers, timeout=CANCEL_WAIT))
            for left in leftovers:
                if left.done() and not left.cancelled():
                    left.exception()  # retrieved: its outcome was recorded, or is moot
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def close_now(transport: Optional[asyncio.BaseTransport]) -> None:
    """Close ``transport`` without waiting for the peer; the socket goes on the next turn.

    ``close()`` on a TLS transport only starts the shutdown handshake, which waits for the
    peer's close_notify: an event loop that ends before it arrives (every notify's loop
    does, and a silent server never sends it) leaves the socket open, a leaked descriptor
    and a ResourceWarning. abort() after close() still lets close_notify go if it can.
    """
    if isinstance(transport, asyncio.WriteTransport):  # every socket transport is one
        transport.abort()


def process_age() -> float:
    """Seconds since this process started (``/proc/self/stat`` field 22 vs ``/proc/uptime``).

    A notify's deadline counts from here: interpreter start-up and imports under CPU
    contention are part of what keepalived waits for. 0 where /proc cannot tell.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22; fields[0] is 3
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started)


def anchor_process_start() -> None:
    """Called once by the console script: commands count their deadline from process start."""
    global _started
    _started = time.monotonic() - process_age()


def command_start() -> float:
    """Where a command's deadline counts from: the process start when run as the console
    script, else now (a caller inside a longer-lived process passes its own deadline)."""
    return time.monotonic() if _started is None else _started


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
