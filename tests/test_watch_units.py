"""`ha-notify watch` pieces without haproxy: [watch] config, VIP discovery, files, metrics."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ha_notify.config import WatchConfig, parse
from ha_notify.errors import ConfigError
from ha_notify.watch import vips
from ha_notify.watch.metrics import NodeMetrics, render
from ha_notify.watch.probe import RoundContext, Sample
from ha_notify.watch.trackfile import TrackFile


def watch_config(tmp_path: Path, **watch: object) -> WatchConfig:
    """Parse a config whose [watch] table is ``watch``."""
    return parse({"watch": watch}, tmp_path / "config.toml").watch


def test_watch_defaults_match_the_design(tmp_path: Path) -> None:
    """No [watch] table gives the DESIGN's defaults."""
    got = watch_config(tmp_path)
    assert got == WatchConfig()
    assert (got.interval, got.probe_interval, got.unserved_after) == (1.0, 5.0, 10.0)
    assert got.track_file == Path("/run/ha-notify/track/haproxy")
    assert got.metrics_file == Path("/var/lib/prometheus/node-exporter/ha-notify.prom")
    assert got.garp_after_split_brain is True and got.fifo is None


def test_empty_metrics_file_disables_metrics(tmp_path: Path) -> None:
    """metrics_file = "" turns the metrics file off."""
    assert watch_config(tmp_path, metrics_file="").metrics_file is None


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("interval", 0, "watch.interval: expected a number > 0"),
        ("interval", 0.001, "watch.interval: expected a number of seconds >= 0.01"),
        ("interval", "1s", "watch.interval: expected a number > 0"),
        ("track_file", "run/track", "watch.track_file: expected an absolute path"),
        ("metrics_file", "/tmp/ha.txt", "watch.metrics_file: expected a path ending in .prom"),
        ("garp_after_split_brain", "yes", "watch.garp_after_split_brain: expected true or false"),
        ("fifo", 3, "watch.fifo: expected a string"),
        ("keepalived_config", "keepalived.conf", "watch.keepalived_config: expected an absolute"),
        ("intervall", 1, "watch.intervall: unknown key; known keys: fifo, garp_after_split_brain"),
    ],
)
def test_bad_watch_keys_say_what_to_fix(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    """Each wrong [watch] key is one line naming the file, the key and what is expected."""
    with pytest.raises(ConfigError) as caught:
        watch_config(tmp_path, **{key: value})
    assert str(caught.value).startswith(f"{tmp_path / 'config.toml'}: {expected}")
    assert "\n" not in str(caught.value)


def test_same_track_and_metrics_file_is_refused(tmp_path: Path) -> None:
    """track_file and metrics_file cannot be the same file."""
    with pytest.raises(ConfigError, match="a different file than track_file"):
        watch_config(tmp_path, track_file="/x/a.prom", metrics_file="/x/a.prom")


def test_watch_must_be_a_table(tmp_path: Path) -> None:
    """`watch = 1` is refused with the table it should be."""
    with pytest.raises(ConfigError, match=r"watch: expected a table \[watch\]"):
        parse({"watch": 1}, tmp_path / "c.toml")


KEEPALIVED = """\
global_defs { router_id lb1 }
vrrp_instance VI_1 {
    interface eth0
    virtual_ipaddress {
        192.168.0.130/24 dev eth0
        10.0.0.5
    }
    virtual_ipaddress_excluded { 2001:db8::0:5/64 dev eth1 }
}
include more/*.conf
"""
MORE = """\
vrrp_instance "VI_2" {
    virtual_ipaddress {
        @lb1 192.168.1.7/32 dev eth2 label eth2:1
    }
}
"""


def test_vips_from_keepalived_conf_and_includes(tmp_path: Path) -> None:
    """virtual_ipaddress blocks give address, dev and instance, includes followed."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(KEEPALIVED)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.conf").write_text(MORE)
    found = vips.from_keepalived(conf)
    assert found == [
        vips.Vip("192.168.0.130", "eth0", "VI_1"),
        vips.Vip("10.0.0.5", None, "VI_1"),
        vips.Vip("2001:db8::5", "eth1", "VI_1"),
        vips.Vip("192.168.1.7", "eth2", "VI_2"),
    ]


def test_unreadable_keepalived_conf_is_a_config_error(tmp_path: Path) -> None:
    """A keepalived_config that cannot be read is said at start, not per round."""
    cfg = parse({"watch": {"keepalived_config": str(tmp_path / "none.conf")}}, tmp_path / "c")
    with pytest.raises(ConfigError, match="cannot read"):
        vips.discover(cfg)


def test_vips_from_general_with_the_interface_carrying_them(tmp_path: Path) -> None:
    """Without keepalived_config, [general] virtual_addresses and their interface now (the
    one carrying it, else the one whose subnet holds it, else none)."""
    lonely = "203.0.113.99"  # TEST-NET-3: on no subnet of this machine (checked below)
    assert vips._TABLE.interface_of(lonely) is None, "this machine has TEST-NET-3: pick another"
    cfg = parse({"general": {"virtual_addresses": ["127.0.0.1/8", lonely]}}, tmp_path / "c")
    assert vips.discover(cfg) == [
        vips.Vip("127.0.0.1", "lo", None),
        vips.Vip(lonely, None, None),
    ]


def test_held_reads_the_kernel_address_table() -> None:
    """held() says which VIPs are on an interface here (loopback is, TEST-NET is not)."""
    wanted = [vips.Vip("127.0.0.1", None, None), vips.Vip("::1", None, None)]
    wanted.append(vips.Vip("192.0.2.99", None, None))
    assert vips.held(wanted) == {"127.0.0.1", "::1"}
    assert vips.held([]) == set()


def test_held_runs_no_process(tmp_path: Path) -> None:
    """held() answers many times without forking (strace counts no clone/execve)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    script = "from ha_notify.watch import vips\nv=[vips.Vip('127.0.0.1',None,None)]\n"
    script += "for _ in range(200): assert vips.held(v)\n"
    log = tmp_path / "trace"
    subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=clone,clone3,fork,vfork,execve",
            "-o",
            str(log),
            sys.executable,
            "-c",
            script,
        ],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    calls = [ln for ln in log.read_text().splitlines() if "execve(" in ln or "clone" in ln]
    assert len(calls) == 1 and "execve(" in calls[0], calls  # only python3 itself


