"""The watcher's metrics file: rewritten every round, cheap, atomic, and never poisoned."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ha_notify.config import parse
from ha_notify.watch.metrics import MetricsFile, NodeMetrics, render
from ha_notify.watch.probe import RoundContext, Sample

REPO = Path(__file__).resolve().parents[1]
STAMP = "ha_notify_watch_last_round_timestamp_seconds"


def samples(held: float, wall: float, rounds: int, vip: str = "10.0.0.5") -> list[Sample]:
    """One VIP's series and the round's own two."""
    return [
        Sample("ha_notify_vip_held", (("vip", vip),), held),
        Sample(STAMP, (), wall),
        Sample("ha_notify_watch_rounds_total", (), float(rounds)),
    ]


def value(text: str, name: str) -> str:
    """The value of the one row of ``name`` in a textfile."""
    rows = [ln for ln in text.splitlines() if ln.startswith(name + "{")]
    assert len(rows) == 1, rows
    return rows[0].rsplit(" ", 1)[1]


def watcher_config(tmp_path: Path, state: Path) -> dict[str, object]:
    return {
        "general": {"state_dir": str(state), "cluster": "c1"},
        "checks": {"haproxy": {"pidfile": str(tmp_path / "none.pid")}},
        "watch": {
            "track_file": str(tmp_path / "t" / "h"),
            "metrics_file": str(tmp_path / "m.prom"),
        },
    }


def test_every_round_replaces_the_file_with_a_fresh_timestamp(tmp_path: Path) -> None:
    """Unchanged series still give a new file each round, with that round's time and count."""
    out = MetricsFile(tmp_path / "m.prom")
    inodes = []
    for n in range(1, 4):
        assert out.publish(samples(1, 1700000000 + n, n), "c", "n")
        text = out.path.read_text()
        inodes.append(out.path.stat().st_ino)
        assert value(text, STAMP) == f"{1700000000 + n}.000"
        assert value(text, "ha_notify_watch_rounds_total") == str(n)
    assert inodes[0] != inodes[1] != inodes[2]  # replaced (rename), never written in place
    assert sorted(os.listdir(tmp_path)) == ["m.prom"]  # no temp file left
    assert oct(out.path.stat().st_mode & 0o777) == "0o644"


def test_kept_text_follows_every_change(tmp_path: Path) -> None:
    """The reused bytes are never stale: each round's file equals a full render of its samples."""
    out = MetricsFile(tmp_path / "m.prom")
    rounds = [
        (samples(1, 1.5, 1), "c", "n"),
        (samples(1, 2.25, 2), "c", "n"),  # only the clock moved
        (samples(0, 3.0, 3), "c", "n"),  # a value changed
        (samples(0, 4.0, 4, vip="10.0.0.6"), "c", "n"),  # a label changed
        (samples(0, 5.0, 5, vip="10.0.0.6"), "c2", "n"),  # the cluster changed (a reload)
        ([Sample("ha_notify_vip_held", (("vip", "x"),), 1.0)], "c2", "n"),  # no round series
    ]
    for taken, cluster, node in rounds:
        assert out.publish(taken, cluster, node)
        assert out.path.read_text() == render(taken, cluster, node)
    assert 'cluster="c2"' in out.path.read_text() and STAMP not in out.path.read_text()


def test_file_keeps_its_length_while_only_the_clock_moves(tmp_path: Path) -> None:
    """The round's time has fixed decimals, so an unchanged node gives a same-length file."""
    out = MetricsFile(tmp_path / "m.prom")
    sizes = set()
    for wall in (1700000000.0, 1700000000.1, 1700000000.25, 1700000001.125):
        assert out.publish(samples(1, wall, 5), "c", "n")
        sizes.add(out.path.stat().st_size)
    assert len(sizes) == 1


def test_no_fsync_on_the_metrics_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing never calls fsync: the file is made again next round, syncing buys nothing."""

    def refuse(fd: int) -> None:
        raise AssertionError("fsync called")

    monkeypatch.setattr(os, "fsync", refuse)
    monkeypatch.setattr(os, "fdatasync", refuse)
    out = MetricsFile(tmp_path / "m.prom")
    assert out.publish(samples(1, 1.0, 1), "c", "n") and out.publish(samples(0, 2.0, 2), "c", "n")


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """node_exporter reading while the watcher writes gets a whole file every time."""
    out = MetricsFile(tmp_path / "m.prom")
    assert out.publish(samples(1, 1.0, 0), "c", "n")
    done = threading.Event()
    seen: list[str] = []

    def read() -> None:
        while not done.is_set():
            seen.append(out.path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 1500):
            # Different lengths each time: a torn read would show as a bad last line.
            vip = "10.0.0." + str(n % 250)
            assert out.publish(samples(n % 2, 1.0 + n, n, vip), "c", "n")
    finally:
        done.set()
        reader.join()
    assert len(seen) > 10
    for text in seen:
        assert text.endswith("\n") and text.count("ha_notify_watch_rounds_total{") == 1, text


WRITER = """
import sys
from pathlib import Path
from ha_notify.watch.metrics import MetricsFile
from ha_notify.watch.probe import Sample
out = MetricsFile(Path(sys.argv[1]))
n = 0
while True:
    n += 1
    vip = "10.0.0." + str(n % 250)
    out.publish([Sample("ha_notify_vip_held", (("vip", vip),), 1.0),
                 Sample("ha_notify_watch_rounds_total", (), float(n))], "c", "n")
    if n == 50:
        print("ready", flush=True)
