"""A third-party package built here: its channel is listed, rendered, probed and sent through
like a built-in, its check runs like one, and built-in names win over it with a warning."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WriteConfig, run_bin
from tests.http_recorder import Answer, Recorder, server_fixture  # noqa: F401

# The plugin guide's example, verbatim: a channel (with both optional capabilities) and a check.
CHANNEL = '''
"""ha-notify channel "pager": POST a JSON page; 2xx means delivered."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ha_notify.plugin import FAIL, OK, ChannelConfig, ChannelError, Context, Event, ProbeResult


class PagerChannel:
    def __init__(self, config: ChannelConfig, context: Context) -> None:
        t = config.options  # typed getters: a wrong value is a ConfigError naming file and key
        self.name = config.name
        self.renderer = context.renderer
        self.url = t.get_str("url")
        self.priority = t.get_int("priority", 3, minimum=1, maximum=5)
        self.timeout = t.get_float("timeout", 5.0)

    def payload(self, event: Event) -> dict[str, Any]:
        return {
            "title": self.renderer.subject(event),
            "text": self.renderer.render("chat.md", event),
            "priority": self.priority,
        }

    async def send(self, event: Event) -> None:
        """Deliver once or raise ChannelError; the spool retries, never the channel."""
        body = json.dumps(self.payload(event)).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.url, data=body, headers=headers)

        def post() -> None:
            urllib.request.urlopen(request, timeout=self.timeout).close()

        try:
            await asyncio.get_running_loop().run_in_executor(None, post)
        except urllib.error.HTTPError as exc:
            raise ChannelError(
                f"pager answered HTTP {exc.code}", retryable=exc.code >= 500
            ) from exc
        except OSError as exc:
            raise ChannelError(f"pager unreachable: {exc}") from exc

    def preview(self, event: Event) -> str:
        """Preview capability: what `ha-notify render --channel NAME` prints."""
        return json.dumps(self.payload(event), indent=2, ensure_ascii=False)

    async def probe(self) -> list[ProbeResult]:
        """Probe capability: `ha-notify doctor` runs it; a handshake, never a message."""
        parts = urlsplit(self.url)
        where = f"{parts.hostname}:{parts.port or 80}"
        try:
            connect = asyncio.open_connection(parts.hostname, parts.port or 80)
            _, writer = await asyncio.wait_for(connect, self.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            return [ProbeResult(FAIL, f"{where}: cannot connect: {exc}", "check url and firewall")]
        writer.close()
        return [ProbeResult(OK, f"{where}: TCP connection (nothing sent)")]
'''
CHECK = '''
"""ha-notify check "redis": is the server's unix socket there? (a stand-in for a PING)"""

from __future__ import annotations

import os

from ha_notify.checks import CheckOptions, CheckResult  # light: a check runs every few seconds


def check(options: CheckOptions) -> CheckResult:
    """`ha-notify check redis [SOCKET]`; [checks.redis] socket = "..." in the config works too."""
    default = str(options.table.get("socket", "/run/redis/redis.sock"))
    path = options.args[0] if options.args else default
    if os.path.exists(path):
        return CheckResult(True, f"{path} exists")
    return CheckResult(False, f"{path} is missing")
'''
ENTRY_POINTS = """
[ha_notify.channels]
pager = hanotify_pager.channel:PagerChannel
email = hanotify_pager.channel:PagerChannel

[ha_notify.checks]
redis = hanotify_pager.check:check
haproxy = hanotify_pager.check:check
"""


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An installed third-party package (module and dist-info) on PYTHONPATH."""
    site = tmp_path / "site"
    package = site / "hanotify_pager"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "channel.py").write_text(textwrap.dedent(CHANNEL))
    (package / "check.py").write_text(textwrap.dedent(CHECK))
    info = site / "hanotify_pager-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hanotify-pager\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    # The checks' last-result files go to the test's folder, not this machine's /run/ha-notify.
    return {"PYTHONPATH": str(site), "HA_NOTIFY_RUN_DIR": str(tmp_path / "run")}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pager(server: Recorder, **extra: Any) -> dict[str, Any]:
    return {"type": "pager", "url": server.url("/page"), "priority": 5, **extra}


def test_doctor_lists_and_probes_the_plugin(
    server: Recorder, write_config: WriteConfig, plugin_env: dict[str, str], tmp_path: Path
) -> None:
    """doctor lists the plugin's channel type and check, warns about the shadowed built-in
    names, and probes the plugin channel through its Probe capability (ok, and refused)."""
    down = f"http://127.0.0.1:{closed_port()}/page"
    cfg = write_config({"pg": pager(server), "down": {"type": "pager", "url": down}})
    absent = tmp_path / "keepalived.conf"
    result = run_bin(
        "doctor", "-c", str(cfg), "--keepalived-config", str(absent), "--json", env=plugin_env
    )
    found = {f["check"]: f for f in json.loads(result.stdout)}
    assert found["plugin channel type pager"]["status"] == "ok"
    assert found["plugin check redis"]["status"] == "ok"
    for name in ("plugin channel type email", "plugin check haproxy"):
        assert found[name]["status"] == "warn" and "the built-in is used" in found[name]["detail"]
    assert found["channel pg"]["status"] == "ok"
    assert found["channel pg"]["detail"].endswith("TCP connection (nothing sent)")
    assert found["channel down"]["status"] == "fail"
    assert "cannot connect" in found["channel down"]["detail"]
    assert server.requests == []  # a probe sends nothing


def test_render_uses_the_plugin_preview(
    server: Recorder, write_config: WriteConfig, plugin_env: dict[str, str]
) -> None:
    """render --channel prints the plugin's own preview and sends nothing."""
    cfg = write_config({"pg": pager(server)})
    result = run_bin("render", "master", "--channel", "pg", "-c", str(cfg), env=plugin_env)
    assert result.returncode == 0, result.stderr
    header, _, payload = result.stdout.partition("\n")
    assert header == "===== channel pg (pager) ====="
    assert json.loads(payload.split("\nNOTE:")[0])["priority"] == 5
    assert server.requests == []


def test_plugin_channel_is_spooled_and_retried_like_a_builtin(
    server: Recorder, write_config: WriteConfig, plugin_env: dict[str, str]
) -> None:
    """A 503 leaves the event spooled (exit 0); flush delivers the same page once."""
    server.answer("/page", Answer(503), Answer(200))
    cfg = write_config({"pg": pager(server)})
    sent = run_bin("master", "-c", str(cfg), "-i", "VI_1", env=plugin_env)
    assert sent.returncode == 0, sent.stderr
    assert "spooled for retry via pg: pager answered HTTP 503" in sent.stderr
    flushed = run_bin("flush", "-c", str(cfg), env=plugin_env)
    assert flushed.stdout.startswith("sent 1, still pending 0"), flushed.stdout
    first, second = (r.json() for r in server.on("/page"))
    assert first == second and "VI_1" in first["title"] and first["priority"] == 5
    tested = run_bin("test", "--channel", "pg", "-c", str(cfg), env=plugin_env)
    assert (tested.returncode, tested.stdout.strip()) == (0, "pg: ok")


def test_plugin_channel_options_are_checked(
    server: Recorder, write_config: WriteConfig, plugin_env: dict[str, str]
) -> None:
    """A wrong option of a plugin channel is a one-line config error naming file and key."""
    cfg = write_config({"pg": pager(server, priority=9)})
    result = run_bin("config", "check", "-c", str(cfg), env=plugin_env)
    assert result.returncode == 2
    assert f"{cfg}: channels.pg.priority: expected a whole number 1-5, got 9" in result.stderr


def test_plugin_check_runs_like_a_builtin(
    write_config: WriteConfig, tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    """`check redis [SOCKET]` is the plugin's, [checks.redis] included: exit 0 when the socket
    exists, 1 with the reason when it does not."""
    sock = tmp_path / "redis.sock"
    sock.write_text("")
    cfg = write_config()
    with cfg.open("a") as fh:
        fh.write(f'\n[checks.redis]\nsocket = "{sock}"\n')
    found = run_bin("check", "redis", "-c", str(cfg), env=plugin_env)
    assert found.returncode == 0, found.stderr
    gone = tmp_path / "gone.sock"
    missing = run_bin("check", "redis", str(gone), "-c", str(cfg), env=plugin_env)
    assert (missing.returncode, missing.stderr.strip()) == (1, f"unhealthy: {gone} is missing")


def test_builtin_names_win_over_the_plugin(
    write_config: WriteConfig, plugin_env: dict[str, str], tmp_path: Path
) -> None:
    """type = "email" and `check haproxy` stay the built-ins, and the plugin is warned about."""
    table = {"type": "email", "host": "127.0.0.1", "from": "a@example.com", "to": "b@example.com"}
    cfg = write_config({"mail": table})
    env = {**plugin_env, "HA_NOTIFY_LOG_STDERR": "1"}
    checked = run_bin("config", "check", "-c", str(cfg), env=env)
    assert checked.returncode == 0, checked.stderr  # the pager would have wanted a url
    assert "registers 'email' in ha_notify.channels, which is built in" in checked.stderr
    pidfile = tmp_path / "none.pid"
    check = run_bin("check", "haproxy", "--pidfile", str(pidfile), "-c", str(cfg), env=env)
    assert check.returncode == 1 and str(pidfile) in check.stderr, check.stderr
    assert "is missing" not in check.stderr  # the plugin's reason would say so


def test_the_plugin_guide_shows_this_very_example() -> None:
    """docs/plugins.md prints the channel and check this file installs, verbatim."""
    guide = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    for source in (CHANNEL, CHECK):
        assert f"```python{source.rstrip()}\n```" in guide
