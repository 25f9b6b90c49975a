"""A real headless Chromium for tests that look at pages (the HTML report).

The browser is the system's Chromium (Debian's ``chromium`` package, see the README
set-up), driven by Playwright for Python with ``executable_path``: Playwright's own
browser downloads are never used. ``COGFLEET_CHROMIUM`` names another binary.
Without a browser the tests that need one are skipped, except in CI (``CI`` set),
where a missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No network, no first-run or background services: the page under test is all there is.
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    named = os.environ.get("COGFLEET_CHROMIUM")
    if named:
        return named
    return next((found for c in CANDIDATES if (found := shutil.which(c))), None)


def artifacts_dir() -> Path:
    """Where tests leave screenshots (``COGFLEET_TEST_ARTIFACTS``, default ``test-artifacts/``)."""
    path = Path(os.environ.get("COGFLEET_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class PageCheck:
    """What a page did while it loaded: console messages and uncaught errors."""

    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"] + self.errors

    def reveal_everything(self) -> None:
        """Open every fold and load every image now (lazy images load when scrolled to)."""
        self.page.evaluate(
            """() => {
                document.querySelectorAll('details').forEach(d => { d.open = true; });
                document.querySelectorAll('img[loading="lazy"]')
                    .forEach(i => { i.loading = 'eager'; });
            }"""
        )
        self.page.wait_for_function(
            "() => [...document.images].every(i => i.complete)", timeout=60_000
        )

    def images(self) -> list[dict[str, Any]]:
        """Every ``<img>``: its natural size and where it sits."""
        result: list[dict[str, Any]] = self.page.evaluate(
            """() => [...document.images].map(i => ({
                width: i.naturalWidth, height: i.naturalHeight,
                src: i.currentSrc.slice(0, 40), alt: i.alt,
                where: (i.closest('[data-path], article, section') || document.body).className,
            }))"""
        )
        return result


class Browser:
    def __init__(self, browser: Any) -> None:
        self.browser = browser

    @contextlib.contextmanager
    def open(self, path: Path, *, width: int = 1280, height: int = 900) -> Iterator[PageCheck]:
        """Load ``path`` in a new page; every request that leaves the file is refused."""
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        check = PageCheck(page)
        page.on("console", lambda m: check.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: check.errors.append(str(e)))
        # any request leaving the page is a defect of a self-contained report
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(
            ("file:", "data:")) else route.continue_())
        page.goto(path.resolve().as_uri(), wait_until="load")
        try:
            yield check
        finally:
            context.close()


@contextlib.contextmanager
def launch_browser() -> Iterator[Browser]:
    """Start Chromium; skipped (failed in CI) when there is none.

    Playwright's synchronous API keeps an event loop running in this thread while the
    browser is open, so code that calls ``asyncio.run`` (any ``cogfleet push``) must
    run before the browser starts or after it closed: use this inside the test, or
    the :func:`browser` fixture in tests that only look at pages.
    """
    executable = chromium_path()
    if executable is None:
        message = "no Chromium found (install Debian's chromium package, see README set-up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright gives every launch a fresh profile (user-data-dir) of its own
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield Browser(launched)
        finally:
            launched.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launch_browser() as launched:
        yield launched
