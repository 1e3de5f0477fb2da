"""Browser fixtures: headless Debian Chromium driven by Playwright's sync API against pytest-django's live server.

The live server is threaded and serves the test PostgreSQL database, so browser tests need
``@pytest.mark.django_db(transaction=True)``. Playwright's sync API runs an event loop in the test thread,
which makes Django's async-safety check refuse ORM calls made by the test itself; they are safe here
(the loop only drives the browser), hence ``DJANGO_ALLOW_ASYNC_UNSAFE``.

Screenshots of the key pages go to ``artifacts/browser/NN-name.png`` (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One Chromium for the session (launching costs about a second)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(apt-get install chromium; .ci/run installs it)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_call_failed = report.failed
    return report


@pytest.fixture
def new_page(request, browser, live_server) -> Iterator[Callable]:
    """``new_page()`` opens a page in a fresh browser context (its own cookies: one per logged-in user).

    When the test fails, every open page is saved as ``artifacts/browser/failed-<test>-N.png``.
    """
    contexts = []

    def _new_page():
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield _new_page
    if getattr(request.node, "browser_call_failed", False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pages = [page for context in contexts for page in context.pages]
        for n, page in enumerate(pages, start=1):
            page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}-{n}.png"), full_page=True)
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot() -> Callable:
    """``screenshot(page, "name")`` saves ``artifacts/browser/NN-name.png``, numbered in call order."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}

    def _shot(page, name: str) -> Path:
        counter["n"] += 1
        path = ARTIFACTS / f"{counter['n']:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot
