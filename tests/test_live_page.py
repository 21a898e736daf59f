"""The live page in a real headless browser (Debian's chromium + chromium-driver, driven by
selenium): it shows lines while the run still runs, ends on the run's final state with the
failure digest on top, and serves its own assets under the same authentication."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest

from tests.needs import need
from tests.sandbox.scenarios import SCENARIOS, Scenario, Step, Task, numbered
from tests.sandbox.simulator import Simulator
from tests.support import ROOT, Listener, basic

NS = "tekton-pipelines"
SCREENSHOT = ROOT / "docs" / "images" / "live-page.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = None if chromium and driver else "no chromium or chromedriver (apt-get install chromium-driver)"
    need("the live page test needs Debian's chromium and chromium-driver", missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    session = webdriver.Chrome(service=Service(driver), options=options)
    # Every request of the page carries the credentials, as a browser does after the Basic prompt.
    session.execute_cdp_cmd("Network.enable", {})
    session.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic()}})
    yield session
    session.quit()


def held_failure(hold: threading.Event) -> Scenario:
    """`build` prints coloured lines, then waits for `hold`; then `test` fails."""
    return Scenario(
        "page",
        tasks=[
            Task("build", [Step("compile", [b"\x1b[32mok\x1b[0m compiling", *numbered("compile", 5)], hold=hold)]),
            Task("test", [Step("unit", numbered("unit", 4), exit_code=1)], run_after=["build"]),
        ],
    )


def test_page_follows_the_run_live_and_ends_on_its_state(listener: Listener, sim: Simulator, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    hold = threading.Event()
    run = sim.play(held_failure(hold), NS)
    try:
        browser.get(f"{listener.url}/logs/{run.name}?wait=30")
        wait = WebDriverWait(browser, 60)
        # Lines arrive while the run is still running (its step is held).
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#task-build .line.out")) == 6)
        assert browser.find_element(By.ID, "state").get_attribute("data-state") == "running"
        assert browser.find_element(By.CSS_SELECTOR, "#task-build .c32").text == "ok"  # ANSI green
        first = browser.find_element(By.CSS_SELECTOR, "#task-build .line.out a.n")
        assert first.get_attribute("href").endswith("#L-build-1")
    finally:
        hold.set()
    run.wait(60)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == "true")
    assert browser.find_element(By.ID, "state").get_attribute("data-state") == "failed"
    tasks = {
        e.get_attribute("id"): e.get_attribute("data-state")
        for e in browser.find_elements(By.CSS_SELECTOR, "details.task")
    }
    assert tasks == {"task-build": "succeeded", "task-test": "failed"}
    lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#task-test .line.out")]
    expected = [f"{n}[unit] {x.decode()}" for n, x in enumerate(numbered("unit", 4), 1)]
    assert lines == expected  # each line's number links to it
    digest = browser.find_element(By.ID, "digest")
    assert digest.is_displayed() and "FAILED task test" in digest.text and "| unit line 4/4" in digest.text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_assets_need_credentials_and_are_the_functions_own(listener: Listener) -> None:
    status, headers, body = listener.get("/logs/_assets/page.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert body == (ROOT / "functions" / "logs" / "assets" / "page.js").read_bytes()
    assert listener.get("/logs/_assets/page.js", auth=None)[0] == 401
    assert listener.get("/logs/_assets/../main.py")[0] in (400, 404)
    assert listener.get("/logs/_assets/secret.txt")[0] == 404


def test_page_is_html_only_for_browsers_and_locks_down_what_it_loads(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](lines=1), NS).wait(60)
    status, headers, body = listener.get(f"/logs/{run.name}", headers={"Accept": "text/html"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert b'data-stream="/logs/tekton-pipelines/' in body and b"format=sse" in body
    assert listener.get("/logs/no-such-run-zz?wait=0", headers={"Accept": "text/html"})[0] == 404
