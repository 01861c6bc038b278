"""The operator's view on the real stack: ``/stats`` (Firestore aggregation queries),
``/metrics`` (Prometheus, API and worker added up), and the review console in a real
headless Chromium (Debian's chromium, driven by Selenium through chromium-driver)."""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emulators import demo
from tests.e2e.conftest import wait_for

KEY = "ops-console-key"
CLASSIFIED = {"Classified_By_AI", "Classified_By_Cache"}
VPN = {"title": "VPN tunnel drops every few minutes", "description": "GlobalProtect disconnects from home wifi"}
PRINTER = {"title": "Printer on floor 3 jams", "description": "paper jam in tray 2, the HP LaserJet shows error 13.A"}


@pytest.fixture(scope="module")
def ops_lane(infrastructure):
    return infrastructure.add_lane(
        "ops",
        env={
            "API_KEYS": f"{KEY}=submit+read+feedback+admin",
            "LLM_PRICE_PER_1K_TOKENS": "0.5",
            "LLM_TOKENS_PER_CALL": "1000",
        },
    )


def call(lane, method: str, path: str, body=None):
    return demo.call(method, f"{lane.api_url}{path}", body, api_key=KEY)


def submit_and_wait(lane, body) -> dict:
    status, accepted = call(lane, "POST", "/classify", body)
    assert status == 202, accepted
    return wait_for(
        lambda: (t := call(lane, "GET", f"/tickets/{accepted['ticket_id']}")[1])["status"] in CLASSIFIED and t
    )


@pytest.fixture(scope="module")
def tickets(ops_lane):
    """A new ticket, the same ticket again (answered from memory), another one corrected by a human."""
    first = submit_and_wait(ops_lane, VPN)
    again = submit_and_wait(ops_lane, VPN)
    printer = submit_and_wait(ops_lane, PRINTER)
    other = "Purchase" if printer["labels"]["category"] != "Purchase" else "General"  # new labels: a correction
    status, _ = call(ops_lane, "POST", f"/tickets/{printer['ticket_id']}/feedback", {"category": other})
    assert status == 200
    return first, again, printer


def test_stats_count_what_the_test_created(ops_lane, tickets):
    first, again, _ = tickets
    assert first["status"] == "Classified_By_AI" and again["status"] == "Classified_By_Cache"
    status, stats = call(ops_lane, "GET", "/stats?hours=1&buckets=4")
    assert status == 200, stats
    assert stats["total"] == 3
    assert stats["counts"] == {
        "Pending": 0,
        "Classified_By_Cache": 1,
        "Classified_By_AI": 1,
        "Corrected_By_Human": 1,
        "Verified_By_Human": 0,
        "Failed": 0,
    }
    # By what answered: the corrected printer ticket was still answered by the local classifier,
    # which is no LLM call.
    assert stats["answered_by"] == {"memory": 1, "llm": 0, "local_classifier": 2}
    assert stats["memory_hit_ratio"] == pytest.approx(1 / 3, abs=1e-4)
    assert (stats["llm_calls"], stats["llm_calls_avoided"]) == (0, 1)
    # The local classifier reports no tokens: the configured estimate prices the avoided call.
    assert stats["tokens_per_llm_call_measured"] is False
    assert stats["estimated_savings"] == pytest.approx(1 * 1000 / 1000 * 0.5)
    assert stats["time_to_classification_ms"]["tickets"] == 3
    assert 0 < stats["time_to_classification_ms"]["p50"] <= stats["time_to_classification_ms"]["p95"] < 30_000
    assert sum(b["memory"] for b in stats["series"]) == 1 and sum(b["llm"] for b in stats["series"]) == 0
    assert sum(b["local_classifier"] for b in stats["series"]) == 2 and len(stats["series"]) == 4
    # Not calibrated: the fixed policy decides; the table still lists what was answered.
    precision = stats["precision"]
    assert precision["calibrated"] is False and precision["tenant"] == "default" and precision["target"] == 0.97
    rows = {r["value"]: r for r in precision["labels"]["category"]}
    vpn = rows[first["labels"]["category"]]
    assert vpn["tickets"] == 2 and vpn["answered_share"] == 0.5 and vpn["status"] == "no_bar"


def test_stats_and_metrics_need_the_read_scope(ops_lane, tickets):
    assert demo.call("GET", f"{ops_lane.api_url}/stats")[0] == 401
    assert demo.call("GET", f"{ops_lane.api_url}/stats?hours=0", api_key=KEY)[0] == 422


