"""The clinician view end to end, on SQLite and PostgreSQL: sign-in and its cookies, the
caseload (order, labels, sparklines, filters, paging, clinic isolation), the client page
(charts, factors, actions, model, disclaimer), acknowledging with and without CSRF, expired,
tampered and revoked sessions, sign-out, security headers and the audit rows pages leave.
Clients are stored through the JSON API, as an EHR would store them."""

from __future__ import annotations

import base64
import itertools
import json
import re
import stat
import time
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.core.settings import Settings
from service.scoring.model_store import ModelUnavailable
from service.security.api_keys import ApiKey
from service.security.key_store import DbKeyStore
from service.security.session_cookies import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SessionSecretError,
    SessionSigner,
    load_or_create_secret,
)
from service.storage import repository as repo
from service.storage import ui_sessions
from service.storage.database import Storage
from service.storage.engine import StorageUnavailable, normalise_url
from service.storage.repository import PredictionRecord, SessionRecord
from service.storage.tables import UiSessionRow
from service.ui import views
from tests.support.helpers import REPO, create_key
from tests.support.ui import CLIENTS, CSP, A, B, Ui, csrf, include_ui, row_ids, row_of, set_cookies
from training.cli import run
from training.vocabulary import ID_RULE

# --- sign-in --------------------------------------------------------------------------------


def test_login_form_is_labelled_and_carries_a_csrf_pair(ui: Ui) -> None:
    response = ui.http.get("/ui/login")
    assert response.status_code == 200
    html = response.text
    assert html.startswith('<!doctype html>\n<html lang="en">')
    assert "<title>Sign in – Dropout risk</title>" in html
    assert '<label for="access-key">Access key</label>' in html
    assert re.search(r'<input id="access-key" name="access_key" type="password" required', html)
    assert re.search(r'<button type="submit" class="button" id="sign-in">Sign in</button>', html)
    (cookie,) = set_cookies(response, "drk_ui_login")
    attributes = cookie.lower()
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/ui" in attributes
    nonce = cookie.split(";")[0].split("=", 1)[1]
    assert nonce
    assert nonce not in html
    assert csrf(html) != nonce


def test_login_sets_a_signed_session_cookie_without_the_token(ui: Ui) -> None:
    before = time.time()
    response = ui.login("a")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/caseload"
    (cookie,) = set_cookies(response, SESSION_COOKIE)
    attributes = [part.strip() for part in cookie.split(";")]
    lowered = [a.lower() for a in attributes]
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "path=/ui" in lowered
    assert "max-age=28800" in lowered
    assert any(a.startswith("expires=") for a in lowered)
    assert "secure" not in lowered  # plain http here; https below
    value = attributes[0].split("=", 1)[1]
    token = ui.tokens["a"]
    assert token not in cookie
    assert token.split("_", 2)[2] not in cookie
    version, body, mac = value.split(".")
    assert version == "v2"
    assert len(base64.urlsafe_b64decode(mac + "=")) == 32
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert set(payload) == {"k", "c", "t", "e", "x", "s"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", payload["s"])  # the session id: 256 bits
    # only its SHA-256 is stored, with the key and the cookie's own expiry
    assert stored_sessions(ui) == [(ui_sessions.digest(payload["s"]), ui.key_id("a"))]
    assert (payload["k"], payload["c"], payload["t"]) == (ui.key_id("a"), A, None)
    assert before + SESSION_SECONDS - 5 <= payload["e"] <= time.time() + SESSION_SECONDS
    assert re.fullmatch(r"[0-9a-f]{32}", payload["x"])
    # the sign-in form's nonce cookie is cleared
    (login_cookie,) = set_cookies(response, "drk_ui_login")
    assert "max-age=0" in login_cookie.lower()
    assert "Caseload" in ui.page("/ui/caseload")


def test_login_over_https_marks_the_cookies_secure(ui: Ui) -> None:
    ui.http.base_url = "https://testserver.local"
    form = ui.http.get("/ui/login")
    assert "secure" in [a.strip().lower() for a in set_cookies(form, "drk_ui_login")[0].split(";")]
    response = ui.login("a")
    assert response.status_code == 303
    (cookie,) = set_cookies(response, SESSION_COOKIE)
    assert "secure" in [a.strip().lower() for a in cookie.split(";")]


def test_a_wrong_key_is_401_and_not_echoed(ui: Ui) -> None:
    wrong = ui.tokens["a"][:-6] + "abcdef"
    ui.tokens["wrong"] = wrong
    response = ui.login("wrong")
    assert response.status_code == 401
    assert "This access key was not accepted" in response.text
    assert wrong not in response.text
    assert wrong.split("_", 2)[2] not in response.text  # the secret (may itself hold "_")
    assert 'value="drk_' not in response.text
    assert '<label for="access-key">Access key</label>' in response.text  # form again
    assert set_cookies(response, SESSION_COOKIE) == []
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 303


def test_a_key_without_clients_read_is_refused(ui: Ui) -> None:
    response = ui.login("predict")
    assert response.status_code == 403
    assert "does not give access to client records" in response.text
    assert ui.tokens["predict"] not in response.text
    assert set_cookies(response, SESSION_COOKIE) == []


def test_login_without_its_csrf_pair_is_refused(ui: Ui) -> None:
    form = ui.http.get("/ui/login")
    token = csrf(form.text)
    data = {"access_key": ui.tokens["a"], "csrf_token": token[:-2] + "AA"}
    wrong = ui.http.post("/ui/login", data=data, follow_redirects=False)
    assert wrong.status_code == 403
    assert "The sign-in form expired" in wrong.text
    assert set_cookies(wrong, SESSION_COOKIE) == []
    missing = ui.http.post("/ui/login", data={"access_key": ui.tokens["a"]}, follow_redirects=False)
    assert missing.status_code == 403
    ui.http.cookies.clear()  # the hidden field alone, without its cookie
    no_cookie = ui.http.post(
        "/ui/login",
        data={"access_key": ui.tokens["a"], "csrf_token": token},
        follow_redirects=False,
    )
    assert no_cookie.status_code == 403
    assert set_cookies(no_cookie, SESSION_COOKIE) == []


def test_pages_without_a_session_redirect_to_login(ui: Ui) -> None:
    expected = {
        "/ui": "/ui/caseload",
        "/ui/caseload": "/ui/login",
        "/ui/caseload?min_level=high": "/ui/login?next=%2Fui%2Fcaseload%3Fmin_level%3Dhigh",
        "/ui/clients/hi": "/ui/login?next=%2Fui%2Fclients%2Fhi",
    }
    for path, location in expected.items():
        response = ui.http.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, location)
    post = ui.http.post("/ui/clients/hi/acknowledge", follow_redirects=False)
    assert (post.status_code, post.headers["location"]) == (303, "/ui/login")
    logout = ui.http.post("/ui/logout", follow_redirects=False)
    assert (logout.status_code, logout.headers["location"]) == (303, "/ui/login")


