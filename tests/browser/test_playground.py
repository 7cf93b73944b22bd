"""The web playground at / in a real headless Chromium, against a live uvicorn on loopback serving
the tiny checkpoint: no console errors, typing shows candidate bars, generation streams token by
token, scoring colours tokens, a blank is filled, and the page fits a phone-width window.
Screenshots are saved for a person to look at (also under NEXTWORD_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.system_tools import require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 40
# Loopback only: no proxy from the environment may stand between the test and its server.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WAIT_S = 15
API_KEY = "playground-key"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
    "--window-size=1280,1100",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, log_path: Path) -> None:
    """Polls GET /ready until it answers 200; fails, quoting the server's log, if the server
    exits or takes too long."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_tail = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"uvicorn exited with {process.returncode} before ready:\n{log_tail}")
        try:
            with DIRECT.open(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"uvicorn not ready within {SERVER_START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def server_url(tuned_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real uvicorn serving the tiny checkpoint, tuned for document context and
    a cache pointer, on a free loopback port."""
    yield from serve(tuned_checkpoint, tmp_path_factory)


@pytest.fixture(scope="module")
def keyed_server_url(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """server_url's server, wanting the API key API_KEY."""
    yield from serve(tiny_checkpoint, tmp_path_factory, NEXTWORD_API_KEY=API_KEY)


def serve(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, **variables: str
) -> Iterator[str]:
    """Run uvicorn on the tiny checkpoint with extra environment variables; yield its URL."""
    log_path = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    port = free_port()
    env = {**os.environ, "NEXTWORD_MODEL_DIR": str(tiny_checkpoint), "NEXTWORD_THREADS": "1"}
    env.update(variables)
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver) from PATH; skips, or fails under CI=true, when either is missing.
    Session-scoped so that it runs before the tiny checkpoint is trained for nothing."""
    return require_tool("chromium", "chromium"), require_tool("chromedriver", "chromium-driver")


@pytest.fixture(scope="module")
def browser(chromium_paths: tuple[str, str]) -> Iterator[WebDriver]:
    """Headless Debian Chromium driven through the system chromedriver (never a downloaded one:
    an explicit Service path keeps selenium-manager out)."""
    chromium, chromedriver = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition, message: str):
    """The condition's first truthy value within WAIT_S seconds."""
    return WebDriverWait(driver, WAIT_S).until(condition, message=message)


