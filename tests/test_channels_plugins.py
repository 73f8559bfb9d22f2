"""Channels as plugins: fan-out, third-party entry points, broken plugins, the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from ha_notify.config import load
from ha_notify.notify.engine import Notifier, StateChange
from tests.conftest import WriteConfig, run_bin
from tests.http_recorder import Answer, Recorder, server_fixture  # noqa: F401

PLUGIN = '''
"""A third-party ha-notify channel, written as a plugin author would."""
import asyncio
import json
import urllib.request


class EchoChannel:
    def __init__(self, config, context):
        self.name = config.name
        self.url = config.options.get_str("url")
        self.renderer = context.renderer

    async def send(self, event):
        body = json.dumps({"plugin": "echo", "state": event.state, "subject": event.subject})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: urllib.request.urlopen(request, timeout=5).read())
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A site folder holding an installed package with two ha_notify.channels entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "hanotify_echo.py").write_text(textwrap.dedent(PLUGIN))
    (site / "hanotify_broken.py").write_text("import does_not_exist_anywhere  # noqa\n")
    info = site / "hanotify_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hanotify-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[ha_notify.channels]\n"
        "echo = hanotify_echo:EchoChannel\n"
        "broken = hanotify_broken:BrokenChannel\n"
    )
    return site


def three(server: Recorder) -> dict[str, dict[str, Any]]:
    return {
        "hook": {"type": "webhook", "url": server.url("/a")},
        "slack": {"type": "slack", "url": server.url("/b")},
        "teams": {"type": "teams", "url": server.url("/c")},
    }


@pytest.mark.parametrize("how", ["notify", "test"])
def test_fan_out_is_concurrent(server: Recorder, write_config: WriteConfig, how: str) -> None:
    """Three channels are sent at once: every request arrives before any answer is sent."""
    server.hold(3)
    notifier = Notifier(load(str(write_config(three(server)))))
    if how == "notify":
        assert not notifier.notify(StateChange("master", "VI_1")).failed
    else:
        assert {r.status for r in notifier.test(None)} == {"sent"}
    assert sorted(r.path for r in server.requests) == ["/a", "/b", "/c"]
    assert not server.held_in_vain
    assert max(r.arrived for r in server.requests) <= min(server.answered)


def test_third_party_channel_is_found_and_used(
    server: Recorder, write_config: WriteConfig, plugin_path: Path
) -> None:
    """A channel type declared by another package's entry point delivers the test event."""
    cfg = write_config({"mine": {"type": "echo", "url": server.url("/echo")}})
    result = run_bin(
        "test", "--channel", "mine", "-c", str(cfg), env={"PYTHONPATH": str(plugin_path)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mine: ok"
    (req,) = server.requests
    assert req.json() == {"plugin": "echo", "state": "master", "subject": "test"}


def test_broken_plugin_does_not_stop_the_others(
    server: Recorder, write_config: WriteConfig, plugin_path: Path
) -> None:
    """A plugin that fails to import is reported by name and cause; the rest deliver."""
    cfg = write_config(
        {
            "bad": {"type": "broken"},
            "mine": {"type": "echo", "url": server.url("/echo")},
            "hook": {"type": "webhook", "url": server.url("/hook")},
        }
    )
    env = {"PYTHONPATH": str(plugin_path)}
    result = run_bin("test", "-c", str(cfg), env=env)
    assert result.returncode == 1
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["mine"] == "ok" and lines["hook"] == "ok"
    assert "broken" in lines["bad"] and "does_not_exist_anywhere" in lines["bad"]
    result = run_bin("master", "-c", str(cfg), "-i", "VI_1", env=env)
    assert "bad" in result.stderr and "does_not_exist_anywhere" in result.stderr
    assert sorted(r.path for r in server.requests) == ["/echo", "/echo", "/hook", "/hook"]
    assert server.on("/hook")[-1].json()["state"] == "master"


def test_test_command_prints_each_result(
    server: Recorder, write_config: WriteConfig, cli: Callable[..., Any]
) -> None:
    """`ha-notify test --channel NAME` sends a marked test and prints the outcome."""
    cfg = write_config(three(server))
    result = cli("test", "--channel", "hook", "-c", cfg)
    assert (result.code, result.out.strip()) == (0, "hook: ok")
    body = server.requests[0].json()
    assert body["subject"] == "test" and "TEST" in body["title"]
    server.answer("/b", Answer(500, "rollup_error"))
    result = cli("test", "-c", cfg)
    assert result.code == 1
    assert "slack: FAILED: " in result.out and "HTTP 500" in result.out
    assert "hook: ok" in result.out and "teams: ok" in result.out


def test_render_prints_the_channel_payload(
    server: Recorder, write_config: WriteConfig, cli: Callable[..., Any]
) -> None:
    """`ha-notify render STATE --channel NAME` prints the JSON payload and sends nothing."""
    cfg = write_config(three(server))
    result = cli("render", "fault", "--channel", "teams", "-c", cfg)
    assert result.code == 0, result.err
    header, _, payload = result.out.partition("\n")
    assert header == "===== channel teams (teams) ====="
    assert json.loads(payload)["attachments"][0]["content"]["type"] == "AdaptiveCard"
    assert server.requests == []
