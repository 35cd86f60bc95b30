"""Screenshot of the rtseg web page for the docs: a real server, headless Chromium, the sample
frame segmented by the server; with --in-browser, the page running the network itself on a street
frame played by the fake camera (live mode, the frames per second it reaches shown).

    python -m tools.serve_screenshot docs/serve.png                          # from the repository root
    python -m tools.serve_screenshot --in-browser docs/serve_in_browser.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests import browser
from tests.serve_harness import ServerProcess

REPO = Path(__file__).resolve().parents[1]


def main(out: str, in_browser: bool = False) -> None:
    if browser.missing():
        raise SystemExit(browser.missing())
    with tempfile.TemporaryDirectory() as tmp, \
            ServerProcess(["--threads", "2", *(["--in-browser"] if in_browser else [])]) as url:
        camera = None
        if in_browser:
            camera = Path(tmp) / "street.y4m"
            browser.write_y4m(REPO / "samples" / "camvid" / "0016E5_08079.jpg", camera)
        driver = browser.open_browser(1500, 1100, fake_video=camera)
        try:
            driver.get(url + "/")
            if in_browser:
                browser.wait_for(driver, "document.getElementById('model').textContent.includes('in this browser')")
                driver.find_element("id", "camera").click()
                browser.wait_for(driver, "window.rtseg.frames >= 30", timeout=120)  # a steady frame rate
            else:
                browser.wait_for(driver, "document.getElementById('model').textContent.includes('enet')")
                for _ in range(2):  # the second request shows the steady-state latency
                    driver.execute_script("window.rtseg.lastResult = null;")
                    driver.find_element("id", "sample").click()
                    browser.wait_for(driver, "window.rtseg.lastResult")
            browser.wait_for(driver, browser.OVERLAY_DIFFERS)
            driver.save_screenshot(out)
            print(driver.find_element("id", "fps").text, "|", driver.find_element("id", "latency").text)
        finally:
            driver.quit()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the PNG to write")
    p.add_argument("--in-browser", action="store_true", help="the page runs the network (rtseg serve --in-browser)")
    args = p.parse_args()
    main(args.out, args.in_browser)
