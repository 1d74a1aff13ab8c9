"""The review page: per-scan data maps picture rows to file slices, the page stays small for a
large cohort, --review-only rebuilds it, and in a real browser (headless chromium) keys and a
click move the lines, mark a scan negative and export a CSV that reads back to the right slices.

The cohort: marker phantoms (2 mm slices, stored inferior slice first, so file index =
n - 1 - canonical index) predicted by the stub "perfect" model of test_predict in about a second.
"""
from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np
import pytest
from matplotlib.image import imread

from l3loc.cli import main
from l3loc.inference import function_localiser
from l3loc.io.annotations import annotation_to_canonical_row, read_annotations
from l3loc.io.volume import read_volume, write_volume
from l3loc.predict import run_prediction
from l3loc.scan_inputs import list_inputs
from l3loc.review import read_review_data, write_index_html

from conftest import MARKER_SPACING as SPACING, MARKER_Z_FIRST as Z_FIRST, marker_phantom  # noqa: E402
from test_predict import perfect_map, stub_cfg  # noqa: E402

#: name -> (slices, L3 canonical slices); None: no marker (not found); two: ambiguous
COHORT = {"a": (60, (37,)), "b": (70, (30,)), "c": (60, ()), "d": (64, (20, 44))}


def predict_cohort(root, extra=(), threshold=None):
    """Write the COHORT phantoms to ``root/in`` and predict them and ``extra`` scans into
    ``root/out`` with the stub model (also used by docs/make_review_screenshot.py)."""
    for i, (name, (n, markers)) in enumerate(COHORT.items()):
        write_volume(root / "in" / f"{name}.nii.gz", marker_phantom(n=n, markers=markers, seed=i),
                     SPACING, Z_FIRST)
    records = run_prediction(list_inputs([root / "in", *extra]),
                             function_localiser(perfect_map, stub_cfg(), threshold=threshold),
                             root / "out")
    return {r["name"]: r for r in records}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    return root, predict_cohort(root)


def test_cohort_statuses(cohort):
    _, recs = cohort
    assert {k: r["status"] for k, r in recs.items()} == {
        "a": "found", "b": "found", "c": "not_found", "d": "ambiguous"}
    assert recs["a"]["l3_slice"] == 60 - 1 - 37 and recs["b"]["l3_slice"] == 70 - 1 - 30


def test_review_data_maps_picture_rows_to_file_slices(cohort):
    root, recs = cohort
    data = read_review_data(root / "out" / "a")
    assert data["path"] == str(root / "in" / "a.nii.gz")      # absolute: the CSV finds the scan
    geometry = read_volume(root / "in" / "a.nii.gz").geometry
    assert {k: data[k] for k in geometry.to_dict()} == geometry.to_dict()
    assert data["file_si_reversed"] and data["n_slices"] == 60 and data["z_first_mm"] == Z_FIRST
    # one picture row per slice, the marker (brightest row) at canonical row 37
    for view, cols in (("frontal", 48), ("sagittal", 40)):
        v = data["views"][view]
        img = imread(root / "out" / "a" / v["png"])[..., 0]   # grey saved as RGBA
        assert img.shape == (60, cols) and (v["cols"], v["col_mm"]) == (cols, 4.0)
        assert int(np.argmax(img.mean(axis=1))) in (36, 37, 38)
    # profile rows: 2 mm processed pixels = one per slice, from the top slice's z down
    prof = data["profile"]
    assert (prof["z0_mm"], prof["dz_mm"]) == (Z_FIRST, -2.0)
    assert set(prof["curves"]) == {"frontal", "sagittal", "fused"}
    assert int(np.argmax(prof["curves"]["fused"])) == 37
    d = read_review_data(root / "out" / "d")
    assert sorted([d["second_z_mm"], recs["d"]["l3_z_mm"]]) == pytest.approx(
        [Z_FIRST - 2 * 44, Z_FIRST - 2 * 20])
    assert data["second_z_mm"] is None and data["levels_z_mm"] == {}


def _records(n):
    return [{"name": f"case_{i:04d}", "input": f"/data/cohort/case_{i:04d}/ct.nii.gz",
             "status": ("found", "not_found", "ambiguous")[i % 3], "confidence": 0.5 + (i % 50) / 100,
             "l3_slice": 100 + i % 200, "l3_z_mm": -412.25 + i, "message": "",
             "qc_png": f"case_{i:04d}/qc.png"} for i in range(n)]


def test_page_for_2000_scans_stays_small(tmp_path):
    """The page holds one short record per scan; pictures and profiles stay in the scan folders."""
    page = write_index_html(tmp_path / "index.html", _records(2000), 0.5)
    size = page.stat().st_size
    base = write_index_html(tmp_path / "one.html", _records(1), 0.5).stat().st_size
    per_scan = (size - base) / 1999
    assert per_scan < 130, per_scan     # ~105 bytes: name, path, status, confidence, slice, z
    assert size < 300_000, size
    text = page.read_text(encoding="utf-8")
    assert 'loading: "lazy"' in text    # the list's thumbnails load when scrolled into view


def test_page_data_cannot_close_its_script_element(tmp_path):
    recs = _records(1)
    recs[0]["message"] = "</script><script>alert(1)</script>"
    text = write_index_html(tmp_path / "index.html", recs, 0.5).read_text(encoding="utf-8")
    assert "alert" in text and "</script><script>alert" not in text