def test_database_away_is_a_503_page(ui: Ui, monkeypatch: pytest.MonkeyPatch) -> None:
    ui.signed_in("a")

    page = ui.page("/ui/caseload")

    def away(*args: str) -> None:
        raise StorageUnavailable("the database cannot be reached")

    for method in ("session_key", "end_session", "open_session"):
        monkeypatch.setattr(ui.http.app.state.keys, method, away)
    response = ui.http.get("/ui/caseload", follow_redirects=False)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-security-policy"] == CSP
    assert "<h1>Service unavailable</h1>" in response.text
    logout = ui.http.post("/ui/logout", data={"csrf_token": csrf(page)}, follow_redirects=False)
    assert logout.status_code == 503  # not signed out: the cookie is kept, to try again
    assert set_cookies(logout, SESSION_COOKIE) == []
    ui.http.cookies.clear()
    login = ui.login("a")
    assert login.status_code == 503
    assert set_cookies(login, SESSION_COOKIE) == []


def test_login_returns_to_the_page_asked_for_and_only_to_this_view(ui: Ui) -> None:
    form = ui.page("/ui/login?next=%2Fui%2Fclients%2Fhi")
    assert '<input type="hidden" name="next" value="/ui/clients/hi">' in form
    response = ui.login("a", next_path="/ui/clients/hi")
    assert (response.status_code, response.headers["location"]) == (303, "/ui/clients/hi")
    for unsafe in ("https://evil.example/", "//evil.example/ui/", "/ui//evil", '/ui/"><b>x'):
        ui.http.cookies.clear()
        page = ui.page("/ui/login?" + httpx.QueryParams({"next": unsafe}).__str__())
        assert 'name="next"' not in page
        assert "evil" not in page
        assert "<b>x" not in page
        response = ui.login("a", next_path=unsafe)
        assert response.headers["location"] == "/ui/caseload"


# --- the caseload ---------------------------------------------------------------------------


