"""The analysts' page /ui/monitoring (issue 15): who may see it, and that it shows the
report of GET /v1/monitoring for a stored simulated clinic (tests/support/monitoring.py),
with its plots, its status table and the last comparison of the clinic's challenger."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.core.observability import Pseudonymizer
from service.core.settings import Settings
from service.scoring.monitoring_window import clinic_report
from service.ui.monitoring_views import CALIBRATION_TIME_PLOTS, calibration_time_plot
from tests.support.helpers import create_key
from tests.support.monitoring import PLOTS, clinic_tables, move_back, store_clinic
from tests.support.ui import CSP, Ui, include_ui
from training.artifact_schema import ComparisonRecord, VerdictRecord
from training.monitoring import RULES, Figure, MonitoringReport, Period, Status
from training.monitoring_stats import psi
from training.registry import Registry

CLINIC = "calm"


@pytest.fixture
def page(database_url: str, trained_registry: Path, tmp_path: Path) -> Iterator[Ui]:
    """The app on the trained registry (a model with a reference profile) with the clinic's
    400 simulated clients stored; keys: a clinic lead (monitoring:read), an analyst
    (models:admin), a clinician (clients:read only)."""
    models = tmp_path / "models"
    models.mkdir()
    for item in trained_registry.iterdir():  # the registry is written to by one test
        target = models / item.name
        target.symlink_to(item) if item.is_dir() else target.write_bytes(item.read_bytes())
    tokens = {
        "lead": create_key(database_url, CLINIC, ["clients:read", "monitoring:read"]),
        "analyst": create_key(database_url, CLINIC, ["clients:read", "models:admin"]),
        "clinician": create_key(database_url, CLINIC, ["clients:read"]),
        "api": create_key(database_url, CLINIC, ["monitoring:read"]),
    }
    settings = Settings(
        models_dir=models,
        database_url=database_url,
        pseudonym_key_file=tmp_path / "p.key",
        ui_secret_file=tmp_path / "ui-session.key",
    )
    model = Registry(models).load()
    clients, sessions = clinic_tables(None)
    store_clinic(database_url, model, CLINIC, clients, sessions)
    move_back(database_url, CLINIC, 2, timedelta(days=8))  # half the clients a week earlier
    with TestClient(include_ui(create_app(settings)), base_url="http://testserver.local") as http:
        yield Ui(http, database_url, tokens, {}, Pseudonymizer(tmp_path / "p.key"), tmp_path / "x")


def _api(ui: Ui, window: str = "90d") -> dict[str, Any]:
    answer = ui.http.get(
        f"/v1/monitoring?window={window}",
        headers={"Authorization": f"Bearer {ui.tokens['api']}"},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _row(text: str, name: str) -> str:
    found = re.search(
        rf'<tr class="figure-row[^"]*" data-figure="{re.escape(name)}">.*?</tr>', text
    )
    assert found is not None, f"no row for {name}"
    return found.group(0)


def test_a_clinician_without_a_monitoring_scope_gets_403_and_no_link(page: Ui) -> None:
    page.signed_in("clinician")
    caseload = page.page("/ui/caseload")
    assert 'href="/ui/monitoring"' not in caseload
    refused = page.http.get("/ui/monitoring", follow_redirects=False)
    assert refused.status_code == 403
    assert "monitoring:read" in refused.text
    assert "models:admin" in refused.text
    assert refused.headers["content-security-policy"] == CSP
    assert "figure-table" not in refused.text


def test_signed_out_the_page_sends_to_sign_in(page: Ui) -> None:
    answer = page.http.get("/ui/monitoring?window=30d", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fmonitoring%3Fwindow%3D30d"


@pytest.mark.parametrize("who", ["lead", "analyst"])
def test_the_page_shows_the_api_report_with_its_plots(page: Ui, who: str) -> None:
    page.signed_in(who)
    assert 'href="/ui/monitoring"' in page.page("/ui/caseload")
    text = page.page("/ui/monitoring")
    body = _api(page)
    assert body["clients"] > 300
    summary = re.search(r'<p class="meta" id="summary">(.*?)</p>', text, re.S)
    assert summary is not None
    assert f"{body['clients']} clients in the window" in summary.group(1)
    assert f"Model {body['model_version']}" in summary.group(1)
    assert f'id="overall-status">{body["status"]}<' in text
    # every figure of the API's report has its row, with the API's status and n
    names = re.findall(r'data-figure="([^"]+)"', text)
    assert names == [f["name"] for f in body["figures"]]
    for f in body["figures"]:
        row = _row(text, f["name"])
        assert f'<span class="figure-status status-{f["status"].replace(" ", "-")}">' in row
        assert f'data-label="n">{f["n"]:.0f}<' in row
    ks = next(f for f in body["figures"] if f["name"] == "ks.score.all")
    assert f'data-label="Value">{ks["value"]:.3f}' in _row(text, "ks.score.all")
    # every plot (PLOTS), each an SVG with a title, a description and a table alternative
    for plot_id in PLOTS:
        svg = re.search(rf'<figure class="chart plot" id="{plot_id}">.*?</figure>', text, re.S)
        assert svg is not None, plot_id
        assert f'aria-labelledby="{plot_id}-title {plot_id}-desc"' in svg.group(0)
        assert f'<title id="{plot_id}-title">' in svg.group(0)
        assert "chart-empty" not in svg.group(0), plot_id
    # the PSI bars: the features with the largest PSI of the report, largest first
    psis = sorted(
        (f for f in body["figures"] if f["kind"] == "psi" and f["subject"] != "score"),
        key=lambda f: -f["value"],
    )[:8]
    bars = re.findall(r'<rect class="bar bar-psi[^"]*"[^>]*><title>([^<]+)</title>', text)
    assert bars == [f"{f['subject']}: PSI {f['value']:.3f}, {f['status']}" for f in psis]
    # the expected AUC at each landmark where the report has one: the API's value, drawn
    drawn = [
        f
        for f in body["figures"]
        if f["kind"] == "expected_auc" and f["landmark"] is not None and f["value"] is not None
    ]
    assert drawn, "no landmark with an expected AUC"
    for f in drawn:
        point = f"Expected AUC (CBPE) at session {f['landmark']}: {f['value']:.3f}"
        assert point in html.unescape(text)
    # over time: 13 weekly periods; half the clients in the last week, half in the one
    # before; each period's drawn figures are the API's
    periods = body["periods"]
    assert len(periods) == 13
    assert [p["clients"] for p in periods[-2:]] == [body["clients"] // 2, body["clients"] // 2]
    assert sum(p["clients"] for p in periods) == body["clients"]
    shown = html.unescape(text)
    for period in periods[-2:]:
        for f in period["figures"]:
            if f["name"] in ("flag_rate.high.all", "expected_auc.all", "realised_auc.landmark_1"):
                assert f["value"] is not None, f["name"]
        high = next(f for f in period["figures"] if f["name"] == "flag_rate.high.all")
        assert f"High, {_span(period)}: {high['value'] * 100:.1f}% (n {high['n']:.0f})" in shown
        auc = next(f for f in period["figures"] if f["name"] == "realised_auc.landmark_1")
        assert f"Realised AUC, session 1, {_span(period)}: {auc['value']:.3f}" in shown
        for kind, label in (
            ("calibration_slope", "Calibration slope"),
            ("calibration_intercept", "Calibration intercept"),
        ):
            for f in period["figures"]:
                if f["kind"] == kind and f["value"] is not None:
                    k = f["landmark"]
                    drawn = (
                        f"{label}, session {k}, {_span(period)}: {f['value']:.3f} (n {f['n']:.0f})"
                    )
                    assert drawn in shown
    # realised calibration over time: one point per period and landmark with enough labelled
    # episodes, the others gaps ("too few" in the table), never a zero
    for plot_id, kind in (
        ("plot-slope-time", "calibration_slope"),
        ("plot-intercept-time", "calibration_intercept"),
    ):
        svg = re.search(rf'<figure class="chart plot" id="{plot_id}">.*?</figure>', text, re.S)
        assert svg is not None
        mine = [f for p in periods for f in p["figures"] if f["kind"] == kind]
        rated = [f for f in mine if f["value"] is not None]
        landmarks = {f["landmark"] for f in mine}
        assert len(rated) >= 4  # two weeks, landmarks 1 and 2 at least
        assert all(f["status"] == "too few" for f in mine if f["value"] is None)
        assert svg.group(0).count('class="point series-') == len(rated)
        # each other period and landmark is a "too few" cell of the table, not a point
        gaps = len(periods) * len(landmarks) - len(rated)
        assert gaps >= 11 * len(landmarks)  # the eleven empty weeks
        assert svg.group(0).count("– (too few)") == gaps
    assert "design high" in shown
    empty_week = periods[0]
    assert empty_week["clients"] == 0
    assert all(f["status"] == "too few" for f in empty_week["figures"])
    assert "no-comparison" in text  # nothing compared for this clinic yet
    assert "dropout-risk retrain --clinic calm" in text


def _slope(landmark: int, value: float | None, n: int) -> Figure:
    status = Status.TOO_FEW if value is None else Status.ALERT
    interval = None if value is None else (value - 0.5, value + 0.5)
    rule = RULES["calibration_slope"].describe()
    name = f"calibration_slope.landmark_{landmark}"
    return Figure(
        name, "calibration_slope", "", landmark, value, 1.0, n, None, interval, status, rule
    )


def test_the_slope_over_time_draws_rated_periods_only_and_never_clamps_a_point() -> None:
    """Three weeks: a slope of 3.2 at session 1 and too few at session 2, then a week with
    no clients (no figure at all), then 0.9 at both: three points, on a scale widened to
    hold 3.2 (not drawn at the edge), and the three gaps are "too few" cells."""
    weeks = [datetime(2026, 11, d, tzinfo=UTC) for d in (1, 8, 15, 22)]
    figures = [
        (_slope(1, 3.2, 80), _slope(2, None, 30)),
        (),
        (_slope(1, 0.9, 90), _slope(2, 0.9, 60)),
    ]
    periods = tuple(
        Period(start, end, 100, 90, f)
        for start, end, f in zip(weeks, weeks[1:], figures, strict=False)
    )
    report = MonitoringReport("c", "v", 300, 270, 270, 500, {}, None, (), periods=periods)
    spec = next(s for s in CALIBRATION_TIME_PLOTS if s.kind == "calibration_slope")
    plot = calibration_time_plot(spec, report)
    assert plot.empty is None
    values = [p.text.split(": ")[1].split()[0] for p in plot.points]
    assert values == ["3.200", "0.900", "0.900"]
    ys = [float(p.y) for p in plot.points]
    assert all(plot.top < y < plot.bottom for y in ys)  # inside, none clamped to an edge
    assert ys[0] < ys[1] == ys[2]  # 3.2 above 0.9
    ticks = [t.text for t in plot.labels if t.anchor == "end" and t.css == "tick"]
    assert ticks == ["0", "1", "2", "3", "4"]  # 0 to 3.5 is wider than 3: whole units
    cells = [c for row in plot.table.rows for c in row[3:]]
    assert cells.count("– (too few)") == 3
    assert [r.label.text for r in plot.rules] == ["ideal 1"]


def _span(period: dict[str, Any]) -> str:
    start, end = (datetime.fromisoformat(period[k]) for k in ("start", "end"))
    return f"{start:%d %b}–{end:%d %b %Y}"


def test_the_score_distribution_is_the_one_the_score_psi_compares(page: Ui) -> None:
    """The window's bars are the report's score_shares; their PSI against the reference's
    shares is the report's psi.score.all: the page draws the numbers the figure rests on."""
    page.signed_in("lead")
    text = html.unescape(page.page("/ui/monitoring"))
    model = Registry(page.http.app.state.settings.models_dir).load()  # type: ignore[attr-defined]
    profile = model.meta.reference_profile
    assert profile is not None
    with page.db() as s:
        report = clinic_report(s, CLINIC, model, 90)
    assert report.score_shares is not None
    assert len(report.score_shares) == len(profile.score.shares) > 2
    figure = report.figure("psi.score.all")
    assert figure.value is not None
    again = psi(
        np.array(report.score_shares), np.array(profile.score.shares), figure.n, profile.clients
    )
    assert again == pytest.approx(figure.value, rel=1e-12)
    window = re.findall(r", window: ([0-9.]+%)</title>", text)
    reference = re.findall(r", reference: ([0-9.]+%)</title>", text)
    assert window == [f"{x:.1%}" for x in report.score_shares]
    assert reference == [f"{x:.1%}" for x in profile.score.shares]


