"""The check runner: arguments, config, exit codes, syslog on change, plugins, import cost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from ha_notify import configfile
from ha_notify.checks import CheckResult, files, runner, settings, state
from ha_notify.errors import ConfigError, ExitCode, UsageError
from tests.haproxy_helpers import REPO, CheckRun

FORBIDDEN = (
    "jinja2",
    "aiosmtplib",
    "httpx",
    "psutil",
    "typer",
    "click",
    "rich",
    "pydantic",
    "importlib.metadata",
    "logging",
    "logging.handlers",
    "asyncio",
    "ha_notify.cli.app",
    "ha_notify.config",
)


def test_exit_codes_match_the_contract() -> None:
    """The runner's codes are ExitCode's: 0 healthy, 1 unhealthy, 2 usage/config."""
    assert tuple(ExitCode) == (runner.HEALTHY, runner.UNHEALTHY, runner.USAGE)


@pytest.mark.parametrize(
    ("argv", "values", "flags", "ignored"),
    [
        (["haproxy"], {}, set(), []),
        (["haproxy", "--deep", "--socket", "/s"], {"socket": "/s"}, {"deep"}, []),
        (
            ["haproxy", "--timeout=0.5", "--min-up", "2"],
            {"timeout": "0.5", "min_up": "2"},
            set(),
            [],
        ),
        (["haproxy", "--ignore-backend", "a", "--ignore-backend=b"], {}, set(), ["a", "b"]),
        (["haproxy", "--no-pidfile", "--no-deep"], {}, {"no_pidfile", "no_deep"}, []),
        (
            ["process", "nginx", "--pidfile", "/run/nginx.pid"],
            {"pidfile": "/run/nginx.pid"},
            set(),
            [],
        ),
        (["haproxy", "-c", "/etc/x.toml"], {"config": "/etc/x.toml"}, set(), []),
    ],
)
def test_parse_args(
    argv: list[str], values: dict[str, str], flags: set[str], ignored: list[str]
) -> None:
    """Both `--opt VALUE` and `--opt=VALUE` work; --ignore-backend repeats."""
    request = runner.parse_args(argv)
    assert (request.values, request.flags, request.ignore_backends) == (values, flags, ignored)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "which check?"),
        (["--deep"], "which check?"),
        (["haproxy", "--bogus"], "unknown option --bogus"),
        (["haproxy", "--socket"], "--socket needs a value"),
        (["haproxy", "--deep=yes"], "--deep takes no value"),
        (["haproxy", "--deep", "--no-deep"], "exclude each other"),
        (["haproxy", "--pidfile", "/p", "--no-pidfile"], "exclude each other"),
        (["process", "x", "--deep"], "unknown option --deep"),
    ],
)
def test_parse_args_errors(argv: list[str], message: str) -> None:
    """Malformed command lines are usage errors that say what is wrong."""
    with pytest.raises(UsageError, match=message):
        runner.parse_args(argv)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "--timeout expects a number of seconds > 0"),
        (
            ["--timeout", "soon"],
            "--timeout expects a number of seconds > 0 and <= 604800, got 'soon'",
        ),
        (["--min-up", "-1"], "--min-up expects an integer >= 0, got '-1'"),
        (["--min-up", "1.5"], "--min-up expects an integer >= 0"),
        (
            ["--timeout", "inf"],
            "--timeout expects a number of seconds > 0 and <= 604800, got 'inf'",
        ),
        (
            ["--timeout", "-inf"],
            "--timeout expects a number of seconds > 0 and <= 604800, got '-inf'",
        ),
        (["--timeout=nan"], "--timeout expects a number of seconds > 0 and <= 604800, got 'nan'"),
        (
            ["--timeout", "1e400"],
            "--timeout expects a number of seconds > 0 and <= 604800, got '1e400'",
        ),
        (
            ["--timeout", "1e300"],
            "--timeout expects a number of seconds > 0 and <= 604800, got '1e300'",
        ),
    ],
)
def test_bad_numbers_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """A malformed number is exit 2 with a one-line message."""
    result = CheckRun(tmp_path)("haproxy", "--no-pidfile", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("ha-notify: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[checks.haproxy\n", "not valid TOML"),
        (
            "[checks.haproxy]\nmin_up = 'two'\n",
            "checks.haproxy.min_up: expected an integer >= 0, got 'two'",
        ),
        (
            "[checks.haproxy]\ntimeout = -1\n",
            "checks.haproxy.timeout: expected a number of seconds > 0",
        ),
        (
            "[checks.haproxy]\ntimeout = inf\n",
            "checks.haproxy.timeout: expected a number of seconds > 0 and <= 604800, got inf",
        ),
        (
            "[checks.process.nginx]\ntimeout = nan\n",
            "checks.process.nginx.timeout: expected a number of seconds > 0 and <= 604800, got nan",
        ),
        (
            "[checks.haproxy]\nmin_up = inf\n",
            "checks.haproxy.min_up: expected an integer >= 0, got inf",
        ),
        ("[checks.haproxy]\ndeep = 1\n", "checks.haproxy.deep: expected true or false, got 1"),
        (
            "[checks.haproxy]\nsokcet = '/s'\n",
            "checks.haproxy.sokcet: unknown key; expected one of",
        ),
        (
            "[checks.haproxy]\nignore_backends = 'be'\n",
            "checks.haproxy.ignore_backends: expected a list",
        ),
        ("[checks.process.nginx]\nsocket = '/s'\n", "checks.process.nginx.socket: unknown key"),
        ("[checks]\nrun_dir = 3\n", "checks.run_dir: expected the path of a directory"),
        ("checks = 3\n", "checks: expected a table [checks]"),
    ],
)
def test_broken_config_exits_2(tmp_path: Path, toml: str, message: str) -> None:
    """A broken config is exit 2 with one line naming the file, the key and what is expected."""
    check = CheckRun(tmp_path)
    check.config.write_text(toml)
    result = check("haproxy", "--no-pidfile")
    assert result.returncode == 2
    assert result.stderr.startswith(f"ha-notify: error: {check.config}: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda path: path.write_bytes(b"[checks.haproxy]\nmin_up = 1 # caf\xe9\n"),
            "not UTF-8 (line 2 has byte 0xe9); save it as UTF-8",
        ),
        (lambda path: path.mkdir(), "is a directory; expected the TOML config file"),
    ],
)
def test_unreadable_config_exits_2(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    """A config that is not UTF-8, or is a directory, is exit 2 naming the file, no traceback."""
    config = tmp_path / "conf"
    make(config)
    result = CheckRun(tmp_path)("haproxy", "--no-pidfile", "--config", str(config))
    assert (result.returncode, result.stderr) == (2, f"ha-notify: error: {config}: {message}\n")


def test_other_tables_are_not_read(tmp_path: Path) -> None:
    """Only [checks] matters to a check: a mistake in [channels] does not fail it."""
    check = CheckRun(tmp_path)
    check.config.write_text(
        "[channels.mail]\nport = 'not a number'\n[checks.haproxy]\nmin_up = 1\n"
    )
    assert check("process", "no-such-daemon-x").returncode == 1  # unhealthy, not exit 2


def test_named_config_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--config or $HA_NOTIFY_CONFIG naming a missing file is a config error."""
    monkeypatch.setenv("HA_NOTIFY_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="config file not found"):
        settings.load()
    with pytest.raises(ConfigError, match="config file not found"):
        settings.load(str(tmp_path / "other.toml"))


def test_missing_default_config_means_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a config file, every setting has its default."""
    monkeypatch.delenv("HA_NOTIFY_CONFIG", raising=False)
    monkeypatch.setenv("HA_NOTIFY_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(configfile, "CONFIG_PATH", str(tmp_path / "absent.toml"))
    loaded = settings.load()
    assert (loaded.path, loaded.run_dir, loaded.checks) == (None, str(tmp_path / "run"), {})
    options = runner.build_options(runner.parse_args(["haproxy"]), loaded, 100.0)
    assert (options.deep, options.timeout, options.deadline, options.min_up) == (
        False,
        2.0,
        102.0,
        1,
    )
    assert options.pidfile is None and not options.no_pidfile


def test_command_line_overrides_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Options win over [checks.haproxy]; ignore lists add up; pidfile "" means scan only."""
    monkeypatch.setenv("HA_NOTIFY_RUN_DIR", str(tmp_path / "run"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[checks.haproxy]\npidfile = ""\ndeep = true\ntimeout = 3\nmin_up = 2\n'
        'socket = "/a.sock"\nignore_backends = ["x"]\n'
    )
    loaded = settings.load(str(cfg))
    plain = runner.build_options(runner.parse_args(["haproxy"]), loaded, 0.0)
    assert (plain.no_pidfile, plain.deep, plain.timeout, plain.min_up, plain.socket) == (
        True,
        True,
        3.0,
        2,
        "/a.sock",
    )
    argv = [
        "haproxy",
        "--pidfile",
        "/p",
        "--no-deep",
        "--timeout",
        "1",
        "--min-up",
        "0",
        "--socket",
        "/b.sock",
        "--ignore-backend",
        "y",
    ]
    over = runner.build_options(runner.parse_args(argv), loaded, 0.0)
    assert (over.pidfile, over.no_pidfile, over.deep, over.timeout, over.min_up, over.socket) == (
        "/p",
        False,
        False,
        1.0,
        0,
        "/b.sock",
    )
    assert over.ignore_backends == frozenset({"x", "y"})


def test_parsed_config_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The [checks] table is cached in the run dir and re-read when the file changes."""
    monkeypatch.setenv("HA_NOTIFY_RUN_DIR", str(tmp_path / "run"))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[checks.haproxy]\nmin_up = 2\n")
    assert settings.load(str(cfg)).for_check("haproxy").min_up == 2
    cache = tmp_path / "run" / ("config-" + str(cfg).replace("/", "_") + ".cache")
    assert cache.exists() and cache.stat().st_mode & 0o777 == 0o600
    code = (
        "import sys; from ha_notify.checks import settings; "
        f"print(settings.load({str(cfg)!r}).for_check('haproxy').min_up, 'tomllib' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["2", "False"]  # served from the cache, no TOML parser
    cfg.write_text("[checks.haproxy]\nmin_up = 3\n")
    assert settings.load(str(cfg)).for_check("haproxy").min_up == 3


def test_untrusted_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache file that others can write is never trusted."""
    monkeypatch.setenv("HA_NOTIFY_RUN_DIR", str(tmp_path / "run"))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[checks.haproxy]\nmin_up = 2\n")
    settings.load(str(cfg))
    cache = tmp_path / "run" / ("config-" + str(cfg).replace("/", "_") + ".cache")
    cache.chmod(0o666)
    info = os.stat(cfg)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    assert settings._cache_read(str(cfg), key) is None


def test_state_changes_drive_syslog(tmp_path: Path) -> None:
    """Syslog hears the first result and every change, never a repeated one."""
    lines: list[tuple[str, bool]] = []
    run = [
        CheckResult(True, "pid 1"),
        CheckResult(True, "pid 2"),
        CheckResult(False, "gone"),
        CheckResult(False, "gone"),
        CheckResult(False, "zombie"),
        CheckResult(True, "pid 3"),
    ]
    for result in run:
        state.record(str(tmp_path), ["haproxy"], result, lambda m, h: lines.append((m, h)))
    assert lines == [
        ("check haproxy: healthy: pid 1", True),
        ("check haproxy: unhealthy: gone", False),
        ("check haproxy: unhealthy: zombie", False),
        ("check haproxy: healthy: pid 3", True),
    ]


def test_unwritable_run_dir_is_not_fatal(tmp_path: Path) -> None:
    """Without a usable run dir nothing is tracked: unhealthy results are always logged."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    lines: list[str] = []
    for result in [CheckResult(True, "ok"), CheckResult(False, "x"), CheckResult(False, "x")]:
        state.record(str(blocker / "run"), ["haproxy"], result, lambda m, h: lines.append(m))
    assert lines == ["check haproxy: unhealthy: x", "check haproxy: unhealthy: x"]


def _syslog_lines(tmp_path: Path, runs: Callable[[CheckRun], None]) -> list[str]:
    """What a real syslog socket received while ``runs`` ran checks that log to it."""
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(str(path))
        check = CheckRun(tmp_path)
        check.syslog_env = str(path)
        runs(check)  # each run has exited: its datagrams are already queued
        log.setblocking(False)
        received = []
        while True:
            try:
                received.append(log.recv(4096).decode())
            except BlockingIOError:
                return received


def test_syslog_line_on_change_only(tmp_path: Path) -> None:
    """A real syslog socket gets one daemon.warning line for two identical failures."""

    def twice(check: CheckRun) -> None:
        for _ in range(2):
            assert check("process", "no-such-daemon-x").returncode == 1

    (line,) = _syslog_lines(tmp_path, twice)
    assert line.startswith("<28>ha-notify[")
    assert line.endswith(
        "check process no-such-daemon-x: unhealthy: no no-such-daemon-x process is running"
    )


def test_unknown_check_exits_2(tmp_path: Path) -> None:
    """An unknown check name is exit 2 naming the built-in checks."""
    result = CheckRun(tmp_path)("nosuch")
    assert result.returncode == 2
    assert "unknown check 'nosuch'; built-in checks: haproxy, process" in result.stderr


def _plugin_run(check: CheckRun, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ha-notify check redis ARGS`` with a real plugin module whose check is ``body``."""
    site = check.tmp / "site"
    dist = site / "hn_plugin-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hn-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ha_notify.checks]\nredis = hn_plugin:check\n")
    (site / "hn_plugin.py").write_text(
        "from ha_notify.checks import CheckResult\n"
        "from ha_notify.errors import CheckError, SpoolError\n"
        f"def check(options):\n    {body}\n"
    )
    env = {**check.env(), "PYTHONPATH": f"{REPO}:{site}"}
    argv = [sys.executable, "-m", "ha_notify", "check", "redis", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def test_third_party_check_by_entry_point(tmp_path: Path) -> None:
    """A plugin registered in the ha_notify.checks group gets its args and config table."""
    check = CheckRun(tmp_path)
    check.config.write_text("[checks.redis]\nport = 6379\n")
    body = "return CheckResult(False, f'{options.args} {dict(options.table)}')"
    result = _plugin_run(check, body, "a", "--flag")
    assert (result.returncode, result.stderr) == (1, "unhealthy: ('a', '--flag') {'port': 6379}\n")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ("raise CheckError('redis: set port')", 2, "redis: set port"),
        ("raise SpoolError('disk full')", 1, "disk full"),
        (
            "raise RuntimeError('boom\\n  in two lines')",
            1,
            "internal error in check: RuntimeError: boom in two lines",
        ),
        ("return None", 1, "internal error in check: AttributeError: "),
    ],
)
def test_errors_map_to_exit_codes(tmp_path: Path, body: str, code: int, message: str) -> None:
    """Every exception is one stderr line and ha_notify.errors.exit_code's code, never a traceback."""
    result = _plugin_run(CheckRun(tmp_path), body)
    assert result.returncode == code
    assert result.stderr.startswith(f"ha-notify: error: {message}")
    assert result.stderr.count("\n") == 1


