"""Screenshot of the rtseg web page for the README: a real server, headless Chromium, the
sample frame segmented.

    python -m tools.serve_screenshot docs/serve.png    # from the repository root
"""

from __future__ import annotations

import sys

from tests import browser
from tests.serve_harness import ServerProcess


def main(out: str) -> None:
    if browser.missing():
        raise SystemExit(browser.missing())
    with ServerProcess(["--threads", "2"]) as url:
        driver = browser.open_browser(1500, 1100)
        try:
            driver.get(url + "/")
            browser.wait_for(driver, "document.getElementById('model').textContent.includes('enet')")
            for _ in range(2):  # the second request shows the steady-state latency
                driver.execute_script("window.rtseg.lastResult = null;")
                driver.find_element("id", "sample").click()
                browser.wait_for(driver, "window.rtseg.lastResult")
            browser.wait_for(driver, browser.OVERLAY_DIFFERS)
            driver.save_screenshot(out)
        finally:
            driver.quit()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/serve.png")
