"""report.html in a real headless browser (Chromium + chromedriver, driven by Selenium):
it loads from file:// without console errors or network, sorts, filters, opens pictures
larger, renders, and a 1000-row report loads in under 2 s.

Skipped, saying why, where Selenium, Chromium or chromedriver is missing
(``apt-get install chromium chromium-driver``; ``pip install selenium``).
"""
import os
import shutil
import time
from io import BytesIO

import numpy as np
import pytest
from _report_fixtures import card, disc, photo, vessel_mask, volume

from fastseg import report
from fastseg._files.segment_file import FileReport

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install 'selenium>=4.10')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _browser_and_driver():
    browser = os.environ.get("FASTSEG_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                       "google-chrome-stable")) if p), None)
    driver = os.environ.get("FASTSEG_CHROMEDRIVER") or shutil.which("chromedriver")
    return browser, driver


BROWSER, DRIVER = _browser_and_driver()
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason=f"no headless browser here ({'chromium' if BROWSER is None else 'chromedriver'} "
           "not found; apt-get install chromium chromium-driver)")

LOAD_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        d = webdriver.Chrome(options=options, service=Service(DRIVER))
    except Exception as exc:  # a browser that cannot start here (e.g. no display libs)
        pytest.skip(f"the headless browser did not start: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}")
    d.set_page_load_timeout(60)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A run of 7 photos (two flagged) and its report; returns the page's file URL."""
    out = tmp_path_factory.mktemp("browser") / "out"
    out.mkdir()
    card(out)
    colours = [(200, 60, 60), (60, 160, 60), (60, 60, 200), (200, 200, 60), (60, 200, 200)]
    for i, seconds in enumerate([3.0, 1.0, 5.0, 2.0, 4.0]):
        photo(out, f"p{i}_test.png", seconds=seconds, color=colours[i])
    photo(out, "empty_test.png", mask=np.zeros((48, 40), bool), seconds=0.5)
    photo(out, "bad_test.png", status="failed", error="unreadable image", seconds=0.1)
    return report.build(out).as_uri()


def _load(driver, url):
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _column(driver, title):
    heads = driver.find_elements(By.CSS_SELECTOR, "#results thead th")
    return [h.text.strip() for h in heads].index(title)


def _values(driver, col):
    return driver.execute_script(
        "var col = arguments[0];"
        "return Array.from(document.querySelectorAll('#results tbody tr'))"
        ".map(function (tr) { var c = tr.cells[col];"
        " return c.getAttribute('data-v') || c.textContent.trim(); });", col)


def test_loads_from_file_without_console_errors_or_network(driver, page):
    _load(driver, page)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    assert len(driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == 7
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (r) { return r.name; })")
    assert all(r.startswith("file://") for r in resources), resources
    # The first thumbnails are in view: they load (lazily, from the folder).
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "var i = document.querySelector('a.thumb img');"
        "return i.complete && i.naturalWidth > 0;"))


def test_sorting_by_a_column_reorders_rows(driver, page):
    _load(driver, page)
    col = _column(driver, "seconds")
    button = driver.find_elements(By.CSS_SELECTOR, "#results thead th")[col]
    button.find_element(By.TAG_NAME, "button").click()
    up = [float(v) for v in _values(driver, col)]
    assert up == sorted(up) and up[0] == 0.1
    button.find_element(By.TAG_NAME, "button").click()
    down = [float(v) for v in _values(driver, col)]
    assert down == sorted(up, reverse=True)
    assert button.get_attribute("aria-sort") == "descending"
    name = _column(driver, "input")
    driver.find_elements(By.CSS_SELECTOR, "#results thead th")[name].find_element(
        By.TAG_NAME, "button").click()
    names = _values(driver, name)
    assert names == sorted(names, key=str.lower) and names[0] == "bad_test.png"
    flags = _column(driver, "flags")  # most flagged first on the first click
    driver.find_elements(By.CSS_SELECTOR, "#results thead th")[flags].find_element(
        By.TAG_NAME, "button").click()
    assert [int(v) for v in _values(driver, flags)][:2] == [2, 1]  # empty (+ outlier), failed


def test_flagged_only_filter_hides_unflagged_rows(driver, page):
    _load(driver, page)
    rows = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert all(r.is_displayed() for r in rows)
    driver.find_element(By.ID, "only-flagged").click()
    shown = {r.find_elements(By.TAG_NAME, "td")[1].text.split("\n")[0]
             for r in rows if r.is_displayed()}
    assert shown == {"empty_test.png", "bad_test.png"}
    for r in rows:
        assert r.is_displayed() == ("flagged" in r.get_attribute("class").split())
    assert driver.find_element(By.ID, "count").text == "2 of 7 rows"
    driver.find_element(By.ID, "only-flagged").click()
    assert all(r.is_displayed() for r in rows)


def test_clicking_a_thumbnail_opens_the_picture(driver, page):
    _load(driver, page)
    box = driver.find_element(By.ID, "lightbox")
    assert not box.is_displayed()
    thumb = driver.find_element(By.CSS_SELECTOR, "a.thumb")
    href = thumb.get_attribute("href")
    thumb.click()
    assert box.is_displayed()
    big = box.find_element(By.TAG_NAME, "img")
    assert big.get_attribute("src") == href and href.endswith("_overlay.png")
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "var i = document.querySelector('#lightbox img'); return i.complete && "
        "i.naturalWidth > 0;"))
    assert big.size["width"] >= 256  # shown larger than the 96 px thumbnail
    assert "p" in box.text and "overlay" in box.text
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert not box.is_displayed()
    thumb.click()
    box.click()  # a click anywhere closes it too
    assert not box.is_displayed()
    assert driver.current_url.endswith("report.html")  # never left the page