def console_errors(driver: WebDriver) -> list[str]:
    """Browser console messages at SEVERE level since the last call (the log drains)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def save_screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """Writes a PNG of the whole page (not only the window) to tmp_path and, when set,
    NEXTWORD_SCREENSHOT_DIR."""
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight]"
    )
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = tmp_path / name
    path.write_bytes(base64.b64decode(shot["data"]))
    extra_dir = os.environ.get("NEXTWORD_SCREENSHOT_DIR")
    if extra_dir:
        Path(extra_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra_dir) / name)
    return path


def set_slider(driver: WebDriver, element_id: str, value: int | float) -> None:
    """Moves a range input as a user would, firing its input event."""
    driver.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('input'));",
        element_id,
        value,
    )


def check_typing_shows_candidates(driver: WebDriver) -> None:
    box = driver.find_element(By.ID, "predict-input")
    box.clear()
    box.send_keys("中国 人民")
    wait_for(
        driver,
        lambda d: "人民" in d.find_element(By.ID, "predict-tokens").text,
        "the tokenization never showed the typed text",
    )
    bars = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".bar-row"), "no bars")
    assert len(bars) == 10
    widths = [bar.find_element(By.CSS_SELECTOR, ".bar").size["width"] for bar in bars]
    assert widths[0] > 0 and widths == sorted(widths, reverse=True)


def check_generation_starts_from_the_readmes_settings(driver: WebDriver) -> None:
    # the README's /generate example: temperature 0.8, top-k 40; the page says so
    shown = {
        name: driver.find_element(By.ID, f"{name}-value").text for name in ("temperature", "top-k")
    }
    assert shown == {"temperature": "0.80", "top-k": "40"}
    assert driver.find_element(By.ID, "top-p").get_attribute("value") == "1"
    assert "temperature 0.8 and top-k 40" in driver.find_element(By.ID, "generate-defaults").text


def check_generation_streams(driver: WebDriver) -> None:
    set_slider(driver, "max-new-tokens", 200)
    driver.find_element(By.ID, "seed").send_keys("7")
    driver.find_element(By.ID, "ignore-eos").click()  # a long stream, whatever the model says
    # Counts the separate moments at which tokens were added: a stream shows more than one.
    driver.execute_script(
        "window.__appends = 0; new MutationObserver(() => window.__appends++)"
        ".observe(document.getElementById('generate-output'), {childList: true});"
    )
    driver.find_element(By.ID, "generate-button").click()
    status = driver.find_element(By.ID, "generate-status")
    reason = wait_for(driver, lambda d: status.get_attribute("data-finish-reason"), "no finish")
    assert reason == "length"
    assert "200 tokens" in status.text and "tokens/s" in status.text and "seed 7" in status.text
    tokens = driver.find_elements(By.CSS_SELECTOR, "#generate-output .gen-token")
    assert len(tokens) == 200, "one span per streamed token"
    assert driver.find_element(By.ID, "generate-output").text.strip()
    assert driver.execute_script("return window.__appends") > 1, "the text came all at once"


def check_scoring_colours_tokens(driver: WebDriver) -> None:
    driver.find_element(By.ID, "score-button").click()
    chips = wait_for(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#score-tokens .heat-token"), "no heat"
    )
    summary = driver.find_element(By.ID, "score-summary")
    wait_for(driver, lambda d: "without the cache" in summary.text, "no figure without the cache")
    with_cache = float(summary.get_attribute("data-perplexity"))
    without = float(summary.get_attribute("data-perplexity-without-cache"))
    assert with_cache != without, "the cache changed nothing in the paragraph"
    colours = {chip.value_of_css_property("background-color") for chip in chips}
    assert len(colours) > 1, "every token got the same colour"
    hover(driver, chips[0])
    detail = driver.find_element(By.ID, "score-detail")
    wait_for(driver, lambda d: "−log p" in detail.text, "hovering a token showed no value")


def check_fill_ranks_words_and_fills_the_blank(driver: WebDriver) -> None:
    box = driver.find_element(By.ID, "fill-input")
    box.clear()
    box.send_keys("中国 ___ 人民")
    driver.find_element(By.ID, "fill-button").click()
    rows = wait_for(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#fill-chart .bar-row"), "no words"
    )
    widths = [row.find_element(By.CSS_SELECTOR, ".bar").size["width"] for row in rows]
    assert widths[0] > 0 and widths == sorted(widths, reverse=True), "not best first"
    word = rows[0].find_element(By.CSS_SELECTOR, ".bar-label").text
    assert "left" in rows[0].text and word
    rows[0].click()
    assert box.get_attribute("value") == f"中国 {word} 人民", "clicking a word did not fill it in"


def hover(driver: WebDriver, element: WebElement) -> None:
    ActionChains(driver).move_to_element(element).perform()


def test_playground_predicts_generates_and_scores(
    browser: WebDriver, server_url: str, tmp_path: Path
) -> None:
    browser.get(server_url + "/")
    summary = browser.find_element(By.ID, "model-summary")
    wait_for(browser, lambda d: "loading" not in summary.text, "the model card never loaded")
    assert "unavailable" not in summary.text

    check_typing_shows_candidates(browser)
    check_generation_starts_from_the_readmes_settings(browser)
    check_generation_streams(browser)
    check_scoring_colours_tokens(browser)
    check_fill_ranks_words_and_fills_the_blank(browser)
    save_screenshot(browser, tmp_path, "playground.png")
    assert console_errors(browser) == []


def test_playground_fits_a_phone_width_window(
    browser: WebDriver, server_url: str, tmp_path: Path
) -> None:
    phone = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    browser.get(server_url + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".bar-row"), "no bars")
    browser.find_element(By.ID, "score-button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".heat-token"), "no heat map")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert browser.execute_script("return window.innerWidth") == 390
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px screen"
    save_screenshot(browser, tmp_path, "playground-390.png")
    assert console_errors(browser) == []


def test_playground_asks_for_the_api_key_once_per_tab(
    browser: WebDriver, keyed_server_url: str
) -> None:
    browser.get(keyed_server_url + "/")
    alert = wait_for(browser, lambda d: _alert(d), "the page never asked for the key")
    alert.send_keys(API_KEY)
    alert.accept()
    summary = browser.find_element(By.ID, "model-summary")
    wait_for(browser, lambda d: "loading" not in summary.text, "the model card never loaded")
    assert "unavailable" not in summary.text
    check_typing_shows_candidates(browser)
    assert browser.execute_script("return sessionStorage.getItem('nextword-api-key')") == API_KEY
    browser.refresh()  # the same tab keeps the key: no second question
    summary = browser.find_element(By.ID, "model-summary")
    wait_for(browser, lambda d: "loading" not in summary.text, "the model card never loaded")
    assert _alert(browser) is None and "unavailable" not in summary.text
    assert [e for e in console_errors(browser) if "401" not in e] == []


def _alert(driver: WebDriver):
    """The open alert or prompt, or None."""
    try:
        alert = driver.switch_to.alert
        alert.text  # noqa: B018 - raises when there is none
        return alert
    except NoAlertPresentException:
        return None
