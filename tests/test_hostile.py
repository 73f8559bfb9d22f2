"""Hostile input: argument forms, FIFO lines, config values and event fields never crash,
never inject mail headers, always give valid JSON; tls_verify = false always warns."""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ha_notify.channels import Context, build
from ha_notify.channels.web import Http, compact
from ha_notify.cli.app import run
from ha_notify.config import STATES, Table, parse
from ha_notify.errors import ChannelError, ConfigError, UsageError
from ha_notify.event import Event, Node, clean, parse_fifo_line, parse_name
from ha_notify.notify.render import Renderer
from tests.conftest import Result, WriteConfig, mail_channel
from tests.smtp_server import SMTPServer, free_port

FIXTURES = [HealthCheck.function_scoped_fixture]
CONTROL = "\n\r\x00\x07\x0b\x0c\x1b\x7f\x85\u2028\u2029\t"
# Raw text (no lone surrogates) salted with line breaks, control characters and markup.
hostile_text = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from([*CONTROL, "<", ">", "&", '"', "'", "\nSubject: x", "\r\nBcc: a@b"]),
    ),
    max_size=60,
).map("".join)
# What Python makes of non-UTF-8 argv bytes: lone surrogates.
undecodable = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
any_arg = st.one_of(hostile_text, undecodable, st.text(max_size=3000).map(lambda s: s * 2))
state_word = st.one_of(
    st.sampled_from([*STATES, "MASTER", "Fault", "falut", "", " master "]), any_arg
)


@pytest.fixture
def quiet_config(write_config: WriteConfig) -> Path:
    """A valid config with no channels: the notify path records and logs only."""
    return write_config()


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(
    form=st.sampled_from(["notify", "state", "render", "dry"]),
    kind=st.one_of(st.sampled_from(["INSTANCE", "GROUP", "group"]), any_arg),
    name=any_arg,
    state=state_word,
    priority=st.one_of(st.integers(-1000, 1000).map(str), any_arg),
)
def test_argument_forms_never_crash(
    quiet_config: Path,
    capsys: pytest.CaptureFixture[str],
    form: str,
    kind: str,
    name: str,
    state: str,
    priority: str,
) -> None:
    """Every argument form exits 0, 1 or 2 whatever the words: never a traceback."""
    cfg = str(quiet_config)
    argv = {
        "notify": ["notify", kind, name, state, priority, "-c", cfg],
        "state": [state, "-i", name, "-p", priority, "-c", cfg],
        "render": ["render", state, "-i", name, "-c", cfg],
        "dry": ["notify", kind, name, state, priority, "-c", cfg, "--dry-run"],
    }[form]
    assert run(argv) in (0, 1, 2)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        hostile_text,
        undecodable,
        st.builds(
            lambda k, n, s, p: f'{k} "{n}" {s} {p}'.strip(),
            st.sampled_from(["INSTANCE", "GROUP", "VS", "RS", "instance"]),
            hostile_text,
            st.one_of(st.sampled_from([*STATES, "MASTER_RX_LOWER_PRI", "FALUT"]), hostile_text),
            st.one_of(st.integers(-5, 400).map(str), st.just("")),
        ),
    )
)
def test_fifo_lines_parse_or_usage_error(line: str) -> None:
    """A FIFO line parses, is skipped or raises UsageError; a parsed name is clean."""
    try:
        parsed = parse_fifo_line(line)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    if parsed is not None:
        assert parsed.name == clean(parsed.name) and parsed.name
        assert parsed.state in STATES
        assert parsed.priority is None or 0 <= parsed.priority <= 255


toml_scalar = st.one_of(
    st.text(max_size=30),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(max_value=datetime(9999, 1, 1)),
    st.sampled_from(
        [
            "starttls",
            "tls",
            "none",
            "en",
            "zh_CN",
            "master",
            "a@b.c",
            "http://h/x",
            "https://127.0.0.1:1/x",
            "127.0.0.1",
            "",
        ]
    ),
)
toml_value = st.one_of(
    toml_scalar,
    st.lists(toml_scalar, max_size=3),
    st.dictionaries(st.text(max_size=8), toml_scalar, max_size=3),
)
GENERAL_KEYS = [
    "cluster",
    "state_dir",
    "language",
    "deadline",
    "templates_dir",
    "virtual_addresses",
    "instance",
    "max_age",
    "flap_threshold",
    "flap_window",
    "bogus",
]
CHANNEL_KEYS = [
    "host",
    "port",
    "security",
    "username",
    "password",
    "password_env",
    "from",
    "to",
    "timeout",
    "tls_verify",
    "helo",
    "states",
    "url",
    "secret",
    "headers",
    "token",
    "chat_id",
    "urls",
    "ca_file",
    "bogus",
]
TYPES = [
    "email",
    "webhook",
    "slack",
    "dingtalk",
    "wecom",
    "feishu",
    "telegram",
    "teams",
    "alertmanager",
    "nope",
]


