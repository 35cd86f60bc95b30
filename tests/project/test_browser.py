"""The web page in a real browser: headless Chromium uploads an image and runs live mode on its
fake camera against a real rtseg server; the overlay must appear. With --in-browser the page runs
the network itself on a street frame from the fake camera, and its classes agree with rtseg's. Skips with the reason when
Chromium or Selenium is missing (`make test-browser` installs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

import browser

pytest.importorskip("fastapi", reason="rtseg serve needs the serve extra: pip install 'rtseg[serve]'")
if browser.missing():
    pytest.skip(browser.missing(), allow_module_level=True)

from serve_harness import ServerProcess  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page():
    with ServerProcess(["--threads", "1"]) as url:
        driver = browser.open_browser()
        try:
            driver.get(url + "/")
            browser.wait_for(driver, "document.getElementById('model').textContent.includes('enet')")
            yield driver
        finally:
            driver.quit()


def test_upload_shows_overlay_mask_and_legend(page):
    from selenium.webdriver.common.by import By

    page.find_element(By.ID, "file").send_keys(str(REPO / "samples" / "camvid" / "0016E5_08079.jpg"))
    browser.wait_for(page, "window.rtseg.lastResult && window.rtseg.lastResult.width === 480")
    assert browser.wait_for(page, browser.OVERLAY_DIFFERS) > 5
    rows = page.find_elements(By.CSS_SELECTOR, "#legend tbody tr")
    assert len(rows) == 11 and "%" in rows[0].text
    assert "ms" in page.find_element(By.ID, "latency").text
    before = page.execute_script(f"return {browser.OVERLAY_DIFFERS};")
    page.execute_script("const s = document.getElementById('opacity'); s.value = 0; s.dispatchEvent(new Event('input'));")
    assert page.execute_script(f"return {browser.OVERLAY_DIFFERS};") < before / 10  # opacity 0: the input


def test_live_mode_streams_the_camera(page):
    from selenium.webdriver.common.by import By

    page.find_element(By.ID, "camera").click()
    browser.wait_for(page, "window.rtseg.frames >= 3", timeout=90)
    page.execute_script("const s = document.getElementById('opacity'); s.value = 60; s.dispatchEvent(new Event('input'));")
    assert page.execute_script("return window.rtseg.fps;") > 0
    assert "frames" in page.find_element(By.ID, "fps").text
    assert browser.wait_for(page, browser.OVERLAY_DIFFERS) > 1
    page.find_element(By.ID, "stop").click()


def test_a_server_with_an_api_key_asks_for_it():
    from selenium.webdriver.common.by import By

    key = "browser-test-key-0123456789"
    with ServerProcess(["--threads", "1"], env={"RTSEG_API_KEY": key}) as url:
        driver = browser.open_browser()
        try:
            driver.get(url + "/")
            browser.wait_for(driver, "!document.getElementById('auth').hidden")
            driver.find_element(By.ID, "apikey").send_keys(key)
            driver.find_element(By.CSS_SELECTOR, "#auth button").click()
            browser.wait_for(driver, "document.getElementById('model').textContent.includes('enet')")
            driver.find_element(By.ID, "sample").click()
            browser.wait_for(driver, "window.rtseg.lastResult && window.rtseg.lastResult.width === 480")
            driver.find_element(By.ID, "camera").click()  # the stream sends the key as its first message
            browser.wait_for(driver, "window.rtseg.frames >= 2", timeout=90)
        finally:
            driver.quit()


def _decode(page, script: str) -> bytes:
    import base64

    return base64.b64decode(page.execute_script(script))


#: The page's last input (RGBA at the network's size) and class ids, as base64.
LAST_INPUT = """const c = window.rtsegLocal.lastInput;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = ''; for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode(...d.subarray(i, i + 8192));
  return btoa(s);"""
LAST_LABELS = """const d = window.rtsegLocal.lastLabels;
  let s = ''; for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode(...d.subarray(i, i + 8192));
  return btoa(s);"""


def test_the_network_runs_in_the_page_and_agrees_with_rtseg(tmp_path):
    import numpy as np
    from selenium.webdriver.common.by import By

    import rtseg

    camera = tmp_path / "street.y4m"
    browser.write_y4m(REPO / "samples" / "camvid" / "0016E5_08079.jpg", camera)  # 480x360
    with ServerProcess(["--threads", "1", "--in-browser"]) as url:
        driver = browser.open_browser(fake_video=camera)
        try:
            driver.get(url + "/")
            browser.wait_for(driver, "document.getElementById('model').textContent.includes('runs in this browser')")
            assert driver.execute_script("return self.crossOriginIsolated;")  # WASM threads allowed
            driver.find_element(By.ID, "camera").click()
            browser.wait_for(driver, "window.rtseg.frames >= 3", timeout=90)
            assert driver.execute_script("return window.rtseg.ws;") is None  # no frame went to the server
            assert "in this browser" in driver.find_element(By.ID, "latency").text
            assert driver.execute_script("return window.rtseg.fps;") > 0
            assert browser.wait_for(driver, browser.OVERLAY_DIFFERS) > 1
            driver.find_element(By.ID, "stop").click()
            rgba = np.frombuffer(_decode(driver, LAST_INPUT), np.uint8).reshape(360, 480, 4)
            labels = np.frombuffer(_decode(driver, LAST_LABELS), np.uint8).reshape(360, 480)
            # Unticked, the same page sends the frames to the server again.
            driver.find_element(By.ID, "inbrowser").click()
            driver.find_element(By.ID, "sample").click()
            browser.wait_for(driver, "window.rtseg.lastResult && window.rtseg.lastResult.timing.decode_ms >= 0")
        finally:
            driver.quit()
    # The frame the page ran (the camera's YUV turned back to RGB by the browser), through rtseg.
    expected = rtseg.load_model("enet-camvid", backend="torch").predict(np.ascontiguousarray(rgba[..., :3]))
    assert (labels == expected).mean() >= 0.999
    assert len(np.unique(labels)) >= 5  # a street frame, not the fake camera's test pattern
