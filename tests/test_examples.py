"""`ha-notify example`: the shipped contrib/ files, from a checkout and from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from ha_notify import examples
from tests.haproxy_helpers import REPO

CONTRIB = REPO / "contrib"


def contrib_files() -> list[str]:
    """Every file under contrib/, as a path relative to it."""
    return sorted(p.relative_to(CONTRIB).as_posix() for p in CONTRIB.rglob("*") if p.is_file())


def test_config_prints_the_file_as_is(cli) -> None:
    """`ha-notify example config` is contrib/ha-notify/config.toml, byte for byte."""
    result = cli("example", "config")
    assert result.code == 0
    assert result.out == (CONTRIB / "ha-notify" / "config.toml").read_text(encoding="utf-8")


def test_every_contrib_folder_is_a_topic(cli) -> None:
    """The listing names one topic per contrib/ folder and every file in it."""
    result = cli("example")
    assert result.code == 0
    folders = {p.name for p in CONTRIB.iterdir() if p.is_dir()}
    topics = {
        examples.ALIASES.get(line.split()[0], line.split()[0])
        for line in result.out.splitlines()[1:]
    }
    assert {("ha-notify" if t == "config" else t) for t in topics} == folders
    for name in contrib_files():
        assert Path(name).name in result.out


def test_several_files_each_under_a_header(cli) -> None:
    """A topic with several files prints each one under `==> topic/file <==`, in order."""
    result = cli("example", "keepalived")
    assert result.code == 0
    names = sorted(p.name for p in (CONTRIB / "keepalived").iterdir() if p.is_file())
    headers = [line for line in result.out.splitlines() if line.startswith("==> ")]
    assert headers == [f"==> keepalived/{n} <==" for n in names]
    for name in names:
        assert (CONTRIB / "keepalived" / name).read_text(encoding="utf-8") in result.out


@pytest.mark.parametrize("name", ["keepalived-node2.conf", "node2"])
def test_one_file_by_name_or_part(name: str, cli) -> None:
    """`ha-notify example keepalived node2` prints that one file, ready for a redirect."""
    result = cli("example", "keepalived", name)
    assert result.code == 0
    assert result.out == (CONTRIB / "keepalived" / "keepalived-node2.conf").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nginx"], "unknown example 'nginx': expected one of "),
        (
            ["keepalived", "node3"],
            "example 'keepalived': has no file 'node3': expected one of keepalived-node1",
        ),
        (["keepalived", "node"], "'node' matches several files"),
    ],
)
def test_unknown_topic_or_file_exits_2(args: list[str], message: str, cli) -> None:
    """A topic or file that is not shipped exits 2 with one line listing what is."""
    result = cli("example", *args)
    assert result.code == 2
    assert message in result.err and result.err.count("\n") == 1
    assert result.out == ""


def test_new_contrib_folders_and_files_are_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """A folder or file another change adds to contrib/ is a topic with no code change."""
    package = tmp_path / "ha_notify"
    (package / "contrib" / "prometheus" / "tests").mkdir(parents=True)
    (package / "contrib" / "prometheus" / "ha-notify-rules.yml").write_text("groups: []\n")
    (package / "contrib" / "prometheus" / "tests" / "rules_test.yml").write_text("tests: []\n")
    (package / "contrib" / "prometheus" / ".hidden").write_text("x")
    (package / "contrib" / "ha-notify").mkdir()
    (package / "contrib" / "ha-notify" / "config.toml").write_text("[general]\n")
    monkeypatch.setattr(examples, "PACKAGE", package)
    listing = cli("example")
    assert "prometheus   ha-notify-rules.yml, tests/rules_test.yml" in listing.out
    assert ".hidden" not in listing.out
    assert cli("example", "prometheus", "tests/rules_test.yml").out == "tests: []\n"
    assert cli("example", "ha-notify").out == "[general]\n"


def test_missing_contrib_says_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """An install without its reference files is named, not a traceback."""
    monkeypatch.setattr(examples, "PACKAGE", tmp_path / "site" / "ha_notify")
    result = cli("example", "config")
    assert result.code == 2
    assert "reference files are missing" in result.err and "reinstall" in result.err


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("ha_notify-*.whl")
    return path


def test_wheel_ships_contrib_and_license(wheel: Path) -> None:
    """Every contrib/ file is in the wheel under ha_notify/contrib/, and the licence text."""
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(
        n[len("ha_notify/contrib/") :] for n in names if n.startswith("ha_notify/contrib/")
    )
    assert shipped == contrib_files()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_example_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """In a fresh virtualenv with the wheel installed, `ha-notify example keepalived` works
    from any folder, and reads the files installed with the package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    target = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from this test run's environment (a plain path, so its
    # editable-install .pth is not processed: the checkout stays out of sys.path).
    (target / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "HA_NOTIFY_SYSLOG": "off", "PYTHONPATH": ""}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ha_notify.examples as e; print(e.root())"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.strip() == str(target / "ha_notify" / "contrib"), where.stderr
    shown = subprocess.run(
        [str(venv / "bin" / "ha-notify"), "example", "keepalived"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    for path in sorted((CONTRIB / "keepalived").iterdir()):
        assert (
            f"==> keepalived/{path.name} <==\n" + path.read_text(encoding="utf-8") in shown.stdout
        )