@settings(max_examples=150, deadline=None)
@given(
    general=st.dictionaries(st.sampled_from(GENERAL_KEYS), toml_value, max_size=4),
    ctype=st.sampled_from(TYPES),
    options=st.dictionaries(st.sampled_from(CHANNEL_KEYS), toml_value, max_size=6),
    base=st.booleans(),
)
def test_config_values_raise_config_error_only(
    general: dict[str, Any], ctype: str, options: dict[str, Any], base: bool
) -> None:
    """Random values for known keys: a ConfigError naming the file, or a working config."""
    table: dict[str, Any] = {"type": ctype}
    if base:  # start from a valid table so that later keys get checked too
        table.update(mail_channel(25) if ctype == "email" else {"url": "https://127.0.0.1/x"})
    table.update(options)
    path = Path("/nonexistent/config.toml")
    try:
        cfg = parse({"general": general, "channels": {"c": table}}, path)
        context = Context(Renderer(cfg.general.language, None), cfg.general)
        for ch in cfg.channels:
            build(ch, context)
    except ConfigError as exc:
        assert str(path) in str(exc) or "channel type" in str(exc)


def node(hostname: str, fqdn: str) -> Node:
    return Node(hostname=hostname, fqdn=fqdn, addresses=("eth0 192.0.2.2/24",), holds_vips=True)


def make_event(name: str, cluster: str, hostname: str, haproxy: str) -> Event:
    return Event(
        state="master",
        previous="backup",
        name=name,
        cluster=cluster,
        priority=100,
        seq=3,
        node=node(hostname, hostname + ".example"),
        virtual_addresses=("192.0.2.10",),
        haproxy=(haproxy,),
    )


def _private_file() -> Path:
    """A 0600 file standing in for the config (inline secrets need a private config)."""
    fd, name = tempfile.mkstemp(prefix="ha-notify-hostile-", suffix=".toml")
    os.close(fd)
    atexit.register(os.unlink, name)
    return Path(name)


PRIVATE_CONFIG = _private_file()


def built_channel(table: dict[str, Any]) -> Any:
    cfg = parse({"channels": {"c": table}}, PRIVATE_CONFIG)
    return build(cfg.channels[0], Context(Renderer("en", None), cfg.general))


EMAIL = built_channel(mail_channel(25))
EXPECTED_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-ha-notify-event",
    "x-ha-notify-state",
    "content-type",
    "mime-version",
}
INJECTED = "<x-inj"


@settings(max_examples=80, deadline=None)
@given(
    name=hostile_text,
    cluster=hostile_text,
    hostname=hostile_text,
    haproxy=hostile_text,
    raw_name=undecodable,
)
def test_email_never_injects_headers_and_escapes_html(
    name: str, cluster: str, hostname: str, haproxy: str, raw_name: str
) -> None:
    """Hostile event fields stay in the body: same header names, one Subject, escaped HTML."""
    for event_name in (INJECTED + name, parse_name(raw_name + "x")):
        event = make_event(event_name, INJECTED + cluster, INJECTED + hostname, INJECTED + haproxy)
        raw = EMAIL.build(event).as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        names = [k.lower() for k in parsed]
        assert set(names) == EXPECTED_HEADERS and len(names) == len(EXPECTED_HEADERS)
        assert len(parsed.get_all("Subject") or []) == 1
        assert not parsed.defects
        html = parsed.get_body(("html",))
        assert html is not None
        assert INJECTED not in html.get_content()


HTTP_TABLES = {
    "webhook": {"type": "webhook", "url": "https://127.0.0.1:1/hook", "secret": "s"},
    "slack": {"type": "slack", "url": "https://127.0.0.1:1/services/x"},
    "dingtalk": {"type": "dingtalk", "url": "https://127.0.0.1:1/robot/send?access_token=x"},
    "wecom": {"type": "wecom", "url": "https://127.0.0.1:1/cgi-bin/webhook/send?key=x"},
    "feishu": {"type": "feishu", "url": "https://127.0.0.1:1/open-apis/bot/v2/hook/x"},
    "teams": {"type": "teams", "url": "https://127.0.0.1:1/webhook/x"},
    "telegram": {
        "type": "telegram",
        "token": "1:x",
        "chat_id": "-100",
        "api_url": "https://127.0.0.1:1",
    },
    "alertmanager": {"type": "alertmanager", "urls": ["https://127.0.0.1:1"]},
}