def test_internal_error_goes_to_syslog_once(tmp_path: Path) -> None:
    """An unexpected exception reaches a real syslog socket, once for two identical runs."""

    def twice(check: CheckRun) -> None:
        for _ in range(2):
            assert _plugin_run(check, "raise RuntimeError('boom')").returncode == 1

    (line,) = _syslog_lines(tmp_path, twice)
    assert line.startswith("<28>ha-notify[")
    assert line.endswith("check redis: unhealthy: internal error in check: RuntimeError: boom")


def test_write_replace(tmp_path: Path) -> None:
    """write_replace makes the folder, sets the mode, clears a stale temp file, reports failure."""
    target = tmp_path / "run" / "x.state"
    stale = tmp_path / "run" / f"x.state.{os.getpid()}.tmp"
    assert files.write_replace(str(target), b"1\n", 0o640)
    assert (target.read_bytes(), target.stat().st_mode & 0o777) == (b"1\n", 0o640)
    stale.write_bytes(b"left by a crash")
    assert not files.write_replace(str(target), b"0\n", 0o640)  # O_EXCL: never reuse it
    assert not stale.exists() and target.read_bytes() == b"1\n"
    assert files.write_replace(str(target), b"0\n", 0o640)
    assert target.read_bytes() == b"0\n"
    assert not files.write_replace(str(target / "below-a-file"), b"", 0o640)
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.state"]


