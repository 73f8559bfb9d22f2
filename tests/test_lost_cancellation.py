"""A cut delivery ends even when its cancellation is lost: in Python < 3.12 asyncio.wait_for
may swallow a cancel that races with what it waits on, and a SIGTERM was then ignored until
the channel's own timeout (seen once under load, with a relay that never answered)."""

from __future__ import annotations

import asyncio

from ha_notify import aio


def test_a_swallowed_cancel_is_repeated() -> None:
    """The task swallows the first cancel and waits again: the second cancel ends it."""
    stages: list[str] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stages.append("first cancel swallowed")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stages.append("second cancel")
            raise

    assert aio.run_bounded(stubborn(), 0.1) is None
    assert stages == ["first cancel swallowed", "second cancel"]


def test_a_task_that_never_yields_to_cancel_is_abandoned() -> None:
    """A task that swallows every cancel is left behind: run_bounded still returns, cut."""
    swallowed: list[int] = []

    async def deaf() -> None:
        for _ in range(10_000):
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                swallowed.append(1)

    assert aio.run_bounded(deaf(), 0.1) is None
    assert swallowed  # it was cancelled, and kept going: abandoned, not awaited to its end
    assert len(swallowed) < 10_000