def test_caseload_lists_high_risk_first_with_text_labels(ui: Ui) -> None:
    since = datetime.now(UTC)
    ui.signed_in("a")
    html = ui.page("/ui/caseload")
    assert "<title>Caseload – Dropout risk</title>" in html
    assert re.findall(r"<h([1-6])", html)[:1] == ["1"]
    assert row_ids(html) == ["hi", "mod", "lo"]
    assert "b-secret" not in html  # another clinic's client never appears
    assert "Showing 1–3 of 3 clients." in html
    for client_id, label in (("hi", "High"), ("mod", "Moderate"), ("lo", "Low")):
        row = row_of(html, client_id)
        risk = ui.risks[client_id]
        level = risk["risk_level"]
        assert f'<span class="flag flag-{level}" data-level="{level}">' in row
        assert f'<span class="flag-text">{label}</span>' in row
        assert '<svg class="flag-icon"' in row  # a shape besides the colour
        percent = f"{risk['probability'] * 100:.0f}%"
        assert f'<td data-label="Probability" class="num probability">{percent}</td>' in row
        landmark = risk["landmark_session"]
        assert f'<td data-label="Landmark session" class="num landmark">{landmark}</td>' in row
        assert f'<a class="client-link" href="/ui/clients/{client_id}">{client_id}</a>' in row
        assert risk["factors"][0]["label"] in unescape(row)
        assert "Not acknowledged" in row
        assert "is-acknowledged" not in row
    hi = row_of(html, "hi")
    assert '<time datetime="2026-03-09">2026-03-09</time>' in hi
    # the sparkline: alliance of sessions 1 and 2 (WAI-SR means 2.0 and 2.17), described
    spark = re.search(r'<svg class="sparkline" width="96" height="32"[^>]*>.*?</svg>', hi, re.S)
    assert spark is not None
    label = "Alliance (WAI-SR mean, 1 to 5) by session: session 1 2.0, session 2 2.2"
    assert f'role="img" aria-label="{label}"' in spark.group(0)
    assert f"<title>{label}</title>" in spark.group(0)
    assert spark.group(0).count("<circle") == 2
    assert spark.group(0).count("<polyline") == 1
    # each client shown is one audit row, under the browser session's actor
    rows = [r for r in ui.audit(since) if r.action == "caseload.read"]
    assert sorted(r.client_pseudonym or "" for r in rows) == sorted(
        ui.pseudonym(c) for c in CLIENTS
    )
    assert {r.actor for r in rows} == {f"ui:{ui.key_id('a')}"}


def test_caseload_filters_by_level_and_therapist(ui: Ui) -> None:
    ui.signed_in("a")
    form = ui.page("/ui/caseload")
    assert '<label for="min-level">Risk level</label>' in form
    assert '<label for="therapist">Therapist id</label>' in form
    assert '<label for="acknowledged">Flag status</label>' in form
    assert row_ids(ui.page("/ui/caseload?min_level=moderate")) == ["hi", "mod"]
    assert row_ids(ui.page("/ui/caseload?min_level=high")) == ["hi"]
    assert row_ids(ui.page("/ui/caseload?therapist=T-2")) == ["mod"]
    assert row_ids(ui.page("/ui/caseload?therapist=T-1&min_level=moderate")) == ["hi"]
    assert row_ids(ui.page("/ui/caseload?therapist=T-9")) == []
    assert "No clients match these filters." in ui.page("/ui/caseload?therapist=T-9")
    assert row_ids(ui.page("/ui/caseload?min_level=extreme")) == ["hi", "mod", "lo"]
    assert "Invalid request" in ui.page("/ui/caseload?therapist=%3Cscript%3E", 400)


def test_ids_of_dots_only_are_refused(ui: Ui) -> None:
    """The id rule of training/vocabulary.py, stated on the page."""
    ui.signed_in("a")
    for dots in (".", "..", "..."):
        page = unescape(ui.page(f"/ui/caseload?therapist={dots}", 400))
        assert f"Therapist ids are {ID_RULE}." in page
    assert "Client not found" in ui.page("/ui/clients/...", 404)


def test_a_therapists_key_shows_their_clients_by_default(ui: Ui) -> None:
    ui.signed_in("t1")
    html = ui.page("/ui/caseload")
    assert row_ids(html) == ["hi", "lo"]
    assert 'name="therapist" type="text" value="T-1"' in html
    assert "Clinic clinic-a · Therapist T-1" in html
    assert "Your clients only" in html
    assert row_ids(ui.page("/ui/caseload?therapist=")) == ["hi", "lo"]  # never the clinic
    assert row_ids(ui.page("/ui/caseload?therapist=T-1")) == ["hi", "lo"]


def test_a_therapists_key_sees_no_other_therapists_client(ui: Ui) -> None:
    """T-2's client "mod" is, to T-1's key, a client that does not exist."""
    ui.signed_in("t1")
    assert "mod" not in ui.page("/ui/caseload?therapist=T-2", 403)
    assert ui.page("/ui/clients/mod", 404) == ui.page("/ui/clients/nobody", 404)
    page = ui.page("/ui/clients/hi")
    ack = ui.http.post(
        "/ui/clients/mod/acknowledge", data={"csrf_token": csrf(page)}, follow_redirects=False
    )
    assert ack.status_code == 404
    assert ui.api("GET", "/v1/clients/mod/risk", "writer")["acknowledged"] is False


def test_caseload_pages(ui: Ui) -> None:
    ui.signed_in("a")
    first = ui.page("/ui/caseload?limit=2")
    assert row_ids(first) == ["hi", "mod"]
    assert "Showing 1–2 of 3 clients." in first
    assert "Page 1 of 2" in first
    found = re.search(r'<a href="/ui/caseload\?([^"]+)" rel="next" id="page-next">', first)
    assert found is not None
    query = parse_qs(found.group(1).replace("&amp;", "&"))
    assert (query["page"], query["limit"]) == (["2"], ["2"])
    second = ui.page("/ui/caseload?" + found.group(1).replace("&amp;", "&"))
    assert row_ids(second) == ["lo"]
    assert 'rel="prev" id="page-previous"' in second
    assert 'rel="next"' not in second