def test_metrics_add_up_the_api_and_the_worker(ops_lane, tickets):
    request = urllib.request.Request(f"{ops_lane.api_url}/metrics", headers={"X-API-Key": KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("triage_tickets_total", (("status", "Pending"),))] == 3  # ingested by the API
    assert samples[("triage_tickets_total", (("status", "Classified_By_AI"),))] == 2  # by the worker
    assert samples[("triage_tickets_total", (("status", "Classified_By_Cache"),))] == 1
    assert samples[("triage_memory_lookups_total", (("result", "hit"),))] == 1
    assert samples[("triage_memory_lookups_total", (("result", "miss"),))] == 2
    assert samples[("triage_llm_calls_total", (("classifier", "local-embedding"), ("outcome", "ok")))] == 2
    assert samples[("triage_llm_latency_seconds_count", (("classifier", "local-embedding"),))] == 2


CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if CHROMEDRIVER is None:
        pytest.skip("chromium-driver is not installed (make install installs Debian's chromium and chromium-driver)")
    from selenium import webdriver

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach for the network
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def test_the_console_loads_filters_and_corrects_a_ticket(ops_lane, tickets, browser):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    _, again, _ = tickets
    # The figures and the table load side by side and are rebuilt on every load: an element
    # not there yet, or read mid-rebuild, means try again.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def rows():
        return {
            row.get_attribute("data-ticket-id"): row
            for row in browser.find_elements(By.CSS_SELECTOR, "#tickets tbody tr")
        }

    browser.get(f"{ops_lane.api_url}/console")
    # It loads at once, and without a key says so (an API without keys shows its data at once).
    wait.until(lambda _: "401" in browser.find_element(By.ID, "error").text)
    assert "needs a key" in browser.find_element(By.ID, "error").text
    assert rows() == {}

    browser.find_element(By.ID, "api-key").send_keys(KEY)
    browser.find_element(By.ID, "load").click()
    wait.until(lambda _: len(rows()) == 3)
    wait.until(lambda _: browser.find_element(By.ID, "stat-total").text)  # the figures arrived too
    assert browser.find_element(By.ID, "stat-total").text == "3"
    assert browser.find_element(By.ID, "stat-ratio").text == "33.3%"
    assert browser.find_element(By.ID, "stat-memory").text == "1"
    assert browser.find_element(By.ID, "stat-llm").text == "0"  # the local classifier is no LLM
    assert browser.find_element(By.ID, "stat-local").text == "2"
    assert browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar-memory")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar-local_classifier")
    assert "not calibrated" in browser.find_element(By.ID, "precision-note").text
    category = again["labels"]["category"]
    precision_row = browser.find_element(By.CSS_SELECTOR, f'#precision tr[data-category="{category}"]')
    assert precision_row.find_element(By.CSS_SELECTOR, ".share").text == "50.0% of 2"

    Select(browser.find_element(By.ID, "status-filter")).select_by_value("Classified_By_Cache")
    wait.until(lambda _: set(rows()) == {again["ticket_id"]})

    row = rows()[again["ticket_id"]]
    row.find_element(By.CSS_SELECTOR, "button.correct").click()
    Select(row.find_element(By.CSS_SELECTOR, "select.category")).select_by_value("Access")
    row.find_element(By.CSS_SELECTOR, "button.save").click()
    # The filter still asks for Classified_By_Cache: the corrected ticket leaves the list.
    wait.until(lambda _: rows() == {})
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("Corrected_By_Human")
    wait.until(lambda _: again["ticket_id"] in rows())
    assert rows()[again["ticket_id"]].find_element(By.CSS_SELECTOR, ".status").text == "Corrected_By_Human"
    assert "Access" in rows()[again["ticket_id"]].find_element(By.CSS_SELECTOR, ".labels").text

    # Corrected, but still a ticket the memory answered: an LLM call avoided.
    browser.find_element(By.ID, "load").click()
    wait.until(lambda _: browser.find_element(By.ID, "stat-corrected").text == "2")
    assert browser.find_element(By.ID, "stat-memory").text == "1"

    # A reviewer confirms the first ticket: it is verified, not corrected.
    first = tickets[0]
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("Classified_By_AI")
    wait.until(lambda _: first["ticket_id"] in rows())
    rows()[first["ticket_id"]].find_element(By.CSS_SELECTOR, "button.confirm").click()
    wait.until(lambda _: first["ticket_id"] not in rows())
    wait.until(lambda _: browser.find_element(By.ID, "stat-confirmed").text == "1")
    assert browser.find_element(By.ID, "stat-corrected").text == "2"
    confirmed = call(ops_lane, "GET", f"/tickets/{first['ticket_id']}")[1]
    assert confirmed["status"] == "Verified_By_Human" and confirmed["labels"] == first["labels"]
    assert confirmed["corrections"][-1] == {**confirmed["corrections"][-1], "confirmed": True, "reviewer": "console"}

    stored = call(ops_lane, "GET", f"/tickets/{again['ticket_id']}")[1]
    assert stored["status"] == "Corrected_By_Human" and stored["labels"]["category"] == "Access"
    assert stored["corrections"][-1]["reviewer"] == "console"

    if os.environ.get("TRIAGE_CONSOLE_SCREENSHOT"):  # how the README's picture is made
        Select(browser.find_element(By.ID, "status-filter")).select_by_value("")
        wait.until(lambda _: len(rows()) == 3)
        Path(os.environ["TRIAGE_CONSOLE_SCREENSHOT"]).write_bytes(browser.get_screenshot_as_png())
