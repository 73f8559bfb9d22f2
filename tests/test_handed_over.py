"""A message the server took is never sent twice because the deadline cut its answer."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest

from ha_notify import aio
from tests.conftest import BIN, WriteConfig, mail_channel, run_bin
from tests.http_recorder import Answer, Recorder, Request
from tests.smtp_server import SMTPServer

WAITING = "time is up while a server has a message"


async def handed_over_then(answer: asyncio.Future[str]) -> str:
    with aio.delivering():
        aio.handed_over()
        return await answer


def test_grace_lets_a_handed_over_delivery_end() -> None:
    """Cut while a delivery awaits the answer to its message: it still ends, with its result."""

    async def late_answer() -> str:
        answer = asyncio.get_running_loop().create_future()
        # Due long after the cut (0.05 s): the timers fire in order whatever the load.
        asyncio.get_running_loop().call_later(0.3, answer.set_result, "sent")
        return await handed_over_then(answer)

    assert aio.run_bounded(late_answer(), 0.05, grace=600) == "sent"


def test_grace_is_only_for_handed_over_deliveries(caplog: pytest.LogCaptureFixture) -> None:
    """A delivery that has not handed its message over is cut at the deadline, no grace."""

    async def connecting() -> str:
        with aio.delivering():
            await asyncio.Event().wait()
        return "sent"

    assert aio.run_bounded(connecting(), 0.05, grace=600) is None
    assert WAITING not in caplog.text


def test_grace_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """A server that never answers: the handed-over delivery is cut when the grace is over."""

    async def never() -> str:
        return await handed_over_then(asyncio.get_running_loop().create_future())

    with caplog.at_level(logging.WARNING):
        assert aio.run_bounded(never(), 0.05, grace=0.1) is None
    assert WAITING in caplog.text


def test_quit_fits_in_what_is_left() -> None:
    """time_left() counts down to the final cut inside run_bounded, infinite outside it."""

    async def left() -> float:
        return aio.time_left()

    assert 0 < (aio.run_bounded(left(), 600, grace=1) or 0) <= 601
    assert asyncio.run(left()) == float("inf")


def pending(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "spool" / "pending").glob("*.json"))


def test_answer_after_the_deadline_is_not_sent_twice(
    smtp: SMTPServer, write_config: WriteConfig, tmp_path: Path
) -> None:
    """A relay keeps the mail and answers only once the notify's deadline is up: the notify
    waits for that answer and records it sent; the next flush sends nothing again."""
    gate = smtp.recorder.data_gate = threading.Event()
    cfg = write_config({"mail": mail_channel(smtp.port, timeout=60)}, deadline=4)
    env = {**os.environ, "HA_NOTIFY_SYSLOG": "off", "HA_NOTIFY_LOG_STDERR": "1"}
    lines = []
    with subprocess.Popen(
        [str(BIN), "master", "-c", str(cfg)], stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if WAITING in line:  # the deadline is up and the server holds the mail
                    gate.set()
        finally:
            gate.set()
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert run_bin("flush", "-c", str(cfg)).returncode == 0
    assert list(smtp.recorder.by_message_id().values()) == [1], err
    assert WAITING in err and "delivered INSTANCE:" in err, err
    # The grace let it end: no line may claim that a delivery was left unfinished.
    assert "deliveries not done" not in err and "before every delivery" not in err, err
    assert "stopped by" not in err or "after every delivery had ended" in err, err
    assert pending(tmp_path / "state") == []


def test_no_answer_within_the_grace_says_it_may_arrive_twice(
    smtp: SMTPServer, write_config: WriteConfig, tmp_path: Path
) -> None:
    """A relay that keeps the mail and never answers: the delivery stays pending, and its
    error says the retry may arrive twice, with the same ids (the documented duplicate)."""
    gate = smtp.recorder.data_gate = threading.Event()
    cfg = write_config({"mail": mail_channel(smtp.port, timeout=60)}, deadline=2)
    try:
        proc = run_bin("master", "-c", str(cfg))
    finally:
        gate.set()
    assert proc.returncode == 0, proc.stderr
    files = pending(tmp_path / "state")
    leg = json.loads(files[0].read_text())["channels"]["mail"]
    if smtp.messages:  # a machine so loaded that start-up ate the deadline never got there
        assert "the same Message-ID" in leg["last_error"], leg


def test_webhook_answer_after_the_deadline_is_not_posted_twice(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    """A webhook server reads the whole body and answers only once the notify's deadline is
    up: the notify waits for that answer (the body was sent) and records it; the following
    flush posts nothing again: exactly one request."""
    gate = threading.Event()
    hook = Recorder().start()

    def late(request: Request) -> Answer:
        gate.wait(60)  # a hang guard; the notify's stderr opens the gate
        return Answer(200, b"ok")

    hook.respond("/hook", late)
    channel = {"type": "webhook", "url": hook.url("/hook"), "timeout": 60}
    cfg = write_config({"hook": channel}, deadline=4)
    env = {**os.environ, "HA_NOTIFY_SYSLOG": "off", "HA_NOTIFY_LOG_STDERR": "1"}
    lines = []
    try:
        with subprocess.Popen(
            [str(BIN), "master", "-c", str(cfg)], stderr=subprocess.PIPE, text=True, env=env
        ) as proc:
            try:
                assert proc.stderr is not None
                for line in proc.stderr:
                    lines.append(line)
                    if WAITING in line:  # the deadline is up and the server has the body
                        gate.set()
            finally:
                gate.set()
        err = "".join(lines)
        assert proc.returncode == 0, err
        assert run_bin("flush", "-c", str(cfg)).returncode == 0
        assert len(hook.on("/hook")) == 1, err
    finally:
        hook.stop()
    assert WAITING in err and "delivered INSTANCE:" in err, err
    # The grace let it end: no line may claim that a delivery was left unfinished.
    assert "deliveries not done" not in err and "before every delivery" not in err, err
    assert "stopped by" not in err or "after every delivery had ended" in err, err
    assert pending(tmp_path / "state") == []
