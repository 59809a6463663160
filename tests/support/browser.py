"""A real headless Chromium for the page's browser tests (Debian's /usr/bin/chromium through its
chromedriver; nothing is downloaded) at phone size, and the helpers that wait on it, read it and
screenshot it. Screenshots land in test-output/screenshots/."""
from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import cv2
import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PHONE = {"width": 390, "height": 844, "pixelRatio": 2}
WAIT_S = 10.0


def _browser_or_skip():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs them (.ci/run); a missing browser there is a broken CI
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    return webdriver, Service


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver, Service = _browser_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def screenshot(driver, name: str, full_page: bool = False, width: int = PHONE["width"]) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 6000), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        driver.save_screenshot(str(path))
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] % width == 0, f"{path} is not {width} px wide"
    return path


WIDTHS = (390, 1280)  # a phone held upright, and a laptop or the gym's desk screen


def every_width(driver, base: str, pages: dict[str, str], prefix: str = "") -> list[Path]:
    """Each page at each of WIDTHS, full length, as test artefacts (test-output/screenshots/
    <prefix><page>-<width>.png), failing on a page that scrolls sideways at that width; the browser
    is left at phone size for the tests after."""
    shots = []
    try:
        for width in WIDTHS:
            for name, path in pages.items():
                driver.get(f"{base}{path}")
                wait_for(lambda: driver.execute_script("return document.readyState") == "complete", f"{path} to load")
                # chromedriver's phone emulation comes back with every navigation: the width is set after it
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                    "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})
                wait_for(lambda width=width: driver.execute_script("return innerWidth") == width, f"{path} laid out at {width} px")
                wide = driver.execute_script("return document.documentElement.scrollWidth")
                culprits = driver.execute_script(
                    "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
                    "arguments[0] + 1).map(e => e.tagName + '.' + e.className).slice(0, 5)", width) if wide > width else []
                assert wide <= width, f"{path} scrolls sideways at {width} px ({wide} px): {culprits}"
                shots.append(screenshot(driver, f"{prefix}{name}-{width}", full_page=True, width=width))
    finally:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": PHONE["width"], "height": PHONE["height"], "deviceScaleFactor": PHONE["pixelRatio"], "mobile": True})
    return shots


def text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text
