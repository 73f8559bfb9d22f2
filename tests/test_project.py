"""Project files and the test command: licence, changelog, one version, the CI skip rule."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ha_notify
from tests.haproxy_helpers import REPO


def test_license_is_the_mit_text() -> None:
    """pyproject says MIT; the licence text ships with the copyright holder named."""
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 ha-notify contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    assert 'license = "MIT"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")


def test_changelog_has_unreleased_and_the_current_version() -> None:
    """Keep a Changelog: an Unreleased section first, then the package's own version."""
    headings = re.findall(r"^## \[([^\]]+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert ha_notify.__version__ in headings


def test_version_has_one_source() -> None:
    """pyproject reads the version from ha_notify/__init__.py; no second copy exists."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert '[tool.hatch.version]\npath = "ha_notify/__init__.py"' in pyproject
    assert not re.search(r"^version\s*=", pyproject, re.M)


def test_readme_first_commands_need_no_sudo() -> None:
    """The README's first commands run in a root shell where sudo does not exist."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert commands == ["sh scripts/lab.sh", "sh scripts/test.sh"]
    assert all((REPO / c.split()[1]).is_file() for c in commands)


def find_python(env: dict[str, str], *call: str) -> str:
    """Run one function of scripts/pythons.sh with this environment; its output."""
    script = f'. "{REPO}/scripts/pythons.sh"; {" ".join(call)}'
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_lane_finder_finds_this_interpreter(tmp_path: Path) -> None:
    """An interpreter on PATH as python3.N is found by its version, and is a newest candidate."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    major, minor = sys.version_info[:2]
    (bin_dir / f"python{major}.{minor}").symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)}
    found = find_python(env, "python_version", f"{major}.{minor}")
    assert (
        found
        and subprocess.run(
            [found, "-c", f"import sys; assert sys.version_info[:2] == ({major}, {minor})"],
            check=False,
        ).returncode
        == 0
    )
    assert find_python(env, "python_newest")


def test_lane_finder_says_nothing_for_a_missing_version(tmp_path: Path) -> None:
    """No Python 3.1 anywhere: the finder prints nothing (test.sh then says so and goes on)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)}
    assert find_python(env, "python_version", "3.1") == ""


def test_test_command_names_a_missing_lane() -> None:
    """test.sh says on stderr, in capitals, when the 3.9 lane did not run."""
    script = (REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "NO Python 3.9 found" in script and "did NOT run" in script
    assert '"$VENV/bin/ruff" format --check .' in script


CI_CASES = """
import os
import pytest

@pytest.mark.root
def test_marked_root():
    pytest.skip("needs root")

def test_unmarked_but_needs_haproxy():
    pytest.skip("haproxy is not installed (apt-get install -y haproxy)")

@pytest.mark.keepalived
@pytest.mark.skipif(True, reason="keepalived missing")
def test_marked_keepalived_skipif():
    pass

def test_other_skip():
    pytest.skip("apprise is not installed")

@pytest.mark.root
@pytest.mark.xfail(reason="known")
def test_root_xfail():
    assert False
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
@pytest.mark.parametrize("ci", ["true", ""])
def test_ci_fails_on_skipped_root_haproxy_keepalived_tests(
    ci: str, workers: list[str], tmp_path: Path
) -> None:
    """Under CI=true a skipped root/haproxy/keepalived test fails the run; other skips stay
    skips; without CI they are all plain skips. The same on xdist workers (scripts/test.sh)."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_makereport\n")
    (tmp_path / "test_cases.py").write_text(CI_CASES)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    root\n    haproxy\n    keepalived\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *workers, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    summary = done.stdout.splitlines()[-1]
    if ci:
        assert done.returncode == 1, done.stdout
        failed = {
            line.split()[1].split("::")[-1]
            for line in done.stdout.splitlines()
            if line.startswith(("FAILED ", "ERROR "))
        }
        assert failed == {
            "test_marked_root",
            "test_unmarked_but_needs_haproxy",
            "test_marked_keepalived_skipif",
        }
        assert "1 skipped" in summary and "1 xfailed" in summary
        assert "CI=true: a root test was skipped: needs root\n" in done.stdout
        assert "CI=true: a haproxy test was skipped: haproxy is not installed" in done.stdout
        assert "CI=true: a keepalived test was skipped: keepalived missing" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "4 skipped" in summary and "1 xfailed" in summary
