"""Driving the rtseg web page in headless Chromium (Selenium), shared by the browser test and
``tools/serve_screenshot.py``. Chromium's fake camera (``--use-fake-device-for-media-stream``)
stands in for a webcam."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make test-browser installs it)"
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make test-browser installs Debian's chromium and chromium-driver)"
    return None


def write_y4m(image_path, out) -> None:
    """One frame as a Y4M video (4:2:0), what Chromium's fake camera plays in a loop
    (``--use-file-for-fake-video-capture``)."""
    import cv2
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(image_path).convert("RGB"))
    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # (H * 3 / 2, W): Y, then U and V planes
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\nFRAME\n".encode())
        f.write(yuv.tobytes())


def open_browser(width: int = 1400, height: int = 1150, fake_video=None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # No outside connections (a test talks to 127.0.0.1 only): no background fetches, component
    # or sync updates, first-run pings, and a fresh profile each time (nothing from a past run).
    profile = tempfile.mkdtemp(prefix="rtseg-chromium-")
    atexit.register(shutil.rmtree, profile, ignore_errors=True)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    if fake_video is not None:  # the camera plays this file instead of Chromium's test pattern
        options.add_argument(f"--use-file-for-fake-video-capture={fake_video}")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_for(driver, script: str, timeout: float = 60.0):
    """Poll a JavaScript expression until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.2)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise TimeoutError(f"page never satisfied: {script}; status: {status!r}")


#: Mean absolute difference between the overlay and the input canvases: > 0 once a mask is drawn.
OVERLAY_DIFFERS = """(() => {
  const a = document.getElementById('input'), b = document.getElementById('overlay');
  const w = a.width, h = a.height;
  const pa = a.getContext('2d').getImageData(0, 0, w, h).data, pb = b.getContext('2d').getImageData(0, 0, w, h).data;
  let d = 0; for (let i = 0; i < pa.length; i += 4) d += Math.abs(pa[i] - pb[i]) + Math.abs(pa[i+1] - pb[i+1]);
  return d / (w * h);
})()"""
