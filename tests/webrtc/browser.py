"""Headless Debian Chromium driven by Playwright, for the softphone page's tests.

Chromium's fake devices stand in for a microphone (a WAV file it loops) and grant the
permission prompt; Playwright adds --headless, --no-sandbox and a fresh profile. No browser is
downloaded: ``executable_path`` is the system's Chromium.

    async with chromium(tmp_path, tone_hz=660) as browser:
        page = await open_softphone(browser, world, token=...)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.testing.audio import tone, write_wav

CHROMIUM = Path("/usr/bin/chromium")
try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the skip below says why
    async_playwright = None  # type: ignore[assignment]

needs_chromium = pytest.mark.skipif(
    async_playwright is None or not CHROMIUM.exists(),
    reason="needs Playwright (pip install playwright) and Debian chromium at /usr/bin/chromium",
)

CAPTURE_RATE = 48000
T = TypeVar("T")


def chromium_args(capture: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={capture}",
        "--allow-loopback-in-peer-connection",  # the gateway's candidates are on 127.0.0.1
        "--autoplay-policy=no-user-gesture-required",
        "--disable-gpu",
        # Nothing to reach: the machine's network is closed.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path, tone_hz: float) -> AsyncIterator[Browser]:
    """A browser whose microphone plays a sine of ``tone_hz`` (a mono 16-bit WAV, looped)."""
    capture = tmp_path / f"microphone-{tone_hz:g}.wav"
    write_wav(capture, tone(tone_hz, 2.0, CAPTURE_RATE), CAPTURE_RATE)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_args(capture)
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_softphone(
    browser: Browser, base_url: str, token: str | None = None, **page_options: Any
) -> Page:
    """A new tab on the softphone page; signed in already when ``token`` is given (#token=).
    ``page_options`` go to Playwright's ``new_page`` (viewport, device_scale_factor...)."""
    page = await browser.new_page(**page_options)
    page.on("pageerror", lambda error: print(f"page error: {error}"))
    page.on("console", lambda message: print(f"console: {message.text}"))
    fragment = f"#token={token}" if token else ""
    await page.goto(f"{base_url}/webrtc/phone{fragment}")
    if token:
        await page.locator("#phone").wait_for(state="visible", timeout=5000)
    return page


async def until(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 5.0
) -> T:
    """Poll ``probe`` until ``accept`` takes its value; the last value in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(0.05)


async def page_hears(page: Page, hz: float, tolerance: float = 15, timeout: float = 5.0) -> Any:
    """Until the page's analyser says the remote audio's strongest frequency is ``hz``."""

    async def probe() -> Any:
        return await page.evaluate("window.softphone.dominantHz()")

    return await until(probe, lambda f: f is not None and abs(f - hz) <= tolerance, timeout)
