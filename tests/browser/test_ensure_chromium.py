"""``tools/ensure_chromium.sh``: finds a browser, installs Debian's where it can, else says what to install.

Each case runs the script with a PATH holding only stand-ins (a browser, ``apt-get``,
``sudo``), so the real machine's browser and package manager are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "ensure_chromium.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _browser(path: Path) -> Path:
    return _executable(path, 'echo "Chromium 156.0 stand-in"\n')


def _apt_get(bin_dir: Path, log: Path, *, lists_missing: bool = False) -> None:
    """An apt-get whose ``install chromium`` puts a browser on PATH (after ``update``, with ``lists_missing``)."""
    browser = bin_dir / "chromium"
    ready = bin_dir.parent / "lists-ready"
    install = (f'[ -e "{ready}" ] || {{ echo "E: Unable to locate package chromium" >&2; exit 100; }}\n'
               if lists_missing else "")
    _executable(bin_dir / "apt-get", f"""echo "apt-get $*" >> "{log}"
case "$1" in
  update) : > "{ready}"; exit 0 ;;
  install) {install}printf '#!/bin/sh\\necho Chromium 156.0\\n' > "{browser}"; /bin/chmod 755 "{browser}"; echo "Setting up chromium"; exit 0 ;;
esac
exit 1
""")
    # Not root: passwordless sudo, as a developer machine may have it.
    _executable(bin_dir / "sudo", '[ "$1" = -n ] && shift\n[ "$1" = true ] && exit 0\nexec "$@"\n')


def _run(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT)], env={"PATH": str(bin_dir), **env}, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    found = tmp_path / "bin"
    found.mkdir()
    return found


def test_prints_the_browser_on_path(bin_dir: Path) -> None:
    _browser(bin_dir / "google-chrome")
    result = _run(bin_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{bin_dir / 'google-chrome'}\n"


def test_a_browser_that_does_not_start_is_passed_over(bin_dir: Path, tmp_path: Path) -> None:
    _executable(bin_dir / "chromium-browser", "echo 'Command requires the chromium snap' >&2; exit 1\n")
    _browser(bin_dir / "google-chrome")
    result = _run(bin_dir)
    assert result.stdout == f"{bin_dir / 'google-chrome'}\n"


def test_installs_debians_chromium_when_none_is_there(bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    _apt_get(bin_dir, log)
    result = _run(bin_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{bin_dir / 'chromium'}\n"  # only the path: install output went to stderr
    assert "Setting up chromium" in result.stderr
    assert log.read_text().splitlines() == ["apt-get install -y -q --no-install-recommends chromium"]


def test_a_fresh_machine_without_package_lists_updates_them_first(bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    _apt_get(bin_dir, log, lists_missing=True)
    result = _run(bin_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{bin_dir / 'chromium'}\n"
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["install", "update", "install"]


def test_without_a_browser_or_apt_it_fails_with_one_line(bin_dir: Path) -> None:
    result = _run(bin_dir)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "apt-get install chromium" in result.stderr and "CHROMIUM_PATH" in result.stderr


def test_a_chromium_path_that_does_not_run_fails_without_installing_another(bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    _apt_get(bin_dir, log)
    _browser(bin_dir / "chromium-browser")
    result = _run(bin_dir, CHROMIUM_PATH=str(tmp_path / "no-such-chrome"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        (f"CHROMIUM_PATH={tmp_path / 'no-such-chrome'} does not run: point it at a Chrome/Chromium binary, "
        "or unset it to use Debian's chromium")
    ]
    assert not log.exists()


def test_a_chromium_path_that_runs_is_used(bin_dir: Path, tmp_path: Path) -> None:
    chrome = _browser(tmp_path / "my-chrome")
    _browser(bin_dir / "chromium")
    result = _run(bin_dir, CHROMIUM_PATH=str(chrome))
    assert result.stdout == f"{chrome}\n"
