"""The clinician view in a real browser (Debian's chromium through Playwright): the real
server on a free loopback port with the demo caseload; sign in, the high-risk client first
with its text label, the client page with its charts and actions, acknowledge and see the
row dimmed, log out and be sent back to sign in; the analysts' monitoring page of a stored
simulated clinic with its plots. Screenshots go to test-output/browser/.

`make test` installs chromium (apt) when it is missing; these tests are never skipped.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.helpers import REPO, create_key
from tests.support.live import live_server
from tests.support.monitoring import PLOTS, clinic_tables, move_back, store_clinic
from training.cli import run
from training.registry import Registry

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "test-output" / "browser"
LOGIN = re.compile(r".*/ui/login(\?next=.*)?$")  # where a missing session lands


@dataclass(frozen=True)
class Server:
    url: str
    login_key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("browser")
    database = f"sqlite:///{root / 'service.db'}"
    seed = ["demo", "--clinic", "demo", "--clients", "30", "--database-url", database]
    assert run([*seed, "--models-dir", str(REPO / "models")]) == 0
    login_key = create_key(database, "demo", ["clients:read"])
    with live_server(root, database, REPO / "models", 1) as url:
        yield Server(url, login_key)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory, trained_registry: Path) -> Iterator[Server]:
    """The server on the trained registry (a model with a reference profile) with a clinic
    of 400 stored simulated clients and their outcomes; a clinic lead's key."""
    root = tmp_path_factory.mktemp("monitored")
    database = f"sqlite:///{root / 'service.db'}"
    clients, sessions = clinic_tables(None)
    store_clinic(database, Registry(trained_registry).load(), "calm", clients, sessions)
    move_back(database, "calm", 2, timedelta(days=8))  # two weeks of the figures over time
    login_key = create_key(database, "calm", ["clients:read", "monitoring:read"])
    with live_server(root, database, trained_registry, 1) as url:
        yield Server(url, login_key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), (
        "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _sign_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/ui/login")
    page.get_by_label("Access key").fill(server.login_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/ui/caseload")


def test_clinician_journey(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/ui/caseload")
    expect(page).to_have_url(LOGIN)  # no session yet
    _sign_in(page, server)

    rows = page.locator("table#caseload tr.caseload-row")
    expect(rows).to_have_count(30)
    first = rows.first
    expect(first).to_have_attribute("data-level", "high")
    expect(first.locator(".flag-text")).to_have_text("High")  # a label, not colour alone
    probabilities = [
        float(t.strip().rstrip("%")) for t in rows.locator("td.probability").all_inner_texts()
    ]
    assert probabilities == sorted(probabilities, reverse=True)
    assert first.locator("svg.sparkline").get_attribute("aria-label")
    assert _layout_shift(page) < 0.01  # no layout shift as the page loads
    page.screenshot(path=str(SHOTS / "caseload-1280.png"), full_page=True)

    client_id = first.get_attribute("data-client-id")
    assert client_id
    first.locator("a.client-link").click()
    expect(page).to_have_url(f"{server.url}/ui/clients/{client_id}")
    expect(page.locator("#client-id")).to_contain_text(client_id)
    expect(page.locator("figure.chart svg.chart-svg")).to_have_count(3)
    expect(page.locator('line.cutoff[data-value="36"]')).to_have_count(1)
    expect(page.locator("#actions li.action .source").first).not_to_be_empty()
    expect(page.locator("#disclaimer")).to_contain_text("Decision support, not a diagnosis")
    expect(page.locator("#model-version")).not_to_be_empty()
    assert _layout_shift(page) < 0.01
    page.screenshot(path=str(SHOTS / "client-1280.png"), full_page=True)

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#ack-status")).to_contain_text("Acknowledged")
    page.goto(f"{server.url}/ui/caseload")
    row = page.locator(f'tr.caseload-row[data-client-id="{client_id}"]')
    expect(row).to_have_class(re.compile(r"(^|\s)is-acknowledged(\s|$)"))
    expect(row.locator("td.flag-status")).to_have_text("Acknowledged")
    # dimmed: greyed cells and muted text (contrast kept), unlike a row not acknowledged
    style = (
        "r => [getComputedStyle(r.cells[1]).backgroundColor, getComputedStyle(r.cells[1]).color]"
    )
    other = page.locator("tr.caseload-row:not(.is-acknowledged)").first
    assert row.evaluate(style) != other.evaluate(style)
    page.screenshot(path=str(SHOTS / "caseload-acknowledged.png"), full_page=True)

    copied = [c for c in context.cookies() if c.get("name") == "drk_ui_session"]
    assert len(copied) == 1
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{server.url}/ui/login")
    page.goto(f"{server.url}/ui/caseload")
    expect(page).to_have_url(LOGIN)
    context.add_cookies(copied)  # the cookie from before, put back: the session is over
    page.goto(f"{server.url}/ui/caseload")
    expect(page).to_have_url(LOGIN)
    assert errors == []
    context.close()


def _layout_shift(page: Page) -> float:
    """Cumulative layout shift of the page so far, from the browser's own records."""
    script = """() => new Promise(done => {
        let total = 0;
        new PerformanceObserver(list => {
            for (const e of list.getEntries()) if (!e.hadRecentInput) total += e.value;
        }).observe({type: "layout-shift", buffered: true});
        setTimeout(() => done(total), 300);
    })"""
    return float(page.evaluate(script))


def test_phone_width_and_keyboard(browser: Browser, server: Server) -> None:
    """390 px wide: no page-wide horizontal scroll; the whole sign-in and the first client
    reached with the keyboard alone."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{server.url}/ui/login")
    page.keyboard.press("Tab")  # skip link first, then the field
    focused = page.evaluate("document.activeElement.className")
    assert "skip-link" in focused
    page.get_by_label("Access key").focus()
    page.keyboard.type(server.login_key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/ui/caseload")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    page.screenshot(path=str(SHOTS / "caseload-390.png"), full_page=True)
    page.locator("a.client-link").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#client-id")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "client-390.png"), full_page=True)
    context.close()


def test_monitoring_page_plots(browser: Browser, monitored: Server) -> None:
    """The analysts' page: linked from the nav, its inline SVG plots (PLOTS) drawn (bars and
    points, no "nothing to draw"), the status table, no console error (a CSP violation is
    one), and nothing loaded from anywhere but the service."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    _sign_in(page, monitored)
    page.get_by_role("link", name="Monitoring").click()
    expect(page).to_have_url(f"{monitored.url}/ui/monitoring")
    expect(page.locator("figure.plot svg.plot-svg")).to_have_count(len(PLOTS))
    expect(page.locator("figure.plot .chart-empty")).to_have_count(0)
    expect(page.locator("#plot-score rect.bar-window")).to_have_count(
        page.locator("#plot-score rect.bar-reference").count()
    )
    assert page.locator("#plot-score rect.bar-window").count() > 2
    assert page.locator("#plot-psi rect.bar-psi").count() > 0
    assert page.locator("#plot-auc .series-realised .marker").count() > 0
    assert page.locator("#plot-calibration .series-slope .marker").count() > 0
    # over time: two weeks of flag rates (two series) against their design lines, and the
    # expected and realised AUC
    expect(page.locator("#plot-flag-time .series-high .marker")).to_have_count(2)
    expect(page.locator("#plot-flag-time .series-moderate .marker")).to_have_count(2)
    expect(page.locator("#plot-flag-time line.rule-reference")).to_have_count(2)
    expect(page.locator("#plot-auc-time .series-expected .marker")).to_have_count(2)
    assert page.locator("#plot-auc-time .series-realised .marker").count() >= 2
    # realised calibration over time: a point per period and landmark with enough labelled
    # episodes (the API's figures with a value), the rest gaps
    answer = page.request.get(
        f"{monitored.url}/v1/monitoring?window=90d",
        headers={"Authorization": f"Bearer {monitored.login_key}"},
    )
    assert answer.ok, answer.text()
    periods = answer.json()["periods"]
    for plot_id, kind in (
        ("plot-slope-time", "calibration_slope"),
        ("plot-intercept-time", "calibration_intercept"),
    ):
        rated = [
            f for p in periods for f in p["figures"] if f["kind"] == kind and f["value"] is not None
        ]
        assert len(rated) >= 4, kind  # two weeks, two landmarks at least
        landmarks = {f["landmark"] for p in periods for f in p["figures"] if f["kind"] == kind}
        assert len(rated) < len(periods) * len(landmarks)  # the empty weeks are gaps
        expect(page.locator(f"#{plot_id} .marker")).to_have_count(len(rated))
        expect(page.locator(f"#{plot_id} line.rule-reference")).to_have_count(1)
        page.locator(f"#{plot_id}").screenshot(path=str(SHOTS / f"monitoring-{plot_id}.png"))
    for plot_id in PLOTS:
        svg = page.locator(f"#{plot_id} svg")
        assert svg.get_attribute("role") == "img"
        assert page.locator(f"#{plot_id}-title").text_content()
        box = svg.bounding_box()
        assert box is not None, plot_id
        assert box["width"] > 200, plot_id
        assert box["height"] > 100, plot_id
    expect(page.locator("#figure-table tr.figure-row").first).to_be_visible()
    expect(page.locator("#no-comparison")).to_contain_text("dropout-risk retrain --clinic calm")
    assert all(url.startswith(monitored.url) for url in requested), requested
    assert _layout_shift(page) < 0.01
    page.screenshot(path=str(SHOTS / "monitoring-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing scrolls sideways
    page.reload()
    expect(page.locator("figure.plot svg.plot-svg")).to_have_count(len(PLOTS))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "monitoring-390.png"), full_page=True)
    assert errors == []
    context.close()
