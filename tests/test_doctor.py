"""ha-notify doctor against a good node (all ok) and against each broken piece (its fail line)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from ha_notify.doctor import access, host, instances
from ha_notify.doctor.access import User
from ha_notify.keepalived_conf import parse, tokens
from tests.conftest import BIN, Result, WriteConfig, mail_channel
from tests.haproxy_helpers import HAPROXY, free_port, wait_for
from tests.smtp_server import SMTPServer

Cli = Callable[..., Result]
Findings = list[dict[str, str]]
NOBODY = access.lookup("nobody")


def doctor(cli: Cli, *args: Any) -> tuple[int, Findings]:
    """Run `ha-notify doctor --json ARGS`; the exit code and the findings."""
    result = cli("doctor", "--json", *args)
    assert "Traceback" not in result.err, result.err
    return result.code, json.loads(result.out)


def lines(findings: Findings, check: str) -> Findings:
    return [f for f in findings if f["check"].startswith(check)]


def failing(findings: Findings) -> Findings:
    return [f for f in findings if f["status"] == "fail"]


def keepalived_conf(tmp: Path, body: str, *, head: str = "") -> Path:
    path = tmp / "keepalived.conf"
    globals_ = head or "script_user root\n    enable_script_security"
    path.write_text(f"global_defs {{\n    {globals_}\n}}\n{body}\n", encoding="utf-8")
    return path


def instance(notify: str, extra: str = "") -> str:
    return (
        f"vrrp_instance VI_1 {{\n    state BACKUP\n    virtual_router_id 51\n{extra}"
        f"    {notify}\n}}\n"
    )


@pytest.fixture
def good_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A syslog socket that answers, and the flush timer installed and enabled."""
    address = tmp_path / "log"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    monkeypatch.setenv("HA_NOTIFY_SYSLOG", str(address))
    monkeypatch.setenv("HA_NOTIFY_RUN_DIR", str(tmp_path / "run"))
    units = tmp_path / "units"
    (units / "timers.target.wants").mkdir(parents=True)
    for unit in (host.SERVICE, host.TIMER):
        (units / unit).write_text("[Unit]\n")
    (units / "timers.target.wants" / host.TIMER).symlink_to(units / host.TIMER)
    monkeypatch.setattr(host, "UNIT_DIRS", (units,))
    # No keepalived runs for these tests' nodes: as if it had just started, before its
    # first notify (doctor's "vrrp state" is tested in test_doctor_instances.py).
    monkeypatch.setattr(instances, "keepalived_age", lambda: 1.0)
    yield
    listener.close()


class Haproxy:
    """A real haproxy daemon with a stats socket and pidfile in tmp; stopped by its pid."""

    def __init__(self, tmp: Path) -> None:
        self.sock = tmp / "haproxy.sock"
        self.pidfile = tmp / "haproxy.pid"
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(
            f"global\n    stats socket {self.sock} mode 600 level user\n"
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
            f"    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:{free_port()}\n"
            f"    default_backend be\nbackend be\n    server s1 127.0.0.1:{free_port()}\n"
        )
        started = subprocess.run(
            [HAPROXY, "-D", "-f", str(cfg), "-p", str(self.pidfile)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        wait_for(self.sock.exists, "the haproxy stats socket")

    def stop(self) -> None:
        for pid in [int(p) for p in self.pidfile.read_text().split()]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), "haproxy to stop")


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Haproxy]:
    if os.geteuid() != 0 or not os.access(HAPROXY, os.X_OK):
        pytest.skip("needs root and haproxy")
    proxy = Haproxy(tmp_path)
    yield proxy
    proxy.stop()


@pytest.fixture
def tls_smtp(server_tls: ssl.SSLContext) -> Iterator[SMTPServer]:
    server = SMTPServer(starttls=server_tls, users={"alerts": "pw-for-doctor"}).start()
    yield server
    server.stop()


def good_setup(
    tmp: Path, write_config: WriteConfig, smtp: SMTPServer, ca_file: Path, proxy: Haproxy
) -> tuple[Path, Path]:
    secret = tmp / "smtp-password"
    secret.write_text("pw-for-doctor\n")
    secret.chmod(0o600)
    cfg = write_config(
        {
            "mail": mail_channel(
                smtp.port,
                security="starttls",
                ca_file=str(ca_file),
                username="alerts",
                password_file=str(secret),
            )
        }
    )
    check = f"{BIN} check haproxy --deep --pidfile {proxy.pidfile} --socket {proxy.sock}"
    conf = keepalived_conf(
        tmp,
        f'vrrp_script chk_haproxy {{ script "{check}" interval 5 }}\n'
        + instance(
            f'notify "{BIN} notify --config {cfg}"',
            "    track_script {\n        chk_haproxy\n    }\n",
        ),
    )
    return cfg, conf