HTTP_CHANNELS = {kind: built_channel(dict(table)) for kind, table in HTTP_TABLES.items()}


@settings(max_examples=60, deadline=None)
@given(
    name=hostile_text,
    cluster=hostile_text,
    hostname=hostile_text,
    haproxy=hostile_text,
    raw_name=undecodable,
)
def test_every_payload_is_valid_json(
    name: str, cluster: str, hostname: str, haproxy: str, raw_name: str
) -> None:
    """event.to_json and every HTTP channel's payload are valid JSON that survives a round trip."""
    for event_name in (name or "x", parse_name(raw_name + "x")):
        event = make_event(event_name, cluster, hostname, haproxy)
        assert json.loads(json.dumps(event.to_json())) == json.loads(event.dumps())
        assert Event.from_json(json.loads(event.dumps())) == event
        for channel in HTTP_CHANNELS.values():
            preview = channel.preview(event)
            payload = json.loads(preview)
            assert json.loads(compact(payload)) == payload


@pytest.mark.parametrize("value", ["a\x00b", "x" * 5000, "line\nbreak", "\udcff"])
def test_clean_makes_any_text_one_safe_line(value: str) -> None:
    """clean() output has no control characters, encodes as UTF-8 and respects the limit."""
    out = clean(value)
    assert len(out) <= 128
    assert not any(c in out for c in CONTROL)
    out.encode("utf-8")


def test_hostile_state_dir_is_a_clean_error(
    write_config: WriteConfig, cli: Callable[..., Result], tmp_path: Path
) -> None:
    """A state_dir with a NUL byte in the config exits with a message, not a traceback."""
    cfg = tmp_path / "nul.toml"
    cfg.write_text(f'[general]\nstate_dir = "{tmp_path}/a\\u0000b"\n')
    result = cli("master", "-c", cfg, "-i", "VI_1")
    assert result.code in (1, 2)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every record logged under ha_notify (independent of how the CLI set up handlers)."""

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    keep = Keep()
    logger = logging.getLogger("ha_notify")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(keep)
    yield keep.records
    logger.removeHandler(keep)
    logger.setLevel(old)


def _tls_warnings(found: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in found
        if r.levelno == logging.WARNING and "tls_verify = false" in r.getMessage()
    ]


def test_tls_verify_false_warns_on_every_smtp_use(
    server_tls: Any,
    write_config: WriteConfig,
    cli: Callable[..., Result],
    records: list[logging.LogRecord],
) -> None:
    """Each delivery with tls_verify = false logs a warning naming the unauthenticated host."""
    server = SMTPServer(starttls=server_tls).start()
    try:
        cfg = write_config(
            {"mail": mail_channel(server.port, security="starttls", tls_verify=False)}
        )
        assert cli("master", "-c", cfg, "-i", "VI_1").code == 0
        assert cli("backup", "-c", cfg, "-i", "VI_1").code == 0
    finally:
        server.stop()
    assert len(server.messages) == 2
    warnings = _tls_warnings(records)
    assert len(warnings) == 2 and all("127.0.0.1" in w for w in warnings)


def test_tls_verify_false_warns_on_every_http_use(records: list[logging.LogRecord]) -> None:
    """Each HTTPS post with tls_verify = false logs a warning, even when it then fails."""
    http = Http(Table({"tls_verify": False, "timeout": 5}, None, "channels.hook"), "hook")
    url = f"https://127.0.0.1:{free_port()}/token-path"
    for _ in range(2):
        with pytest.raises(ChannelError) as caught:
            asyncio.run(http.post(url, {"a": 1}))
        assert "token-path" not in str(caught.value)
    warnings = _tls_warnings(records)
    assert len(warnings) == 2 and all("127.0.0.1" in w for w in warnings)


def test_untrusted_smtp_certificate_names_host_and_fix(
    server_tls: Any, write_config: WriteConfig, cli: Callable[..., Result]
) -> None:
    """A certificate from an unknown CA fails with the host and the ca_file fix."""
    server = SMTPServer(starttls=server_tls).start()
    try:
        cfg = write_config({"mail": mail_channel(server.port, security="starttls")})
        result = cli("test", "-c", cfg)
    finally:
        server.stop()
    assert result.code == 1
    assert f"127.0.0.1:{server.port}" in result.out and "ca_file" in result.out
