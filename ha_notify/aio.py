"""Running the async part of a command within a hard deadline.

``asyncio.run`` waits for the default executor's threads when it finishes, and aiosmtplib
and httpx resolve host names in those threads: a hung resolver would hold a notify long past
its deadline, deaf to SIGTERM. Here every executor job runs in a daemon thread that nobody
waits for, so the deadline is a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
import time
from collections.abc import Awaitable
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")
_started: Optional[float] = None  # monotonic instant the process started (console script)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
    coro: Awaitable[T], timeout: float, on_signal: Optional[Callable[[int], None]] = None
) -> Optional[T]:
    """Run ``coro`` for at most ``timeout`` seconds; SIGTERM/SIGINT cancel it.

    Returns None when the timeout or a signal cut it short. ``on_signal`` also hears about
    the signal (the FIFO reader stops after it). The signal handlers in place before are
    restored afterwards.
    """
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    loop = asyncio.new_event_loop()
    loop.set_default_executor(DaemonExecutor())
    task = loop.create_task(_as_coroutine(coro))

    def interrupted(sig: int) -> None:
        task.cancel()
        if on_signal is not None:
            on_signal(sig)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, interrupted, sig)
    # A caller may hold these signals (until its event was spooled): with the handlers in
    # place they can come now, and one that is already pending cancels at once.
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    try:
        return loop.run_until_complete(asyncio.wait_for(task, timeout))
    except (asyncio.TimeoutError, asyncio.CancelledError):
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        leftovers = asyncio.all_tasks(loop)
        for left in leftovers:
            left.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
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
