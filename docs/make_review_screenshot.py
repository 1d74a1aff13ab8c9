"""Make docs/review_page.png: the review page (index.html of `l3loc predict`) on a small cohort.

    python docs/make_review_screenshot.py

The cohort: the two real CTs of tests/data and the marker phantoms of tests/test_review.py,
predicted by the tests' stub model (a 'perfect marker detector', not a trained net: no model is
shipped yet; threshold 0.3 so that it draws a line on the real CTs), so the real CTs get wrong
lines, which is what the page is for. The shown scan is
the TotalSegmentator example CT with the reviewer's line (yellow) moved with the arrow keys from
the stub's line (red) to the L3 centre of tests/data/totalseg_example_ct/l3.json. Needs chromium,
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
from test_review import headless_chromium, predict_cohort, step_to  # noqa: E402

DATA = REPO / "tests" / "data"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="l3loc-review-"))
    recs = predict_cohort(root, [DATA / "totalseg_example_ct" / "ct.nii.gz",
                                 DATA / "tptbox_l3_crop" / "ct.nii.gz"], threshold=0.3)
    example = next(n for n, r in recs.items() if r["input"].endswith("totalseg_example_ct/ct.nii.gz"))
    truth = round(json.loads((DATA / "totalseg_example_ct" / "l3.json").read_text())["L3"]["idx_centroid"])
    browser = headless_chromium()
    try:
        browser.set_window_size(1300, 760)
        browser.get((root / "out" / "index.html").as_uri())
        js = browser.execute_script

        def go_to(name):
            step_to(browser, name)

        go_to("a")
        ActionChains(browser).send_keys("a").perform()            # a phantom: accepted
        go_to("c")
        ActionChains(browser).send_keys("n").perform()            # no marker: no L3
        go_to(example)
        line = js("return window.l3loc.line()")
        if line is None:
            ActionChains(browser).send_keys(Keys.ARROW_DOWN).perform()
            line = js("return window.l3loc.line()")
        # this file's index runs superiorly (RAS): up = a higher index
        key = Keys.ARROW_UP if truth > line else Keys.ARROW_DOWN
        ActionChains(browser).send_keys(*[key] * abs(truth - line)).perform()
        assert js("return window.l3loc.line()") == truth
        out = REPO / "docs" / "review_page.png"
        browser.save_screenshot(str(out))
        print(f"{out} (the example CT: stub line {recs[example]['l3_slice']}, moved to {truth})")
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