def test_a_bad_window_is_the_400_page_naming_field_value_and_rule(page: Ui) -> None:
    page.signed_in("lead")
    answer = page.http.get("/ui/monitoring?window=9000d", follow_redirects=False)
    assert answer.status_code == 400
    message = html.unescape(answer.text)
    assert "window: value '9000d' must be" in message
    assert "1 to 730" in message
    assert answer.headers["content-security-policy"] == CSP


def test_the_last_comparison_of_the_clinic_s_challenger_is_shown(page: Ui) -> None:
    registry = Registry(page.http.app.state.settings.models_dir)  # type: ignore[attr-defined]
    champion = registry.load().version

    def record(challenger: str, at: str, clinic: str | None, word: str) -> ComparisonRecord:
        return ComparisonRecord(
            challenger=challenger,
            champion=champion,
            clinic=clinic,
            compared_at=at,
            fingerprint="0" * 64,
            n_clients=321,
            discrimination=VerdictRecord(verdict="not distinguishable"),
            calibration=VerdictRecord(verdict=word),  # type: ignore[arg-type]
        )

    registry.record_comparison(record("v-old", "2026-11-01T10:00:00+00:00", CLINIC, "better"))
    registry.record_comparison(record("v-new", "2026-11-20T10:00:00+00:00", CLINIC, "worse"))
    registry.record_comparison(record("v-else", "2026-11-30T10:00:00+00:00", "other", "better"))
    page.signed_in("lead")
    text = html.unescape(page.page("/ui/monitoring"))
    verdict = re.search(r'<p class="verdict ([a-z]*)" id="verdict"><strong>(.*?)</strong>', text)
    assert verdict is not None
    assert verdict.group(1) == "worse"
    assert verdict.group(2) == (
        f"verdict: v-new against {champion} (clinic calm): discrimination not "
        "distinguishable, calibration worse"
    )
    assert '<dd id="challenger">v-new</dd>' in text
    assert f'<dd id="champion">{champion}</dd>' in text
    assert "no-comparison" not in text