@pytest.mark.root
@pytest.mark.haproxy
def test_good_setup_is_all_ok(
    tmp_path: Path,
    write_config: WriteConfig,
    tls_smtp: SMTPServer,
    ca_file: Path,
    haproxy: Haproxy,
    good_host: None,
    cli: Cli,
) -> None:
    """A sound node: every check is ok and doctor exits 0, sending nothing."""
    cfg, conf = good_setup(tmp_path, write_config, tls_smtp, ca_file, haproxy)
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", conf)
    assert [f for f in findings if f["status"] != "ok"] == []
    assert code == 0
    checks = {f["check"].split()[0] for f in findings}
    assert {
        "config",
        "secrets",
        "state_dir",
        "channel",
        "keepalived.conf",
        "script_security",
        "script",
        "notify",
        "haproxy",
        "master-fit",
        "syslog",
        "ha-notify-flush.timer",
    } <= checks
    assert tls_smtp.messages == []


@pytest.mark.root
@pytest.mark.haproxy
def test_table_output_and_send(
    tmp_path: Path,
    write_config: WriteConfig,
    tls_smtp: SMTPServer,
    ca_file: Path,
    haproxy: Haproxy,
    good_host: None,
    cli: Cli,
) -> None:
    """The table has one line per check plus a summary; --send really delivers a test."""
    cfg, conf = good_setup(tmp_path, write_config, tls_smtp, ca_file, haproxy)
    result = cli("doctor", "-c", cfg, "--keepalived-config", conf, "--send")
    assert result.code == 0, result.out
    rows = result.out.strip().splitlines()
    assert rows[-1].endswith("0 warn, 0 fail")
    assert all(row.split()[0] == "ok" for row in rows[:-1])
    assert any(row.split()[1:3] == ["send", "mail"] for row in rows)
    assert len(tls_smtp.messages) == 1
    assert "TEST" in tls_smtp.messages[0].message["Subject"].upper()


def test_bad_config_fails(tmp_path: Path, cli: Cli) -> None:
    """An invalid config is a fail line naming the key; doctor exits 1."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[general]\nlanguage = "fr"\n')
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    assert code == 1
    (line,) = lines(findings, "config")
    assert line["status"] == "fail" and "general.language" in line["detail"]


def test_open_secrets_file_fails(
    tmp_path: Path, write_config: WriteConfig, smtp: SMTPServer, cli: Cli
) -> None:
    """A password file readable by others is a fail line with the chmod 600 fix."""
    secret = tmp_path / "pw"
    secret.write_text("open-secret-value\n")
    secret.chmod(0o644)
    cfg = write_config({"mail": mail_channel(smtp.port, username="u", password_file=str(secret))})
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    assert code == 1
    bad = [f for f in lines(findings, "secrets") if f["status"] == "fail"]
    assert bad and bad[0]["fix"] == f"chmod 600 {secret}"
    assert "open-secret-value" not in json.dumps(findings)


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="ha-notify-doctor-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.root
def test_state_dir_unwritable_for_script_user(
    world_tmp: Path, tmp_path: Path, write_config: WriteConfig, cli: Cli
) -> None:
    """state_dir owned by root 700 fails when keepalived runs ha-notify as nobody."""
    state = world_tmp / "state"
    state.mkdir(mode=0o700)
    cfg = write_config(state_dir=str(state))
    conf = keepalived_conf(
        tmp_path,
        instance(f'notify "{BIN} notify"'),
        head="script_user nobody\n    enable_script_security",
    )
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", conf)
    assert code == 1
    (line,) = lines(findings, "state_dir")
    assert line["status"] == "fail" and "nobody cannot" in line["detail"]
    assert line["fix"] == f"chown -R nobody:nogroup {state} && chmod 700 {state}"


@pytest.mark.root
def test_state_dir_checks_the_script_user_not_root(world_tmp: Path) -> None:
    """nobody's own state_dir is ok; a root-owned spool folder inside it is not."""
    from ha_notify.doctor.local import _state_dir

    state = world_tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY.uid, NOBODY.gid)
    assert _state_dir(state, NOBODY).status == "ok"
    assert _state_dir(world_tmp / "state" / "new", NOBODY).status == "ok"
    spool = state / "spool"
    spool.mkdir(mode=0o700)
    finding = _state_dir(state, NOBODY)
    assert finding.status == "fail" and str(spool) in finding.detail
    root = access.lookup("root")
    assert _state_dir(state, root).status == "ok"