def test_review_only_rebuilds_the_page(cohort, tmp_path, capsys):
    root, recs = cohort
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    (out / "index.html").unlink()
    assert main(["predict", "--review-only", str(out)]) == 0
    data = _page_data(out / "index.html")
    # from results.csv, the same records as the page predict wrote
    assert data["records"] == _page_data(root / "out" / "index.html")["records"]
    # sorted for review: not found, ambiguous, then found by rising confidence
    assert [r["n"] for r in data["records"]][:2] == ["c", "d"]
    assert {r["n"]: r["l"] for r in data["records"]} == {
        "a": 22, "b": 39, "c": None, "d": recs["d"]["l3_slice"]}
    assert data["threshold"] == pytest.approx(0.5)
    assert main(["predict", "--review-only", str(tmp_path / "nothing")]) == 2
    assert "results.csv" in capsys.readouterr().err


def _page_data(path):
    text = path.read_text(encoding="utf-8")
    start = text.index('id="l3data">') + len('id="l3data">')
    return json.loads(text[start:text.index("</script>", start)])


# ----------------------------------------------------------------------------- in a browser


def headless_chromium():
    """Headless Debian chromium through selenium, or a skip saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -r requirements.txt)")
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("chromium and chromedriver are not installed "
                    "(apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='l3loc-chromium-')}",
                 "--window-size=1400,900"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


def step_to(browser, name):
    """Show scan ``name`` by pressing next/previous, and wait for its pictures and data."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    js = browser.execute_script
    target = js("return window.l3loc.names()").index(name)
    while (i := js("return window.l3loc.index()")) != target:
        ActionChains(browser).send_keys(Keys.ARROW_RIGHT if i < target else Keys.ARROW_LEFT).perform()
    WebDriverWait(browser, 30).until(lambda b: js("return window.l3loc.loaded()"))


def test_keys_and_a_click_in_a_real_browser_export_the_right_slices(cohort, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    root, recs = cohort
    browser = headless_chromium()
    try:
        browser.get((root / "out" / "index.html").as_uri())
        js = browser.execute_script
        wait = WebDriverWait(browser, 30)             # generous: a loaded CI machine, never a slow pass

        def go_to(name):
            step_to(browser, name)

        def keys(*k):
            ActionChains(browser).send_keys(*k).perform()

        def decided(name):
            # a decision moves the page on by itself: the next step must not race that move
            wait.until(lambda b: js("return arguments[0] in window.l3loc.state().decisions", name))

        # a: three slices down (inferior) = file index 22 - 3 (the file stores inferior first)
        go_to("a")
        assert js("return window.l3loc.line()") == 22
        keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_UP, Keys.ARROW_DOWN)
        wait.until(lambda b: js("return window.l3loc.line()") == 19)   # events land async under load
        keys("c", "faint, check", Keys.ENTER)          # a note (its comma must survive the CSV)
        keys("a")                                      # accept the moved line: corrected
        decided("a")
        # b: click the frontal MIP on canonical slice 25 (picture row 25 of 70)
        go_to("b")
        panel = browser.find_elements(By.CSS_SELECTOR, ".panel")[0]
        h = panel.rect["height"]
        ActionChains(browser).move_to_element_with_offset(
            panel, 0, round((25 + 0.5) * h / 70 - h / 2)).click().perform()
        wait.until(lambda b: js("return window.l3loc.line()") == 70 - 1 - 25)
        keys("a")
        decided("b")
        go_to("c")                                     # not found, and indeed no L3: n
        keys("n")
        decided("c")
        go_to("d")                                     # ambiguous: the prediction accepted as is
        keys(Keys.ENTER)
        wait.until(lambda b: "reviewed 4 / 4" in b.find_element(By.ID, "counter").text)
        # decisions survive a reload (local storage)
        browser.refresh()
        wait.until(lambda b: "reviewed 4 / 4" in b.find_element(By.ID, "counter").text)
        csv_text = js("return window.l3loc.correctionsCsv()")
        browser.find_element(By.ID, "export").click()
        link = browser.find_element(By.ID, "download")
        assert link.get_attribute("download") == "corrections.csv"
        assert link.get_attribute("href").startswith("blob:")
    finally:
        browser.quit()
    path = tmp_path / "corrections.csv"
    path.write_text(csv_text, encoding="utf-8")
    df = read_annotations(path).set_index("name")
    assert df.loc["a", "l3_slice"] == 19 and df.loc["a", "status"] == "corrected"
    assert df.loc["a", "reviewer_note"] == "faint, check"
    assert df.loc["b", "l3_slice"] == 44 and df.loc["b", "status"] == "corrected"
    assert bool(df.loc["c", "negative"]) and df.loc["c", "status"] == "negative"
    assert df.loc["d", "l3_slice"] == recs["d"]["l3_slice"] and df.loc["d", "status"] == "accepted"
    # the slices are the scans' own: a's line is 3 slices (6 mm) below the marker
    ct = read_volume(root / "in" / "a.nii.gz")
    c = annotation_to_canonical_row(df.loc["a"], ct.geometry)
    assert c == 40 and ct.geometry.z_mm(c) == pytest.approx(recs["a"]["l3_z_mm"] - 6.0)