def test_track_file_is_replaced_whole(tmp_path: Path) -> None:
    """Each publish renames a complete new file over the old one (a new inode, mode 0644)."""
    track = TrackFile(tmp_path / "track" / "haproxy")
    assert track.publish(True)
    first = os.stat(track.path).st_ino
    assert track.publish(False)
    assert track.path.read_bytes() == b"1\n"
    assert os.stat(track.path).st_ino != first
    assert oct(os.stat(track.path).st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(track.path.parent)) == ["haproxy"]  # no temp file left


def test_read_only_folder_is_logged_once_per_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder that refuses writes is logged when it starts and when it ends, not per round."""
    folder = tmp_path / "ro"
    folder.mkdir()
    track = TrackFile(folder / "haproxy")
    os.chmod(folder, 0o555)
    if os.access(folder, os.W_OK):  # root ignores modes: use a file where the folder should be
        os.chmod(folder, 0o755)
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    caplog.set_level(logging.INFO, logger="ha_notify")
    assert [track.publish(True) for _ in range(5)] == [False] * 5
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot write track_file" in errors[0].getMessage()
    if folder.is_file():
        folder.unlink()
    else:
        os.chmod(folder, 0o755)
    assert track.publish(False)
    assert any("written again (after 5 failed rounds)" in r.getMessage() for r in caplog.records)
    assert track.path.read_bytes() == b"1\n"


def test_full_file_system_says_to_free_space(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC (a full tmpfs) is reported with the fix, and retried."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"x" * 4096)
        track = TrackFile(mount / "haproxy")
        caplog.set_level(logging.INFO, logger="ha_notify")
        assert not track.publish(True) and not track.publish(True)
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "free space" in errors[0]
        (mount / "filler").unlink()
        assert track.publish(True)
        assert track.path.read_bytes() == b"0\n"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def node_metrics(tmp_path: Path) -> str:
    """The textfile for a node holding one of two VIPs, one instance MASTER, one BACKUP."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(
        '{"INSTANCE:VI_1": {"state": "master", "seq": 3, "since": 1700000000.5},'
        ' "INSTANCE:VI_\\"2": {"state": "backup", "seq": 1, "since": 1700000001},'
        ' "GROUP:G": {"state": "master", "seq": 1, "since": 1}}'
    )
    probe = NodeMetrics(state, ["mail", "oncall"])
    vrrp = probe.refresh()
    addresses = (vips.Vip("192.168.0.130", "eth0", "VI_1"), vips.Vip("10.0.0.5", None, None))
    ctx = RoundContext(1.0, 1700000002.25, addresses, frozenset({"10.0.0.5"}), None, vrrp)
    probe.round(ctx)
    extra = [Sample("ha_notify_split_brain", (("vip", "192.168.0.130"),), 0.0)]
    return render([*probe.metrics(), *extra], "prod", "lb1")


