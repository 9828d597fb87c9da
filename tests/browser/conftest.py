"""Fixtures of the browser suite: the real main instance of the service suite, headless Chromium.

``service`` and ``small_clip`` are the service suite's session fixtures, re-exported: pytest
registers fixture functions found in a conftest's namespace, imported ones included. (Run
together with tests/service, each directory gets its own session instance.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.mediagen import make_clip
from tests.service.conftest import REPO, service, small_clip  # noqa: F401  (re-exported fixtures)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run"]


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where screenshots go: $SEGENC_TEST_OUTPUT/browser (default test-output/browser in the repo)."""
    base = Path(os.environ.get("SEGENC_TEST_OUTPUT", "test-output"))
    out = (base if base.is_absolute() else REPO / base) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def hd_clip(tmp_path_factory) -> Path:
    """1280x720, 5 s, H.264 + AAC: the default ladder gives 480p and 720p (never upscaled)."""
    return make_clip(tmp_path_factory.mktemp("clips-browser") / "hd.mp4", width=1280, height=720, seconds=5.0)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class UI:
    page: Any            # playwright.sync_api.Page at 1280x800, the app loaded
    errors: list[str]    # uncaught page exceptions and console errors seen so far
    service: Any         # tests.service.conftest.Instance


@pytest.fixture
def ui(browser, service):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.goto(service.url + "/")
    page.wait_for_selector('#health[data-state="live"]', timeout=15_000)
    try:
        yield UI(page, errors, service)
    finally:
        context.close()