def test_an_unreadable_registry_hides_only_the_comparison(page: Ui) -> None:
    page.signed_in("lead")
    models: Path = page.http.app.state.settings.models_dir  # type: ignore[attr-defined]
    (models / "registry.json").write_text("{not json")
    text = page.page("/ui/monitoring")
    assert 'id="registry-error"' in text
    assert "registry.json" in html.unescape(text)
    assert 'id="figure-table"' in text  # the report is still shown, from the served model
    assert "no-comparison" not in text


def _compared(page: Ui, text: str | None) -> Registry:
    """Record a comparison of a challenger for the clinic, with `text` as its page."""
    registry = Registry(page.http.app.state.settings.models_dir)  # type: ignore[attr-defined]
    champion = registry.load().version
    record = ComparisonRecord(
        challenger="v-new",
        champion=champion,
        clinic=CLINIC,
        compared_at="2026-11-20T10:00:00+00:00",
        fingerprint="0" * 64,
        n_clients=321,
        discrimination=VerdictRecord(verdict="not distinguishable"),
        calibration=VerdictRecord(verdict="better"),
    )
    registry.record_comparison(record, text)
    return registry


COMPARE_PAGE = (
    "<!DOCTYPE html><html><head><title>compare</title><style>p { color: #123456; }</style>"
    "</head><body><p>verdict: v-new</p></body></html>\n"
)


