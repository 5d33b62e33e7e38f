"""Debian's chromium driven by Playwright, for the tests that look at pages in a browser
(playwright's own browser download fails on these machines)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser: the test is skipped where chromium or playwright is missing,
    and failed under CI=true (where .ci/run installs chromium)."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright  # type: ignore[import-not-found, unused-ignore]
    except ImportError as error:
        problem = f"playwright is not installed ({error})"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    if problem is not None:
        if IN_CI:
            pytest.fail(problem + " (it is mandatory under CI=true)")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