def test_smtp_unreachable_fails(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """A closed SMTP port is a fail line for that channel naming host and port."""
    port = free_port()
    cfg = write_config({"mail": mail_channel(port)})
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    assert code == 1
    (line,) = lines(findings, "channel mail")
    assert line["status"] == "fail" and f"127.0.0.1:{port}" in line["detail"]
    assert "cannot connect" in line["detail"]


def test_untrusted_certificate_fails(
    tmp_path: Path, write_config: WriteConfig, tls_smtp: SMTPServer, cli: Cli
) -> None:
    """STARTTLS to a certificate no trusted CA signed fails, naming host and the ca_file fix."""
    cfg = write_config({"mail": mail_channel(tls_smtp.port, security="starttls")})
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    (line,) = lines(findings, "channel mail")
    assert code == 1 and line["status"] == "fail"
    assert "127.0.0.1" in line["detail"] and "not trusted" in line["detail"]
    assert "ca_file" in line["fix"]


def test_tls_verify_false_is_a_warning(
    tmp_path: Path, write_config: WriteConfig, tls_smtp: SMTPServer, cli: Cli
) -> None:
    """tls_verify = false connects but warns that the server is not authenticated."""
    cfg = write_config({"mail": mail_channel(tls_smtp.port, security="starttls", tls_verify=False)})
    _, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    (line,) = lines(findings, "channel mail")
    assert line["status"] == "warn" and "NOT verified" in line["detail"]


def test_http_channel_probe(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """An HTTP channel gets a TCP probe of host:port only; the URL's token path is not shown."""
    from tests.haproxy_helpers import HttpServer

    server = HttpServer()
    try:
        down = free_port()
        cfg = write_config(
            {
                "up": {"type": "webhook", "url": f"http://127.0.0.1:{server.port}/hook/tok-up-123"},
                "down": {"type": "webhook", "url": f"http://127.0.0.1:{down}/hook/tok-dn-456"},
            }
        )
        code, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    finally:
        server.close()
    assert lines(findings, "channel up")[0]["status"] == "ok"
    assert lines(findings, "channel down")[0]["status"] == "fail"
    assert code == 1
    assert "tok-" not in json.dumps(findings)


@pytest.mark.parametrize("trusted", [True, False])
def test_https_channel_probe_verifies_the_certificate(
    tmp_path: Path,
    write_config: WriteConfig,
    server_tls: ssl.SSLContext,
    ca_file: Path,
    cli: Cli,
    trusted: bool,
) -> None:
    """HTTPS: the handshake is verified with ca_file; without it the line fails with the fix."""
    from tests.http_recorder import Recorder

    server = Recorder(tls=server_tls).start()
    try:
        table = {"type": "webhook", "url": server.url("/hook/tok-tls-789")}
        if trusted:
            table["ca_file"] = str(ca_file)
        cfg = write_config({"hook": table})
        code, findings = doctor(cli, "-c", cfg, "--keepalived-config", tmp_path / "none.conf")
    finally:
        server.stop()
    (line,) = lines(findings, "channel hook")
    assert server.requests == []  # a handshake only: nothing is posted
    assert "tok-" not in json.dumps(findings)
    if trusted:
        assert line["status"] == "ok" and "TLS handshake verified" in line["detail"]
    else:
        assert code == 1 and line["status"] == "fail"
        assert "127.0.0.1" in line["detail"] and "not trusted" in line["detail"]
        assert "ca_file" in line["fix"]


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        (f'notify_fault "{BIN} falut"', "unknown state 'falut'"),
        (f'notify_fault "{BIN} master"', "wrong state"),
        (f'notify "{BIN} master"', "only `ha-notify notify` accepts"),
        (f'notify_master "{BIN} master --bogus"', "No such option"),
        ('notify_fault "/etc/keepalived/mail_notify.py falut"', "'falut', not fault"),
        ('notify "ha-notify notify"', "not an absolute path"),
    ],
)
def test_broken_keepalived_lines_fail(
    tmp_path: Path, write_config: WriteConfig, cli: Cli, notify: str, expected: str
) -> None:
    """Typos, wrong subcommands and relative paths in keepalived.conf are fail lines."""
    conf = keepalived_conf(tmp_path, instance(notify))
    code, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    assert code == 1
    assert any(expected in f["detail"] for f in failing(findings)), failing(findings)


def test_fix_keeps_the_config_option(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """The suggested line fixes the state and keeps the line's own --config."""
    cfg = write_config()
    conf = keepalived_conf(tmp_path, instance(f'notify_fault "{BIN} falut --config {cfg}"'))
    _, findings = doctor(cli, "-c", cfg, "--keepalived-config", conf)
    (line,) = lines(findings, "notify_fault")
    assert line["status"] == "fail"
    assert line["fix"] == f'notify_fault "{BIN} fault --config {cfg}"'


def test_tutorial_mail_script_is_a_warning(
    tmp_path: Path, write_config: WriteConfig, cli: Cli
) -> None:
    """The tutorial's mail_notify.py line warns and suggests ha-notify; killall -0 warns too."""
    conf = keepalived_conf(
        tmp_path,
        'vrrp_script chk {\n    script "/usr/bin/killall -0 haproxy"\n}\n'
        + instance('notify_master "/etc/keepalived/mail_notify.py master "'),
    )
    _, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    (line,) = lines(findings, "notify_master")
    assert line["status"] == "warn" and f"{BIN} master" in line["fix"]
    (check,) = lines(findings, "script keepalived.conf")
    assert check["status"] == "warn" and "pidfile" in check["fix"]


def test_missing_script_security_warns(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """Without enable_script_security doctor warns and says where to add it."""
    conf = keepalived_conf(tmp_path, instance(f'notify "{BIN} notify"'), head="script_user root")
    _, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    (line,) = lines(findings, "script_security")
    assert line["status"] == "warn" and "global_defs" in line["fix"]


@pytest.mark.root
@pytest.mark.parametrize(("mode", "fix"), [(0o775, "chmod g-w"), (0o757, "chmod o-w")])
def test_writable_parent_folder_fails(
    tmp_path: Path, write_config: WriteConfig, cli: Cli, mode: int, fix: str
) -> None:
    """A parent folder writable by a non-root group (Debian's staff) or everyone is a fail."""
    folder = tmp_path / "usr-local" / "bin"
    folder.mkdir(parents=True)
    script = folder / "ha-notify"
    shutil.copy(BIN, script)
    os.chown(folder, 0, 50)  # group staff, as Debian's /usr/local/bin
    folder.chmod(mode)
    conf = keepalived_conf(tmp_path, instance(f'notify "{script} notify"'))
    code, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    assert code == 1
    (line,) = [f for f in failing(findings) if f["check"] == "script path"]
    assert str(folder) in line["detail"] and "Unsafe permissions" in line["detail"]
    assert line["fix"].startswith(f"{fix} {folder}")


def test_real_console_script_chain_passes() -> None:
    """The venv's ha-notify and every folder above it pass keepalived's rule (root 755)."""
    assert access.script_unsafe(BIN) is None


@pytest.mark.root
def test_script_user_cannot_run_interpreter(write_config: WriteConfig, cli: Cli) -> None:
    """A script user who cannot reach the script's interpreter is a fail line."""
    # pytest's tmp_path is 0700, so build a world-traversable tree with a private interpreter.
    root = Path(tempfile.mkdtemp(prefix="ha-notify-doctor-"))
    try:
        root.chmod(0o755)
        (root / "private").mkdir(mode=0o700)
        interpreter = root / "private" / "python3"
        interpreter.symlink_to(os.path.realpath(sys.executable))
        (root / "bin").mkdir()
        (root / "bin").chmod(0o755)  # whatever umask an earlier in-process `ha-notify` left
        script = root / "bin" / "ha-notify"
        script.write_text(f"#!{interpreter}\nprint('hi')\n")
        script.chmod(0o755)
        conf = keepalived_conf(
            root, instance(f'notify "{script} notify"'), head="script_user nobody"
        )
        _, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
        assert any(
            "nobody cannot run" in f["detail"] and "its interpreter" in f["detail"]
            for f in failing(findings)
        )
    finally:
        shutil.rmtree(root)


def test_missing_keepalived_conf_fails(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """No keepalived.conf is a fail line with the --keepalived-config fix."""
    missing = tmp_path / "nope.conf"
    code, findings = doctor(cli, "-c", write_config(), "--keepalived-config", missing)
    assert code == 1
    (line,) = lines(findings, "keepalived.conf")
    assert line["status"] == "fail" and str(missing) in line["detail"]
    assert "--keepalived-config" in line["fix"]


def test_haproxy_not_configured_warns(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """With no haproxy check anywhere, the haproxy lines warn "not configured"."""
    conf = keepalived_conf(tmp_path, instance(f'notify "{BIN} notify"'))
    _, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    assert [f["status"] for f in lines(findings, "haproxy")] == ["warn", "warn"]


def test_haproxy_down_fails(tmp_path: Path, write_config: WriteConfig, cli: Cli) -> None:
    """A check line whose pidfile and stats socket do not exist fails both haproxy lines."""
    check = f"{BIN} check haproxy --deep --pidfile {tmp_path}/x.pid --socket {tmp_path}/x.sock"
    conf = keepalived_conf(tmp_path, f'vrrp_script chk {{\n    script "{check}"\n}}\n')
    _, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    assert [f["status"] for f in lines(findings, "haproxy")] == ["fail", "fail"]


@pytest.mark.parametrize("option", ["--timeout inf", "--timeout=nan", "--min-up -1"])
def test_check_line_with_a_bad_number_fails(
    tmp_path: Path, write_config: WriteConfig, cli: Cli, option: str
) -> None:
    """A vrrp_script whose check would exit 2 on a number is a fail on that line, not a crash."""
    conf = keepalived_conf(
        tmp_path, f'vrrp_script chk {{\n    script "{BIN} check haproxy {option}"\n}}\n'
    )
    code, findings = doctor(cli, "-c", write_config(), "--keepalived-config", conf)
    flag = option.split()[0].partition("=")[0]
    assert code == 1
    assert [f["check"] for f in failing(findings) if f"{flag} expects" in f["detail"]] == [
        "script keepalived.conf:6",
        "haproxy process",
    ]
    assert not [f for f in findings if "the check itself failed" in f["detail"]]


def test_usage_error_exits_2(cli: Cli) -> None:
    """An unknown option is a usage error: exit 2."""
    assert cli("doctor", "--bogus").code == 2


def test_parser_includes_comments_quotes(tmp_path: Path) -> None:
    """include globs (relative), `#`/`!` comments, quotes, @conditions and users are parsed."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vi1.conf").write_text(
        "vrrp_instance VI_1 { # a comment\n"
        "  @lb1 notify_master \"/x/ha-notify master -i 'a b'\" keepalived_script haproxy\n"
        "  ! notify_backup /commented/out\n"
        "  notify_fault /x/ha-notify\n"
        "}\n"
    )
    (tmp_path / "keepalived.conf").write_text(
        "global_defs {\n  enable_script_security\n  script_user alerts staff\n}\n"
        "include conf.d/*.conf\n"
        'vrrp_script chk\n{\n  user nobody\n  script "/x/ha-notify check haproxy"\n}\n'
    )
    conf = parse(tmp_path / "keepalived.conf")
    assert conf.script_security and (conf.script_user, conf.script_group) == ("alerts", "staff")
    got = [(s.keyword, s.command, s.user, s.group) for s in conf.scripts]
    assert got == [
        ("notify_master", "/x/ha-notify master -i 'a b'", "keepalived_script", "haproxy"),
        ("notify_fault", "/x/ha-notify", None, None),
        ("script", "/x/ha-notify check haproxy", "nobody", None),
    ]
    assert [t.text for t in tokens('a "b # c" # d')] == ["a", "b # c"]


def test_allowed_uses_one_group() -> None:
    """Permission arithmetic: owner bits, then the one group, then others; root reads all."""
    st = os.stat_result((0o100640, 0, 0, 1, 5, 7, 0, 0, 0, 0))
    assert access.allowed(st, User("u", 5, 99, "g"), access.R | access.W)
    assert access.allowed(st, User("v", 6, 7, "g"), access.R)
    assert not access.allowed(st, User("v", 6, 7, "g"), access.W)
    assert not access.allowed(st, User("w", 6, 8, "h"), access.R)
    assert access.allowed(st, User("root", 0, 0, "root"), access.R | access.W)
    assert not access.allowed(st, User("root", 0, 0, "root"), access.X)


def test_failing_vrrp_script_fails_doctor(
    tmp_path: Path, write_config: WriteConfig, cli: Cli
) -> None:
    """A tracked vrrp_script that fails right now makes doctor exit 1, not report "0 fail"."""
    cfg = write_config({})
    conf = keepalived_conf(
        tmp_path,
        'vrrp_script chk_haproxy { script "/bin/false" interval 2 }\n'
        + instance(
            f'notify "{BIN} notify --config {cfg}"',
            "    track_script {\n        chk_haproxy\n    }\n",
        ),
        head="enable_script_security",
    )
    code, findings = doctor(cli, "-c", cfg, "--keepalived-config", conf)
    (line,) = lines(findings, "master-fit chk_haproxy")
    assert code == 1 and line["status"] == "fail" and "not MASTER-fit" in line["detail"]
    assert not [f for f in findings if "useradd" in f["fix"]]