def test_the_last_comparison_s_page_is_served_checked_and_linked(page: Ui) -> None:
    registry = _compared(page, COMPARE_PAGE)
    kept = registry.root / "comparisons" / f"{CLINIC}-v-new.html"
    assert kept.read_text() == COMPARE_PAGE
    page.signed_in("lead")
    assert 'href="/ui/monitoring/comparison"' in page.page("/ui/monitoring")
    answer = page.http.get("/ui/monitoring/comparison", follow_redirects=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.text == COMPARE_PAGE
    style = base64.b64encode(hashlib.sha256(b"p { color: #123456; }").digest()).decode()
    assert answer.headers["content-security-policy"] == CSP.replace(
        "style-src 'self'", f"style-src 'self' 'sha256-{style}'"
    )
    assert answer.headers["x-frame-options"] == "DENY"
    # altered after it was recorded: refused, never served
    kept.write_text(COMPARE_PAGE.replace("v-new", "v-forged"))
    refused = page.http.get("/ui/monitoring/comparison", follow_redirects=False)
    assert refused.status_code == 409
    assert "does not match the sha256" in html.unescape(refused.text)
    assert "v-forged" not in refused.text
    kept.unlink()
    missing = page.http.get("/ui/monitoring/comparison", follow_redirects=False)
    assert missing.status_code == 409
    assert "is missing" in html.unescape(missing.text)


def test_without_a_kept_comparison_page_it_is_404_and_not_linked(page: Ui) -> None:
    page.signed_in("lead")
    none = page.http.get("/ui/monitoring/comparison", follow_redirects=False)
    assert none.status_code == 404
    assert "dropout-risk retrain --clinic calm" in none.text
    assert none.headers["content-security-policy"] == CSP
    _compared(page, None)  # a record without a kept page (as before copies were kept)
    assert page.http.get("/ui/monitoring/comparison").status_code == 404
    assert 'href="/ui/monitoring/comparison"' not in page.page("/ui/monitoring")


def test_the_comparison_page_needs_a_monitoring_scope(page: Ui) -> None:
    _compared(page, COMPARE_PAGE)
    page.signed_in("clinician")
    refused = page.http.get("/ui/monitoring/comparison", follow_redirects=False)
    assert refused.status_code == 403
    assert "verdict" not in refused.text
    assert refused.headers["content-security-policy"] == CSP