def test_metrics_carry_cluster_and_node_never_instance(tmp_path: Path) -> None:
    """Every series has cluster and node; no label is called instance."""
    text = node_metrics(tmp_path)
    series = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert series and all('{cluster="prod",node="lb1"' in ln for ln in series)
    assert "instance=" not in text.replace("vrrp_instance=", "")
    assert (
        'ha_notify_vrrp_state{cluster="prod",node="lb1",vrrp_instance="VI_1",state="master"} 1'
        in series
    )
    assert (
        'ha_notify_vrrp_state{cluster="prod",node="lb1",vrrp_instance="VI_1",state="backup"} 0'
        in series
    )
    assert (
        'ha_notify_vrrp_transitions_total{cluster="prod",node="lb1",vrrp_instance="VI_1"} 3'
        in series
    )
    assert 'ha_notify_vip_held{cluster="prod",node="lb1",vip="10.0.0.5"} 1' in series
    assert 'ha_notify_vip_held{cluster="prod",node="lb1",vip="192.168.0.130"} 0' in series
    assert 'ha_notify_spool_pending{cluster="prod",node="lb1",channel="oncall"} 0' in series
    assert (
        'ha_notify_watch_last_round_timestamp_seconds{cluster="prod",node="lb1"} 1700000002.250'
        in series
    )
    assert 'vrrp_instance="VI_\\"2"' in text  # label values are escaped
    assert "GROUP" not in text and 'vrrp_instance="G"' not in text


def test_metrics_pass_promtool(tmp_path: Path) -> None:
    """promtool check metrics accepts the file (names, HELP, TYPE, counters)."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    text = node_metrics(tmp_path)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


def test_spool_depth_is_counted_per_channel(tmp_path: Path) -> None:
    """Pending and dead deliveries appear per channel, re-read when the spool changes."""
    from ha_notify.event import Event, Node
    from ha_notify.notify.spool import Spool

    state = tmp_path / "state"
    probe = NodeMetrics(state, ["mail"])
    probe.refresh()
    assert probe.spool == {}
    spool = Spool(state)
    node = Node("lb1", "lb1", (), None)
    event = Event(state="master", name="VI_1", cluster="c", node=node, seq=1)
    made = spool.add(event, ["mail", "chat"])
    spool.bury(made[1], "test")
    probe.refresh()
    assert probe.spool == {"mail": (1, 0), "chat": (0, 1)}


class Recorder:
    """A probe that keeps what it was handed and publishes one sample."""

    def __init__(self) -> None:
        self.seen: list[RoundContext] = []

    def round(self, ctx: RoundContext) -> None:
        self.seen.append(ctx)

    def metrics(self) -> list[Sample]:
        return [Sample("ha_notify_split_brain", (("vip", "127.0.0.1"),), 1.0)]


class Broken:
    """A probe that fails every round."""

    def round(self, ctx: RoundContext) -> None:
        raise RuntimeError("boom")

    def metrics(self) -> list[Sample]:
        return []


def test_probes_get_the_round_and_a_broken_one_harms_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe sees verdict, VIPs and held addresses; its samples reach the file; a probe
    that raises is logged once and the track file is still written."""
    from ha_notify.watch.loop import Watcher

    data = {
        "general": {"state_dir": str(tmp_path / "state"), "virtual_addresses": ["127.0.0.1"]},
        "checks": {"haproxy": {"pidfile": str(tmp_path / "none.pid")}},
        "watch": {
            "track_file": str(tmp_path / "t" / "h"),
            "metrics_file": str(tmp_path / "m.prom"),
        },
    }
    watcher = Watcher(parse(data, tmp_path / "c.toml"))
    recorder, broken = Recorder(), Broken()
    watcher.add_probe(broken)
    watcher.add_probe(recorder)
    caplog.set_level(logging.INFO, logger="ha_notify")
    for _ in range(3):
        verdict = watcher.round()
    assert not verdict.healthy and "none.pid does not exist" in verdict.reason
    ctx = recorder.seen[-1]
    assert ctx.verdict == verdict and ctx.held == frozenset({"127.0.0.1"})
    assert [v.address for v in ctx.vips] == ["127.0.0.1"]
    assert (tmp_path / "t" / "h").read_text() == "1\n"
    assert 'ha_notify_split_brain{cluster="haproxy",node="' in (tmp_path / "m.prom").read_text()
    assert sum("watch probe Broken failed" in r.getMessage() for r in caplog.records) == 1


def test_config_show_prints_watch_with_defaults(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """config show lists [watch] with its defaults, and a disabled metrics file as ""."""
    path = tmp_path / "config.toml"
    path.write_text('[watch]\ninterval = 0.5\nmetrics_file = ""\n')
    result = cli("config", "show", "--config", str(path))
    assert result.code == 0, result.err
    assert '[watch]\ninterval = 0.5\ntrack_file = "/run/ha-notify/track/haproxy"' in result.out
    assert 'metrics_file = ""  # off' in result.out
    assert "# fifo is not set" in result.out
