"""Shared fixtures: real SMTP servers, a test CA, config files, and the CLI."""

from __future__ import annotations

import logging
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import trustme

from ha_notify.cli.app import run
from tests.smtp_server import SilentServer, SMTPServer

BIN = Path(sys.executable).parent / "ha-notify"


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the machine's syslog or reads the machine's config."""
    monkeypatch.setenv("HA_NOTIFY_SYSLOG", "off")
    monkeypatch.setenv("HA_NOTIFY_CONFIG", "/nonexistent/ha-notify-test.toml")
    monkeypatch.delenv("HA_NOTIFY_LOG_STDERR", raising=False)


@pytest.fixture(autouse=True)
def _own_logger() -> Iterator[None]:
    """Each test starts with the `ha_notify` logger as it found it: the CLI's setup makes it
    non-propagating, and caplog (on the root logger) then saw nothing in later tests."""
    logger = logging.getLogger("ha_notify")
    propagate, level, handlers = logger.propagate, logger.level, list(logger.handlers)
    ready = logger.__dict__.get("_ha_notify_ready")
    yield
    for added in [h for h in logger.handlers if h not in handlers]:
        added.close()  # a syslog handler the CLI opened on a test's socket
    logger.propagate, logger.level, logger.handlers[:] = propagate, level, handlers
    logger.__dict__.pop("_ha_notify_ready", None)
    if ready is not None:
        logger.__dict__["_ha_notify_ready"] = ready


# Tests that need these cannot run everywhere; a skip of one is a failure under CI=true, and
# the other Python lanes of scripts/test.sh deselect them (-m "not root and not ...").
NEEDS = ("root", "haproxy", "keepalived")
_NEEDS_WORDS = re.compile(r"\b(root|haproxy|keepalived)\b", re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true, a skipped root, haproxy or keepalived test fails the run: a green CI
    that ran none of them proved nothing."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI", "").lower() != "true" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason[len("Skipped: ") :] if reason.startswith("Skipped: ") else reason
    needs = [m for m in NEEDS if item.get_closest_marker(m)]
    word = _NEEDS_WORDS.search(reason)
    if needs or word:
        what = "/".join(needs) if needs else word.group(1).lower()
        report.outcome = "failed"
        report.longrepr = f"CI=true: a {what} test was skipped: {reason}"


# The lab runs: long, and mostly waiting on VRRP timers. They start first so that under xdist
# (scripts/test.sh) the other workers run everything else meanwhile, not after. The fleet lab
# (Prometheus, Alertmanager: the most sensitive to a busy CPU) comes last, once the other
# workers are mostly done: started beside them it once saw a HANotifyBacklog warning.
FIRST = ("test_lab_pair.py", "test_lab_e2e.py", "test_lab_checklist.py", "test_fleet_lab.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lab runs first, in FIRST's order; every other test keeps its order."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadfile, but the lab files are one unit: one lab at a time. Side by side (three
    labs, their keepalived pairs, Prometheus) the fleet lab's Prometheus twice missed its
    90 s start-up target on two loaded cores."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class OneLabAtATime(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            scope = str(super()._split_scope(nodeid))
            return "the lab" if Path(scope).name in FIRST else scope

    return OneLabAtATime(config, log)


@pytest.fixture(scope="session")
def nobody_bin() -> Path:
    """An ha-notify that nobody can run: the checkout itself may be out of its reach."""
    from lab.install import runnable_by

    return runnable_by("nobody", None, print)


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a config file: general keys as kwargs, channels as {name: {key: value}}."""

    def write(channels: dict[str, dict[str, Any]] | None = None, **general: Any) -> Path:
        general.setdefault("state_dir", str(tmp_path / "state"))
        general.setdefault("cluster", "haproxy-test")
        lines = ["[general]"] + [f"{k} = {toml_value(v)}" for k, v in general.items()]
        for name, table in (channels or {}).items():
            lines += ["", f"[channels.{name}]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        path = tmp_path / "config.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    return write


def mail_channel(port: int, **extra: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "keepalived@lb1.example.com",
        "to": ["ops1@example.com", "ops2@example.com"],
    }
    table.update(extra)
    return table


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ha-notify in this process (the real CLI entry, exit code included)."""

    def invoke(*args: str) -> Result:
        umask = os.umask(0o022)  # run() sets umask 077 for itself: keep it out of this process
        os.umask(umask)
        try:
            code = run([str(a) for a in args])
        finally:
            os.umask(umask)
        captured = capsys.readouterr()
        return Result(int(code), captured.out, captured.err)

    return invoke


def run_bin(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a fresh process (timeout guards hangs only)."""
    full_env = {**os.environ, "HA_NOTIFY_SYSLOG": "off", **(env or {})}
    return subprocess.run(
        [str(BIN), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