"""


@pytest.mark.parametrize("run", range(3))
def test_a_writer_killed_mid_round_leaves_a_whole_file(tmp_path: Path, run: int) -> None:
    """SIGKILL at any point of a write leaves the old or new file whole; the next watcher's
    first write replaces any leftover temp file."""
    del run  # three kills, three different moments
    path = tmp_path / "m.prom"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    text = path.read_text()
    assert text.startswith("# HELP ") and text.endswith("\n")
    assert int(value(text, "ha_notify_watch_rounds_total")) >= 50
    out = MetricsFile(path)
    assert out.publish(samples(1, 9.0, 1), "c", "n")
    assert sorted(os.listdir(tmp_path)) == ["m.prom"]
    assert value(path.read_text(), STAMP) == "9.000"


def test_full_disk_keeps_the_clock_fresh_in_place_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a full file system an unchanged node's file is written over in place (same length),
    a longer one is not written (False), one error is logged, and writes resume when freed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mount)], check=True)
    try:
        out = MetricsFile(mount / "m.prom")
        assert out.publish(samples(1, 100.0, 1), "c", "n")
        filler = mount / "filler"
        with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
            while True:  # fill the file system to the last byte
                f.write(b"x" * 512)
        caplog.set_level(logging.INFO, logger="ha_notify")
        for n in range(2, 6):
            assert out.publish(samples(1, 100.0 + n, n), "c", "n")  # in place, same length
            assert value(out.path.read_text(), STAMP) == f"{100 + n}.000"
        assert not out.publish(samples(1, 107.0, 7, vip="10.0.0.200"), "c", "n")  # longer
        assert value(out.path.read_text(), STAMP) == "105.000"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2 and all("free space" in e for e in errors), errors
        filler.unlink()
        assert out.publish(samples(1, 108.0, 8, vip="10.0.0.200"), "c", "n")
        assert value(out.path.read_text(), STAMP) == "108.000"
        assert any("written again" in r.getMessage() for r in caplog.records)
        assert sorted(os.listdir(mount)) == ["m.prom"]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_unwritable_folder_is_retried_every_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder that refuses writes is logged once, retried each round, and recovers."""
    folder = tmp_path / "ro"
    folder.write_text("not a folder")  # works as root too, unlike chmod
    out = MetricsFile(folder / "m.prom")
    caplog.set_level(logging.INFO, logger="ha_notify")
    assert [out.publish(samples(1, float(n), n), "c", "n") for n in range(4)] == [False] * 4
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 1
    folder.unlink()
    assert out.publish(samples(1, 9.0, 9), "c", "n")
    assert value(out.path.read_text(), STAMP) == "9.000"
    assert any("(after 4 failed rounds)" in r.getMessage() for r in caplog.records)


def test_watcher_writes_the_file_every_round(tmp_path: Path) -> None:
    """Each Watcher round leaves that round's count and a time that moved forward."""
    from ha_notify.watch.loop import Watcher

    watcher = Watcher(parse(watcher_config(tmp_path, tmp_path / "state"), tmp_path / "c.toml"))
    stamps = []
    for n in range(1, 4):
        watcher.round()
        text = (tmp_path / "m.prom").read_text()
        assert value(text, "ha_notify_watch_rounds_total") == str(n)
        stamps.append(float(value(text, STAMP)))
    assert stamps == sorted(stamps) and stamps[0] > 1.6e9


