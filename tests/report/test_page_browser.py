"""``reports/index.html`` in headless Chromium, from ``file://``: a table sorts when its header is clicked, the
prediction player steps, plays and pauses, the figures load, the page is not blank and the console holds no
error. Skips, saying why, only where Chromium, its driver or selenium is missing (``.ci/run`` installs them)."""
from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium", reason="selenium is not installed (pip install 'vpbench[browser]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no Chromium or chromedriver on PATH (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def loaded(browser, page_report):
    browser.get((page_report / "index.html").as_uri())
    return browser


def _number(text: str) -> float:
    found = re.match(r"[+\-]?[\d,]*\.?\d+", text.strip())
    return float(found.group().replace(",", "")) if found else float("nan")


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_clicking_a_header_sorts_the_leaderboard(loaded):
    from selenium.webdriver.common.by import By

    table = loaded.find_element(By.CSS_SELECTOR, "table.sortable")
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    names = [h.text.strip() for h in headers]
    column = next(i for i, n in enumerate(names) if n.startswith("MSE"))

    def values() -> list[float]:
        return [_number(row.find_elements(By.TAG_NAME, "td")[column].text)
                for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    headers[column].click()
    ascending = values()
    assert headers[column].get_attribute("aria-sort") == "ascending" and len(ascending) == 2
    assert ascending == sorted(ascending)
    headers[column].click()
    assert values() == sorted(ascending, reverse=True) and headers[column].get_attribute("aria-sort") == "descending"
    model = names.index("Model")
    headers[model].click()
    labels = [row.find_elements(By.TAG_NAME, "td")[model].text for row in table.find_elements(By.CSS_SELECTOR,
                                                                                                "tbody tr")]
    assert labels == sorted(labels)


def test_the_player_steps_plays_and_pauses_every_panel_together(loaded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    player = loaded.find_element(By.CSS_SELECTOR, ".player")
    data = json.loads(player.find_element(By.CSS_SELECTOR, "script[type='application/json']")
                      .get_attribute("textContent"))
    images = player.find_elements(By.CSS_SELECTOR, ".panel img")
    assert len(images) == len(data["panels"]) == 3 and player.get_attribute("data-frame") == "0"
    player.find_element(By.CSS_SELECTOR, "button.next").click()
    assert player.get_attribute("data-frame") == "1"
    assert [img.get_attribute("src") for img in images] == [panel[1] for panel in data["panels"]]
    assert player.find_element(By.CSS_SELECTOR, ".frame-label").text == f"t = 2 of {data['count']} (input)"
    slider = player.find_element(By.CSS_SELECTOR, "input[type=range]")
    slider.send_keys(Keys.END)
    last = data["count"] - 1
    assert player.get_attribute("data-frame") == str(last)
    assert [img.get_attribute("src") for img in images] == [panel[last] for panel in data["panels"]]
    assert player.find_element(By.CSS_SELECTOR, ".frame-label").text.endswith("(predicted)")
    play = player.find_element(By.CSS_SELECTOR, "button.play")
    play.click()
    assert play.text == "Pause"
    WebDriverWait(loaded, 5).until(lambda _: player.get_attribute("data-frame") not in (str(last),))
    play.click()
    stopped = player.get_attribute("data-frame")
    assert play.text == "Play"
    loaded.execute_script("return new Promise(r => setTimeout(r, 3 * arguments[0]))", data["ms"])
    assert player.get_attribute("data-frame") == stopped


def test_figures_load_and_a_name_opens_its_run(loaded):
    from selenium.webdriver.common.by import By

    widths = loaded.execute_script("return Array.from(document.querySelectorAll('figure img'))"
                                   ".map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert {src.rsplit("-", 1)[-1] for src, _ in widths} >= {"framewise.png", "quality.png"}
    assert all(width > 0 for _, width in widths)
    link = loaded.find_element(By.CSS_SELECTOR, "table.sortable tbody a")
    target = link.get_attribute("href").split("#", 1)[1]
    link.click()
    assert loaded.find_element(By.ID, target).get_attribute("open") is not None


def test_the_page_is_drawn_and_the_console_has_no_error(loaded):
    picture = np.asarray(Image.open(io.BytesIO(loaded.get_screenshot_as_png())).convert("L"), dtype=float)
    assert picture.shape[1] >= 1000 and picture.std() > 20  # text, tables and figures, not a blank page
    assert len(np.unique(picture)) > 50
    assert _errors(loaded) == []