def test_a_caseload_that_mixes_models_says_so(ui: Ui) -> None:
    """While stored risks are recomputed after a change of model the list says it mixes
    models; once they are all the serving model's it says nothing."""
    ui.signed_in("a")
    assert 'id="caseload-recomputing"' not in ui.page("/ui/caseload")
    ui.http.app.state.rescorer.stop()  # type: ignore[attr-defined]  # hold the recompute
    serving = ui.http.app.state.models.for_clinic(A).version  # type: ignore[attr-defined]
    with ui.db() as s:
        latest = repo.latest_prediction(s, A, "lo")
        assert latest is not None
        repo.add_prediction(
            s,
            A,
            "lo",
            "20250101-0123abcd",  # an earlier model's risk, as before a promotion
            latest.inputs_sha256,
            latest.probability,
            latest.risk_level,
            latest.landmark,
            latest.body,
        )
    page = unescape(ui.page("/ui/caseload"))
    assert (
        f"1 of 3 risks listed were computed by an earlier model and are being recomputed "
        f"with {serving}; until then each row names its own model."
    ) in page
    assert 'id="caseload-recomputing"' in page


@pytest.mark.parametrize(
    "text", ["+10", "%2B10", "010", "1_0", "%201", "1%E2%80%89", "%D9%A1", "0"]
)
def test_caseload_numbers_are_plain_digits_in_range(ui: Ui, text: str) -> None:
    """The API's rule for page numbers and sizes (service/core/schemas.py): a 422 page naming
    the parameter, never a silent fallback to the default."""
    ui.signed_in("a")
    for name in ("limit", "page"):
        page = unescape(ui.page(f"/ui/caseload?{name}={text}", 422))
        assert "Invalid request" in page
        assert f"{name}: " in page
    assert row_ids(ui.page("/ui/caseload?limit=2&page=1")) == ["hi", "mod"]


# --- the client page ------------------------------------------------------------------------


def test_client_page_shows_chart_factors_actions_model_and_disclaimer(ui: Ui) -> None:
    since = datetime.now(UTC)
    ui.signed_in("a")
    html = ui.page("/ui/clients/hi")
    shown = unescape(html)  # the model's wording, as the browser shows it
    risk = ui.risks["hi"]
    assert "<title>Client hi – Dropout risk</title>" in html
    headings = [int(h) for h in re.findall(r"<h([1-6])", html)]
    assert headings[0] == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(headings))
    assert '<span class="flag-text">High</span>' in html
    assert (
        f'<span class="probability-value" id="probability">{risk["probability"] * 100:.0f}%</span>'
        in html
    )
    # three charts of fixed size, each with a title and a description of its values
    for chart_id in ("chart-alliance", "chart-srs-ors", "chart-phq9"):
        assert f'<figure class="chart" id="{chart_id}">' in html
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in html
    assert html.count('<svg class="chart-svg" width="360" height="200"') == 3
    srs = re.search(r'<figure class="chart" id="chart-srs-ors">.*?</figure>', html, re.S)
    assert srs is not None
    cutoff = re.search(
        r'<line class="cutoff" [^>]*y1="([\d.]+)"[^>]*stroke-dasharray="6 4" data-value="36"/>',
        srs.group(0),
    )
    assert cutoff is not None
    assert float(cutoff.group(1)) == pytest.approx(160 - 146 * 36 / 40, abs=0.05)  # y of 36
    assert ">SRS cutoff 36</text>" in srs.group(0)
    assert "SRS total: session 1 10, session 2 12." in srs.group(0)  # items summed: 4 x 3
    assert "ORS total: session 1 14.5, session 2 16." in srs.group(0)
    assert "PHQ-9 total: session 1 18, session 2 19." in html
    assert "WAI-SR mean: session 1 2, session 2 2.2." in html
    # factors, suggested actions with sources, model, disclaimer
    assert risk["factors"]
    assert risk["suggested_actions"]
    for factor in risk["factors"]:
        effect = "Raises risk" if factor["direction"] == "raises" else "Lowers risk"
        points = f"{factor['contribution'] * 100:+.1f} points"
        assert re.search(
            rf'<th scope="row" data-label="Factor">{re.escape(factor["label"])}</th>'
            rf".*?{effect}</span></td>"
            rf'<td class="num" data-label="Contribution">{re.escape(points)}</td>',
            shown,
        )
    for action in risk["suggested_actions"]:
        assert f'data-code="{action["code"]}"' in html
        assert action["text"] in shown
        assert f"Source: <cite>{action['source']}</cite>" in shown
    assert f'<dd id="model-version">{risk["model"]["version"]}</dd>' in html
    assert risk["model"]["sha256"] in html
    assert f"<strong>{risk['disclaimer']}</strong>" in html
    assert risk["calibration"] == "network-default"  # the stored answer's standing, said plainly
    assert (
        '<p class="hint" id="standing">Network default model, not yet checked at this clinic: '
        "its probabilities may be off here until it is updated on this clinic&#39;s outcomes.</p>"
    ) in html
    landmarks = re.findall(r'<tr class="landmark-row" data-landmark="(\d+)">', html)
    assert landmarks == ["1", "2"]
    assert '<button type="submit" class="button" id="acknowledge">Acknowledge</button>' in html
    rows = [r for r in ui.audit(since) if r.action == "risk.read"]
    assert [(r.actor, r.client_pseudonym, r.model_version) for r in rows] == [
        (f"ui:{ui.key_id('a')}", ui.pseudonym("hi"), risk["model"]["version"])
    ]


