"""The try-it page of `crossemo serve`, in a real headless Chromium against the real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from crossemo.data.features import FeatureSettings
from crossemo.models.baselines import SVMValence
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import register

from .conftest import feature_table, free_port, wait_for_http

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make install adds it)")
if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (.ci/run installs them)", allow_module_level=True
    )

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Where the screenshot of the page with an answer is kept (a test artifact; the docs show a copy).
SCREENSHOT_DIR = Path(os.environ.get("CROSSEMO_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".cache"))


def serve(root: Path, uri: str, *flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = root / f"serve{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["crossemo", "serve", "--port", str(port), *flags], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/ping", process, timeout=180, log=log)
    return process, url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A model trained on synthetic features, registered as the demo's are (synthetic), served."""
    root = tmp_path_factory.mktemp("page")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        trained = train_pipeline(feature_table(), SVMValence(), FeatureSettings())
        register(trained, {"model": "svm"}, tracking_uri=uri, corpora=["a", "b"], synthetic=True)
    process, url = serve(root, uri)
    yield root, uri, url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('profile')}",
        "--window-size=1000,1100",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def demo_wav(root: Path) -> Path:
    """One recording of the synthetic demo corpora."""
    from crossemo.data.demo import generate

    generate(root / "demo", seed=2018)
    return sorted((root / "demo" / "emodb").rglob("*.wav"))[0]


def answers(browser, count: int) -> list:
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#answers li")) >= count)
    return browser.find_elements(By.CSS_SELECTOR, "#answers li")


def test_an_uploaded_clip_gets_its_answer_and_a_corrupt_one_its_reason(server, browser, tmp_path):
    root, _, url = server
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda b: "crossemo-valence v1" in b.find_element(By.ID, "card").text)
    warning = browser.find_element(By.ID, "warning")
    assert warning.is_displayed() and "SYNTHETIC" in warning.text
    upload = browser.find_element(By.ID, "files")
    upload.send_keys(str(demo_wav(tmp_path)))
    [first] = answers(browser, 1)
    text = first.text
    assert re.search(r"Valence: (negative|positive)", text), text
    p_negative, p_positive = (float(v) for v in re.findall(r"p\((?:negative|positive)\) (\d\.\d{3})", text))
    assert p_negative + p_positive == pytest.approx(1.0, abs=2e-3)
    assert "model version 1" in text
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "try-page.png"))
    bad = tmp_path / "broken.wav"
    bad.write_text("this is not audio")
    upload.send_keys(str(bad))
    newest = answers(browser, 2)[0]  # answers are listed newest first
    assert "broken.wav" in newest.text and "Refused: corrupt or not audio" in newest.text


def test_the_page_is_keyboard_operable_and_fits_a_phone(server, browser):
    _, _, url = server
    browser.set_window_size(390, 844)
    browser.get(url + "/")
    focused = []
    for _ in range(2):  # key presses, as a keyboard user makes them (not typed into an element)
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused.append(browser.switch_to.active_element.get_attribute("id"))
    assert focused == ["files", "record"]
    width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]  # no sideways scrolling at a phone's width
    browser.set_window_size(1000, 1100)


def test_the_page_ships_inside_the_package_and_can_be_turned_off(server, tmp_path):
    root, uri, url = server
    page = requests.get(url + "/", timeout=10)
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"https?://", page.text)  # nothing fetched from elsewhere
    for name in ("page.js", "page.css"):
        assert requests.get(f"{url}/page/{name}", timeout=10).status_code == 200
    assert requests.get(f"{url}/page/../../registry.py", timeout=10).status_code == 404
    card = requests.get(url + "/card", timeout=10).json()
    assert card["version"] == "1" and card["synthetic"] and card["lines"][0].startswith("# crossemo-valence v1")
    process, api_only = serve(root, uri, "--no-page")
    try:
        assert requests.get(api_only + "/", timeout=10).status_code == 404
        assert requests.get(api_only + "/card", timeout=10).status_code == 404
        assert requests.get(api_only + "/ping", timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