@pytest.mark.parametrize(
    "entry",
    [
        '{"state": "master", "seq": 3, "since": NaN}',
        '{"state": "master", "seq": 3, "since": Infinity}',
        '{"state": "master", "seq": 3, "since": -Infinity}',
        '{"state": "master", "seq": 3, "since": 1e999}',
    ],
)
def test_non_finite_transition_time_is_left_out(tmp_path: Path, entry: str) -> None:
    """A state.json time of NaN/Infinity marks that entry damaged (the store resets it and
    numbers on from the spool): the watcher does not crash, the other instance is exported
    whole, no NaN/Inf reaches the file, and promtool accepts it."""
    from ha_notify.watch.loop import Watcher

    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(
        f'{{"INSTANCE:VI_1": {entry}, "INSTANCE:VI_2": {{"state": "backup", "seq": 1, '
        '"since": 1700000000}}'
    )
    watcher = Watcher(parse(watcher_config(tmp_path, state), tmp_path / "c.toml"))
    watcher.round()
    text = (tmp_path / "m.prom").read_text()
    assert 'vrrp_instance="VI_2",state="backup"} 1' in text
    assert 'ha_notify_vrrp_transitions_total{cluster="c1",node=' in text
    stamps = [ln for ln in text.splitlines() if ln.startswith("ha_notify_vrrp_last_transition")]
    assert len(stamps) == 1 and 'vrrp_instance="VI_2"} 1700000000' in stamps[0]
    assert "NaN" not in text and "Inf" not in text
    if shutil.which("promtool"):
        done = subprocess.run(
            ["promtool", "check", "metrics"], input=text, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_huge_sequence_number_skips_only_its_own_entry(tmp_path: Path) -> None:
    """seq = Infinity in state.json skips that instance; the others are still published."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(
        '{"INSTANCE:A": {"state": "master", "seq": Infinity, "since": 1},'
        ' "INSTANCE:B": {"state": "backup", "seq": 2, "since": 2}}'
    )
    probe = NodeMetrics(state, [])
    assert list(probe.refresh()) == ["B"]


def test_non_finite_spool_times_are_still_counted(tmp_path: Path) -> None:
    """A spooled event whose created time is NaN or Infinity is damaged: quarantined (as
    `status` then counts it), never a crash and never a NaN in the metrics."""
    from ha_notify.event import Event, Node
    from ha_notify.notify.spool import Spool

    state = tmp_path / "state"
    spool = Spool(state)
    node = Node("lb1", "lb1", (), None)
    for seq, bad in ((1, "NaN"), (2, "Infinity")):
        made = spool.add(
            Event(state="master", name="VI_1", cluster="c", node=node, seq=seq), ["mail"]
        )
        path = made[0].path
        data = json.loads(path.read_text())
        data["created"] = "@"
        path.write_text(json.dumps(data).replace('"@"', bad))
    probe = NodeMetrics(state, ["mail"])
    probe.refresh()
    assert probe.spool.get("mail", (0, 0)) == (0, 0)
    assert len(list((state / "spool" / "quarantine").glob("*-pending-*.json"))) == 2


def test_odd_probe_values_are_spelled_for_prometheus() -> None:
    """A probe's NaN, +Inf and -Inf are written as Prometheus reads them, never a crash."""
    taken = [
        Sample("ha_notify_split_brain", (("vip", "a"),), float("nan")),
        Sample("ha_notify_split_brain", (("vip", "b"),), float("inf")),
        Sample("ha_notify_split_brain", (("vip", "c"),), float("-inf")),
    ]
    text = render(taken, "c", "n")
    assert [ln.rsplit(" ", 1)[1] for ln in text.splitlines() if ln.startswith("ha_")] == [
        "NaN",
        "+Inf",
        "-Inf",
    ]


class OddProbe:
    """A probe whose sample value is not a number at all."""

    def round(self, ctx: RoundContext) -> None:
        del ctx

    def metrics(self) -> list[Sample]:
        return [Sample("ha_notify_split_brain", (("vip", "x"),), "oops")]  # type: ignore[arg-type]


def test_a_sample_that_cannot_be_written_does_not_stop_the_rounds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe publishing garbage is logged once; rounds and the track file go on."""
    from ha_notify.watch.loop import Watcher

    watcher = Watcher(parse(watcher_config(tmp_path, tmp_path / "state"), tmp_path / "c.toml"))
    watcher.add_probe(OddProbe())
    caplog.set_level(logging.INFO, logger="ha_notify")
    for _ in range(3):
        watcher.round()
    assert (tmp_path / "t" / "h").read_text() == "1\n"
    assert sum("MetricsFile failed" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("umask", "chmod"), [(0o022, False), (0o077, True), (0o027, True)])
def test_files_are_0644_whatever_the_umask(tmp_path: Path, umask: int, chmod: bool) -> None:
    """The fchmod is skipped only when the umask keeps 0644 whole; the files are 0644 anyway."""
    from ha_notify.watch.trackfile import TrackFile, process_umask

    old = os.umask(umask)
    try:
        assert process_umask() == umask
        track, out = TrackFile(tmp_path / "t" / "h"), MetricsFile(tmp_path / "m.prom")
        assert track.chmod is chmod and out.chmod is chmod
        for _ in range(2):
            assert track.publish(True) and out.publish(samples(1, 1.0, 1), "c", "n")
    finally:
        os.umask(old)
    for path in (track.path, out.path):
        assert oct(path.stat().st_mode & 0o777) == "0o644", path