def test_screenshot_is_not_blank(driver, page, tmp_path):
    from PIL import Image

    _load(driver, page)
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('a.thumb img')).slice(0, 3)"
        ".every(function (i) { return i.complete && i.naturalWidth > 0; });"))
    shot = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 1
    counts = sorted((c for c, _ in colours or []), reverse=True)
    assert not counts or counts[0] < 0.98 * shot.width * shot.height
    # The thumbnails' colours are on screen (green mask on the first photo's red disc).
    px = np.asarray(shot).reshape(-1, 3).astype(int)
    assert ((px[:, 1] > 150) & (px[:, 0] < 100) & (px[:, 2] < 100)).any()


def _thousand_rows(out):
    """1000 inputs (3 % failed, 2 % empty, fractions spread), each with its own overlay,
    metrics for all, the run card: a large run's folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    mask, fov = vessel_mask(), disc()
    facts = report.mask_facts(mask, fov)
    buf = BytesIO()
    overlay = np.zeros((128, 128, 3), np.uint8)
    overlay[16:112, 16:112] = (120, 40, 30)
    overlay[20:108, 60:66] = (0, 230, 0)
    Image.fromarray(overlay).save(buf, format="PNG")
    metrics = []
    for i in range(1000):
        name = f"{i:04d}_test.png"
        stem = name[:-4]
        pic = out / f"{stem}_overlay.png"
        pic.write_bytes(buf.getvalue())
        status = "failed" if i % 33 == 5 else "done"
        fg = 0 if i % 50 == 7 else int(rng.normal(100, 10))
        rep = FileReport(str(out / "in" / name), status, outputs=(str(pic),) if status ==
                         "done" else (), shape=(584, 565), foreground=fg, fov_pixels=912,
                         seconds=float(rng.uniform(1, 9)),
                         error="cannot read it" if status == "failed" else None)
        rec = report.record_of(rep, kind="image", out_dir=out, fov_estimated=i % 7 == 0,
                               facts=dict(facts, empty=fg == 0) if status == "done" else None)
        report.write_record(out, rec)
        metrics.append({"name": stem[:4], "dice": float(rng.uniform(.6, .9)),
                        "iou": .5, "accuracy": .95, "sensitivity": .8, "specificity": .97,
                        "precision": .8, "auc": .97})
    report.write_evaluation(out, metrics, {"name": "mean", "dice": .75}, threshold=.5)
    card(out)


def test_a_1000_row_report_loads_in_under_2_s(driver, page, tmp_path, capsys):
    out = tmp_path / "big"
    out.mkdir()
    _thousand_rows(out)
    start = time.perf_counter()
    url = report.build(out).as_uri()
    build_s = time.perf_counter() - start
    _load(driver, page)  # a warm browser, as a user's is
    start = time.perf_counter()
    _load(driver, url)
    wall = time.perf_counter() - start
    timing = driver.execute_script(
        "var n = performance.getEntriesByType('navigation')[0];"
        "return [n.domContentLoadedEventEnd, n.loadEventEnd, "
        "document.querySelectorAll('#results tbody tr').length];")
    dom_ms, load_ms, rows = timing
    assert rows == 1000
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors[:3]
    # Sorting 1000 rows and filtering them, as a user clicks.
    col = _column(driver, "Dice")
    start = time.perf_counter()
    driver.find_elements(By.CSS_SELECTOR, "#results thead th")[col].find_element(
        By.TAG_NAME, "button").click()
    driver.execute_script("return document.body.offsetHeight")  # the layout after it
    sort_s = time.perf_counter() - start
    dice = [float(v) for v in _values(driver, col)]
    assert dice == sorted(dice)
    driver.find_element(By.ID, "only-flagged").click()
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('#results tbody tr'))"
        ".filter(function (r) { return r.offsetParent !== null; }).length")
    flagged = driver.execute_script(
        "return document.querySelectorAll('#results tbody tr.flagged').length")
    assert shown == flagged and 0 < flagged < 1000
    size = (out / "report.html").stat().st_size
    with capsys.disabled():
        print(f"\n1000-row report ({size / 1e6:.2f} MB, built in {build_s:.2f} s): "
              f"DOMContentLoaded {dom_ms:.0f} ms, load {load_ms:.0f} ms after navigation "
              f"start; driver.get wall {wall:.2f} s; sort by Dice {sort_s * 1000:.0f} ms")
    assert load_ms < LOAD_LIMIT_S * 1000 and dom_ms < LOAD_LIMIT_S * 1000


def test_volume_report_in_the_browser(driver, tmp_path):
    out = tmp_path / "vol"
    out.mkdir()
    card(out, "volume")
    for i in range(3):
        volume(out, f"scan{i}.nii.gz", seconds=1.0 + i)
    _load(driver, report.build(out).as_uri())
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "tbody .pic")]
    assert labels[:4] == ["left axial", "left coronal", "right axial", "right coronal"]