def test_check_help_accepts_dash_h(tmp_path: Path) -> None:
    """`ha-notify check haproxy -h` prints the check's help, exit 0, like --help."""
    argv = [sys.executable, "-m", "ha_notify", "check", "haproxy", "-h"]
    result = subprocess.run(argv, capture_output=True, text=True, env=CheckRun(tmp_path).env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ha-notify check haproxy [OPTIONS]")
    assert "--min-up" in result.stdout


def _modules_after(check: CheckRun, code: str) -> list[str]:
    """sys.modules of a clean interpreter after running ``code``."""
    wrapped = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", wrapped], capture_output=True, text=True, env=check.env()
    )
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "argv",
    [
        ["haproxy", "--no-pidfile"],
        ["haproxy", "--pidfile", "/nonexistent.pid"],
        ["process", "init", "--no-pidfile"],
        ["haproxy", "--no-pidfile", "--deep", "--timeout", "0.2"],
    ],
)
def test_check_imports_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    """After a check (config parsed, then cached), no heavy module is loaded."""
    check = CheckRun(tmp_path)
    check.config.write_text(f'[checks.haproxy]\nsocket = "{tmp_path}/none.sock"\nmin_up = 1\n')
    code = f"from ha_notify.checks.runner import main\nmain({argv!r})\nmain({argv!r})\n"
    loaded = _modules_after(check, code)
    assert [name for name in FORBIDDEN if name in loaded] == []


def test_healthy_path_skips_typing_and_dataclasses(tmp_path: Path) -> None:
    """With the config cached, a check loads neither typing, dataclasses, inspect nor tomllib."""
    check = CheckRun(tmp_path)
    check.config.write_text("[checks.process.init]\ntimeout = 1\n")
    code = "from ha_notify.checks.runner import main\nmain(['process', 'init'])\n"
    _modules_after(check, code)  # parses the config and writes the cache
    loaded = _modules_after(check, code)
    assert [m for m in ("typing", "dataclasses", "inspect", "tomllib") if m in loaded] == []


def test_console_entry_point_imports_nothing_heavy(tmp_path: Path) -> None:
    """Through ha_notify.__main__ (the console script) the forbidden modules stay unloaded."""
    code = (
        "from ha_notify.__main__ import main\n"
        "try:\n    main(['check', 'haproxy', '--no-pidfile'])\nexcept SystemExit:\n    pass\n"
    )
    loaded = _modules_after(CheckRun(tmp_path), code)
    assert [name for name in FORBIDDEN if name in loaded] == []