def test_another_clinics_client_is_not_found(ui: Ui) -> None:
    since = datetime.now(UTC)
    ui.signed_in("a")
    other = ui.page("/ui/clients/b-secret", 404)
    missing = ui.page("/ui/clients/nobody", 404)
    assert other.replace("b-secret", "nobody") == missing  # nothing tells them apart
    assert "Client not found" in other
    assert ui.page("/ui/clients/..%2F..%2Fetc", 404)
    form = ui.page("/ui/clients/hi")
    ack = ui.http.post(
        "/ui/clients/b-secret/acknowledge", data={"csrf_token": csrf(form)}, follow_redirects=False
    )
    assert ack.status_code == 404
    assert ui.api("GET", "/v1/clients/b-secret/risk", "b")["acknowledged"] is False
    assert [r for r in ui.audit(since, B) if r.actor.startswith("ui:")] == []


# --- acknowledging --------------------------------------------------------------------------


def test_acknowledge_needs_the_csrf_token(ui: Ui) -> None:
    since = datetime.now(UTC)
    ui.signed_in("a")
    page = ui.page("/ui/clients/hi")
    token = csrf(page)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": token[:-2] + "AA"}):
        refused = ui.http.post("/ui/clients/hi/acknowledge", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert "Request refused" in refused.text
    as_json = ui.http.post(
        "/ui/clients/hi/acknowledge", json={"csrf_token": token}, follow_redirects=False
    )
    assert as_json.status_code == 403  # only a form carries the token
    assert ui.api("GET", "/v1/clients/hi/risk", "writer")["acknowledged"] is False

    done = ui.http.post(
        "/ui/clients/hi/acknowledge", data={"csrf_token": token}, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/ui/clients/hi")
    after = ui.page("/ui/clients/hi")
    assert re.search(
        r'<dd id="ack-status"><span class="status status-acknowledged">.*?Acknowledged</span>',
        after,
    )
    assert 'id="acknowledge"' not in after
    assert ui.api("GET", "/v1/clients/hi/risk", "writer")["acknowledged"] is True
    caseload = ui.page("/ui/caseload")
    hi = row_of(caseload, "hi")
    assert hi.startswith('<tr class="caseload-row risk-high is-acknowledged"')
    assert "Acknowledged</span>" in hi
    assert "is-acknowledged" not in row_of(caseload, "mod")
    assert row_ids(ui.page("/ui/caseload?acknowledged=no")) == ["mod", "lo"]
    assert row_ids(ui.page("/ui/caseload?acknowledged=yes")) == ["hi"]
    acks = [r for r in ui.audit(since) if r.action == "flag.acknowledge"]
    assert [(r.actor, r.client_pseudonym) for r in acks] == [
        (f"ui:{ui.key_id('a')}", ui.pseudonym("hi"))
    ]
    with ui.db() as s:
        latest = repo.latest_prediction(s, A, "hi")
    assert latest is not None
    assert latest.acknowledged


def test_acknowledge_with_another_sessions_token_is_refused(ui: Ui) -> None:
    ui.signed_in("a")
    first = csrf(ui.page("/ui/clients/hi"))
    ui.http.cookies.clear()
    ui.signed_in("a")  # a new session (say, another browser): a new CSRF secret
    second = csrf(ui.page("/ui/clients/hi"))
    assert first != second
    stale = ui.http.post(
        "/ui/clients/hi/acknowledge", data={"csrf_token": first}, follow_redirects=False
    )
    assert stale.status_code == 403


# --- sessions ending ------------------------------------------------------------------------


def test_expired_tampered_and_foreign_cookies_go_to_login(ui: Ui) -> None:
    ui.signed_in("a")
    good = ui.session_value()
    key = ApiKey(ui.key_id("a"), "test", A, frozenset({"clients:read"}), "2026-01-01T00:00:00Z")
    past = SessionSigner(ui.secret_file, clock=lambda: time.time() - SESSION_SECONDS - 1)
    expired, _ = past.issue(key)
    foreign, _ = SessionSigner(ui.secret_file.with_name("other.key")).issue(key)
    unstored, _ = SessionSigner(ui.secret_file).issue(key)  # well signed, never opened
    version, body, mac = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    longer = base64.urlsafe_b64encode(json.dumps({**payload, "e": payload["e"] + 10**6}).encode())
    tampered = {
        "expired": expired,
        "foreign": foreign,
        "unstored": unstored,
        "payload": f"{version}.{longer.decode().rstrip('=')}.{mac}",
        "mac": f"{version}.{body}.{mac[:-3]}AAA",
        "garbage": "v1.%%%.%%%",
        "empty": "",
    }
    for name, value in tampered.items():
        ui.http.cookies.set(SESSION_COOKIE, value, domain="testserver.local", path="/ui")
        response = ui.http.get("/ui/caseload", follow_redirects=False)
        assert response.status_code == 303, name
        assert response.headers["location"] == "/ui/login", name
        if value:
            assert "max-age=0" in set_cookies(response, SESSION_COOKIE)[0].lower(), name
    ui.http.cookies.set(SESSION_COOKIE, good, domain="testserver.local", path="/ui")
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 200


def test_logout_needs_csrf_and_clears_the_cookie(ui: Ui) -> None:
    ui.signed_in("a")
    page = ui.page("/ui/caseload")
    assert '<button type="submit" id="logout" class="button button-quiet">Log out</button>' in page
    refused = ui.http.post("/ui/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 200
    response = ui.http.post("/ui/logout", data={"csrf_token": csrf(page)}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/login")
    (cleared,) = set_cookies(response, SESSION_COOKIE)
    assert "max-age=0" in cleared.lower()
    assert "path=/ui" in cleared.lower()
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 303


def test_a_copied_cookie_is_refused_after_logout(ui: Ui) -> None:
    ui.signed_in("a")
    copied = ui.session_value()
    page = ui.page("/ui/caseload")
    signed_out = ui.http.post("/ui/logout", data={"csrf_token": csrf(page)}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert stored_sessions(ui) == []
    ui.http.cookies.set(SESSION_COOKIE, copied, domain="testserver.local", path="/ui")
    for path in ("/ui/caseload", "/ui/clients/hi"):
        response = ui.http.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login"), path
    ui.http.cookies.set(SESSION_COOKIE, copied, domain="testserver.local", path="/ui")
    ack = ui.http.post(
        "/ui/clients/hi/acknowledge", data={"csrf_token": csrf(page)}, follow_redirects=False
    )
    assert (ack.status_code, ack.headers["location"]) == (303, "/ui/login")
    assert ui.api("GET", "/v1/clients/hi/risk", "writer")["acknowledged"] is False


def test_a_cross_site_logout_has_no_effect(ui: Ui) -> None:
    """Another site can make the browser post to /ui/logout, cookie included, but cannot
    read the form's CSRF token: without it the session stays open."""
    ui.signed_in("a")
    before = stored_sessions(ui)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}):
        refused = ui.http.post("/ui/logout", data=data, follow_redirects=False)
        assert refused.status_code == 403, data
        assert set_cookies(refused, SESSION_COOKIE) == []
    json_post = ui.http.post("/ui/logout", json={"csrf_token": "x"}, follow_redirects=False)
    assert json_post.status_code == 403
    # SameSite=Strict keeps the cookie off a cross-site post: the answer to a logout
    # without a session must not clear the cookie either (that alone signed a clinician
    # out: a top-level navigation's Set-Cookie is applied).
    blind = TestClient(ui.http.app, base_url="http://testserver.local")
    cookieless = blind.post("/ui/logout", data={}, follow_redirects=False)
    assert (cookieless.status_code, cookieless.headers["location"]) == (303, "/ui/login")
    assert set_cookies(cookieless, SESSION_COOKIE) == []
    assert stored_sessions(ui) == before != []
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 200


def test_revoking_the_key_with_the_cli_ends_its_sessions(ui: Ui) -> None:
    ui.signed_in("a")
    other = TestClient(ui.http.app, base_url="http://testserver.local")
    second = Ui(other, ui.url, ui.tokens, {}, ui.pseudonym, ui.secret_file)
    second.signed_in("a")
    third = TestClient(ui.http.app, base_url="http://testserver.local")
    Ui(third, ui.url, ui.tokens, {}, ui.pseudonym, ui.secret_file).signed_in("t1")
    assert sorted(k for _, k in stored_sessions(ui)) == sorted(
        [ui.key_id("a"), ui.key_id("a"), ui.key_id("t1")]
    )
    assert run(["keys", "revoke", ui.key_id("a"), "--database-url", ui.url]) == 0
    assert [k for _, k in stored_sessions(ui)] == [ui.key_id("t1")]
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_the_session(ui: Ui) -> None:
    ui.signed_in("a")
    assert ui.http.get("/ui/caseload", follow_redirects=False).status_code == 200
    storage = Storage(normalise_url(ui.url))
    DbKeyStore(storage.factory).revoke(ui.key_id("a"))
    storage.close()
    for path in ("/ui/caseload", "/ui/clients/hi"):
        response = ui.http.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login")
    assert ui.login("a").status_code == 401


def stored_sessions(ui: Ui) -> list[tuple[str, str]]:
    """(SHA-256 of the session id, key id) of every open clinician view session."""
    with ui.db() as s:
        rows = s.execute(select(UiSessionRow.id_sha256, UiSessionRow.key_id)).all()
    return sorted((row[0], row[1]) for row in rows)


# --- headers and resources ------------------------------------------------------------------


def test_security_headers_on_every_ui_response(ui: Ui) -> None:
    responses = [ui.http.get("/ui/login"), ui.http.get("/ui/caseload", follow_redirects=False)]
    ui.signed_in("a")
    page = ui.http.get("/ui/caseload")
    responses += [
        page,
        ui.http.get("/ui/clients/hi"),
        ui.http.get("/ui/clients/nobody"),
        ui.http.post("/ui/logout", data={}, follow_redirects=False),
        ui.http.post(
            "/ui/clients/hi/acknowledge",
            data={"csrf_token": csrf(page.text)},
            follow_redirects=False,
        ),
    ]
    for response in responses:
        headers = response.headers
        assert headers["content-security-policy"] == CSP, response.url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
    assert [r.status_code for r in responses] == [200, 303, 200, 200, 404, 403, 303]
    # the JSON API is left as it was
    assert "content-security-policy" not in ui.http.get("/healthz").headers


def test_pages_use_only_the_services_own_stylesheet(ui: Ui) -> None:
    ui.signed_in("a")
    for path in ("/ui/login", "/ui/caseload", "/ui/clients/hi"):
        html = ui.page(path) if path != "/ui/login" else ui.http.get(path).text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), path
        assert "<script" not in html
        assert " style=" not in html
        assert "<style" not in html
        found = re.search(
            r'<link rel="stylesheet" href="(/ui/static/ui\.css\?v=[0-9a-f]{12})">', html
        )
        assert found is not None
        assert '<a class="skip-link" href="#main">Skip to main content</a>' in html
        assert '<main id="main"' in html
    css = ui.http.get(found.group(1))
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["cache-control"] == "public, max-age=86400"
    assert css.headers["x-content-type-options"] == "nosniff"
    assert ":focus-visible" in css.text
    assert "@media (max-width: 760px)" in css.text
    assert "url(" not in css.text
    assert "@import" not in css.text


# --- the pieces, without a database ---------------------------------------------------------


def _session(number: int, payload: dict[str, Any]) -> SessionRecord:
    return SessionRecord(number, None, payload, datetime.now(UTC))


def test_scores_are_read_with_the_request_schemas() -> None:
    items = {"items": [5, 5, 1, 4, 1, 4, 1, 4, 1, 5, 4, 5]}  # task 5, bond 1, goal 4
    s = views.session_scores(
        _session(
            1, {"wai": items, "srs": {"relationship": 9, "goals": 8, "approach": 7, "overall": 6}}
        )
    )
    assert (s.wai, s.srs, s.ors, s.phq9) == (pytest.approx(10 / 3), 30.0, None, None)
    partial = views.session_scores(
        _session(
            2, {"wai": {"bond": 3.5, "goal": 2.5}, "ors": {"total": 21.5}, "phq9": {"total": 7}}
        )
    )
    assert (partial.wai, partial.ors, partial.phq9) == (3.0, 21.5, 7.0)
    assert partial.alliance() == (3.0, "WAI-SR")
    srs_only = views.session_scores(_session(3, {"srs": {"total": 34}}))
    assert srs_only.alliance() == (3.4, "SRS")
    assert views.session_scores(_session(4, {"phq9": {"total": 3}})).alliance() is None


def test_sparkline_marks_srs_fallback_and_gaps() -> None:
    sessions = [
        views.session_scores(_session(1, {"wai": {"goal": 2.0, "task": 3.0, "bond": 4.0}})),
        views.session_scores(_session(2, {"srs": {"total": 25}})),
        views.session_scores(_session(4, {"wai": {"goal": 5.0}})),
        views.session_scores(_session(9, {"wai": {"goal": 1.0}})),  # not an early session
    ]
    spark = views.sparkline(sessions)
    assert spark is not None
    assert spark.label == (
        "Alliance (WAI-SR mean, 1 to 5) by session: session 1 3.0, "
        "session 2 2.5 (SRS total ÷ 10), session 3 no score, session 4 5.0"
    )
    assert spark.segments == ["4.0,16.0 26.0,19.0"]  # session 4 stands alone after the gap
    assert spark.dots == [("4.0", "16.0"), ("26.0", "19.0"), ("70.0", "4.0")]
    assert views.sparkline([views.session_scores(_session(1, {"phq9": {"total": 9}}))]) is None


def test_charts_place_values_and_the_srs_cutoff() -> None:
    sessions = [
        views.session_scores(_session(1, {"srs": {"total": 40}, "ors": {"total": 0}})),
        views.session_scores(_session(3, {"srs": {"total": 20}, "phq9": {"total": 27}})),
    ]
    alliance, srs, phq9 = views.charts(sessions)
    assert alliance.empty
    assert not srs.empty
    assert not phq9.empty
    assert srs.cutoff == views.Cutoff(f"{160 - 146 * 0.9:.1f}", "SRS cutoff 36", "36")
    srs_series, ors_series = srs.series
    assert [(m.x, m.y) for m in srs_series.markers] == [("44.0", "14.0"), ("346.0", "87.0")]
    assert srs_series.segments == ["44.0,14.0 346.0,87.0"]
    assert [(m.x, m.y) for m in ors_series.markers] == [("44.0", "160.0")]
    assert ors_series.segments == []  # one point: a marker, no line
    assert [t.label for t in srs.x_ticks] == ["1", "3"]
    assert [t.label for t in phq9.y_ticks] == ["0", "5", "10", "15", "20", "27"]
    assert phq9.series[0].markers[0].y == "14.0"
    assert "SRS total: session 1 40, session 3 20." in srs.description
    assert srs.description.endswith("Dashed line: SRS cutoff 36.")


def test_risk_by_landmark_keeps_the_latest_at_each() -> None:
    def record(i: int, landmark: int, p: float, level: str) -> PredictionRecord:
        at = datetime(2026, 3, i, 9, 30, tzinfo=UTC)
        return PredictionRecord(i, "c", at, "v1", "x", p, level, landmark, {}, False)

    history = [record(4, 2, 0.3, "high"), record(3, 1, 0.1, "low"), record(2, 2, 0.2, "moderate")]
    rows = views.risk_by_landmark(history)
    assert [(r.landmark, r.probability, r.level_label, r.computed) for r in rows] == [
        (1, "10%", "Low", "2026-03-03 09:30 UTC"),
        (2, "30%", "High", "2026-03-04 09:30 UTC"),
    ]


def test_session_signer(tmp_path: Path) -> None:
    secret = tmp_path / "var" / "ui.key"
    now = [1_800_000_000.0]
    signer = SessionSigner(secret, clock=lambda: now[0])
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(bytes.fromhex(secret.read_text())) == 32
    assert load_or_create_secret(secret) == bytes.fromhex(secret.read_text())  # kept
    key = ApiKey("0123456789ab", "n", A, frozenset({"clients:read"}), "x", "T-1")
    value, issued = signer.issue(key)
    assert signer.read(value) == issued
    assert (issued.key_id, issued.clinic, issued.therapist_id) == ("0123456789ab", A, "T-1")
    assert issued.expires == 1_800_000_000 + 28_800
    token = signer.csrf_token(issued)
    assert signer.check_csrf(issued, token)
    assert not signer.check_csrf(issued, token + "x")
    assert not signer.check_csrf(issued, None)
    now[0] += SESSION_SECONDS
    assert signer.read(value) is None  # expired at exactly 8 hours
    nonce = signer.login_nonce()
    assert signer.check_login(nonce, signer.login_token(nonce))
    assert not signer.check_login(signer.login_nonce(), signer.login_token(nonce))
    assert not signer.check_login(None, signer.login_token(nonce))
    bad = tmp_path / "bad.key"
    bad.write_text("abcd")
    with pytest.raises(SessionSecretError, match="at least 32 bytes"):
        SessionSigner(bad)
    bad.write_text("not hex")
    with pytest.raises(SessionSecretError, match="hex"):
        SessionSigner(bad)


def test_the_router_is_included_once() -> None:
    app = include_ui(create_app(Settings(models_dir=REPO / "models")))
    routes = len(app.routes)
    include_ui(app)
    assert len(app.routes) == routes
    assert app.url_path_for("ui_caseload") == "/ui/caseload"
    assert app.url_path_for("ui_client", client_id="x") == "/ui/clients/x"
    assert all("/ui" not in path for path in app.openapi()["paths"])  # not in the API schema
    assert urlsplit(app.url_path_for("ui_login")).path == "/ui/login"


def test_no_model_to_serve_is_a_503_page_not_json(ui: Ui, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page that needs the served model (the monitoring report) while none is loaded
    answers the view's 503 page, with the view's headers, not the JSON API's error."""
    ui.tokens["lead"] = create_key(ui.url, A, ["clients:read", "monitoring:read"])
    ui.signed_in("lead")
    assert ui.page("/ui/monitoring").count("<svg") >= 1

    def none_loaded(clinic: str) -> None:
        raise ModelUnavailable("no champion model is registered")

    monkeypatch.setattr(ui.http.app.state.models, "for_clinic", none_loaded)
    response = ui.http.get("/ui/monitoring", follow_redirects=False)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["retry-after"] == "5"
    assert "<h1>Service unavailable</h1>" in response.text
    assert "No risk model is being served right now" in response.text
