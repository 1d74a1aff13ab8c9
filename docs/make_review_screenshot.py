"""Make docs/review_page.png: the review page (index.html of `l3loc predict`) on a small cohort.

    python docs/make_review_screenshot.py

The cohort: the two real CTs of tests/data, predicted by the shipped model (the one
`l3loc predict` uses without --experiment). The shown scan is the TotalSegmentator example CT
with the reviewer's line (yellow) at the L3 centre of tests/data/totalseg_example_ct/l3.json
(moved there with the arrow keys if the model's line, red, is elsewhere). Needs chromium,
chromedriver and selenium, as the browser test does.
"""
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import l3loc  # noqa: E402,F401  (before paddle)
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from test_review import headless_chromium, step_to  # noqa: E402

from l3loc.api import predict_cohort  # noqa: E402

DATA = REPO / "tests" / "data"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="l3loc-review-"))
    recs = {r["name"]: r for r in predict_cohort(
        [DATA / "totalseg_example_ct" / "ct.nii.gz", DATA / "tptbox_l3_crop" / "ct.nii.gz"],
        root / "out", device="cpu")}
    example = next(n for n, r in recs.items() if r["input"].endswith("totalseg_example_ct/ct.nii.gz"))
    truth = round(json.loads((DATA / "totalseg_example_ct" / "l3.json").read_text())["L3"]["idx_centroid"])
    browser = headless_chromium()
    try:
        browser.set_window_size(1300, 760)
        browser.get((root / "out" / "index.html").as_uri())
        js = browser.execute_script

        step_to(browser, example)
        line = js("return window.l3loc.line()")
        if line is None:
            ActionChains(browser).send_keys(Keys.ARROW_DOWN).perform()
            line = js("return window.l3loc.line()")
        # this file's index runs superiorly (RAS): up = a higher index
        key = Keys.ARROW_UP if truth > line else Keys.ARROW_DOWN
        ActionChains(browser).send_keys(*[key] * abs(truth - line)).perform()
        if truth == recs[example]["l3_slice"]:
            ActionChains(browser).send_keys("a").perform()        # the model's line: accepted
        assert js("return window.l3loc.line()") == truth
        out = REPO / "docs" / "review_page.png"
        browser.save_screenshot(str(out))
        print(f"{out} (the example CT: model line {recs[example]['l3_slice']}, truth {truth})")
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
