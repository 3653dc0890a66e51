"""Headless Chromium for browser tests: the system's browser, driven by Playwright.

Playwright never downloads a browser here: it launches the Chromium or Chrome that
``tools/ensure_chromium.sh`` found or installed (``make test`` passes it as
``CHROMIUM_PATH``), else the first on PATH. With none, the tests fail with one line
saying what to install -- never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".run" / "artifacts"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("no Chromium or Chrome found: run tools/ensure_chromium.sh (installs Debian's chromium), "
                "or set CHROMIUM_PATH to a Chrome/Chromium binary")
# Without the background-networking flags Chromium keeps dialling Google's services, which a
# closed network refuses; a fresh profile per run keeps old state out.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def find_chromium() -> str | None:
    """``CHROMIUM_PATH``, else the first browser on PATH."""
    named = os.environ.get("CHROMIUM_PATH")
    if named:
        return named if os.access(named, os.X_OK) else None
    return next((found for found in map(shutil.which, BROWSER_NAMES) if found), None)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """One headless Chromium (fresh ``--user-data-dir``) for the session's pages."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_path, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 820, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests leave screenshots and pages for people to look at (``.run/artifacts``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
