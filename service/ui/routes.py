"""The clinician pages: sign-in, the caseload, one client, acknowledging a flag, sign-out.

Server-rendered (Jinja2, autoescaped), no JavaScript and nothing fetched from outside the
service. Everything a page shows goes through service.storage.repository and is scoped to the
clinic of the signed-in key, exactly as the JSON API is (service.api.clients), with the
same audit rows under the actor `ui:<key_id>`. Pages wait on the database in a worker thread
so the event loop keeps serving predictions.

Every response of these routes carries the security headers of SECURITY_HEADERS (see
UiRoute); the stylesheet is served by this router too, so the app needs no static mount.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from service.api.deps import (
    MONITORING_SCOPES,
    UI_SCOPE,
    Audit,
    Clinician,
    CsrfRefused,
    Db,
    FormViewer,
    Keys,
    Models,
    Reports,
    SignIn,
    Viewer,
    cookie_session,
    form_fields,
    session_signer,
)
from service.core.schemas import MAX_OFFSET, PageLimitText, PageNumberText
from service.core.standing import recomputing_note, standing_note
from service.scoring.model_store import ModelUnavailable
from service.scoring.monitoring_window import (
    WINDOW_RULE,
    InvalidWindow,
    clinic_report,
    parse_window,
    period_days,
)
from service.security import access
from service.security.api_keys import ApiKey
from service.security.session_cookies import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
)
from service.storage import repository as repo
from service.storage.engine import StorageUnavailable
from service.ui import monitoring_views, views
from service.ui.queries import sessions_of_clients
from training.errors import ArtifactError, RegistryInvalid
from training.registry import comparison_page
from training.vocabulary import ID_RULE, is_id

PAGE_SIZE = 50
_LIMIT = TypeAdapter(PageLimitText)
_PAGE = TypeAdapter(PageNumberText)
# where sign-in may send the browser next: a page of this view, nothing else
_NEXT_RE = re.compile(r"/ui/[A-Za-z0-9._~/%-]*(\?[A-Za-z0-9._~%=&+-]*)?")
_HERE = Path(__file__).parent

CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode(), value.encode())
    for name, value in (
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    )
)

NO_MODEL = (
    "No risk model is being served right now (none is registered, or the registry cannot be "
    "read). Stored risks stay on the caseload; please try again in a minute."
)
_CSS = (_HERE / "static" / "ui.css").read_bytes()
CSS_VERSION = hashlib.sha256(_CSS).hexdigest()[:12]

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals["css_version"] = CSS_VERSION
templates.globals["id_rule"] = ID_RULE


class UiRoute(APIRoute):
    """Adds SECURITY_HEADERS to every response of the route, error pages and framework
    errors included (a header the response already set is kept), and answers what the
    dependencies of service.api.deps raise: no open session (a redirect to sign-in), a
    form without its CSRF token (403), the database away or no model to serve (503)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except SignIn as sign_in:
                return _to_login(request, ended=sign_in.ended)
            except CsrfRefused:
                return _error(403)
            except StorageUnavailable:
                return _unavailable()
            except ModelUnavailable:
                return _unavailable(NO_MODEL)

        return answered

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await super().handle(scope, receive, secured)


router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


# --- plumbing -------------------------------------------------------------------------------


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("viewer", None)
    context.setdefault("nav", None)
    html = templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        expires=max_age,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def _clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict"
    )


def _to_login(request: Request, ended: bool = False) -> RedirectResponse:
    """303 to the sign-in page, remembering the page asked for (GET only); `ended` also
    clears the session cookie (expired, tampered with, or its key revoked)."""
    target = "/ui/login"
    if request.method == "GET":
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if _safe_next(wanted) and wanted != "/ui/caseload":  # the default needs no `next`
            target += "?" + urlencode({"next": wanted})
    response = RedirectResponse(target, status_code=303)
    if ended or request.cookies.get(SESSION_COOKIE):
        _clear_cookie(response, request, SESSION_COOKIE)
    return response


def _safe_next(path: str | None) -> str | None:
    if path and len(path) <= 512 and _NEXT_RE.fullmatch(path) and "//" not in path:
        return path
    return None


def _error(status: int, viewer: Clinician | None = None, detail: str | None = None) -> HTMLResponse:
    """The error page of `status`; `detail` says what was wrong, instead of the usual text."""
    return _render("error.html", status, code=status, viewer=viewer, detail=detail)


def _unavailable(detail: str | None = None) -> Response:
    """The database being away, or no model to serve, is a 503 page (the JSON API answers
    503 too), never a traceback; `detail` replaces the page's database text."""
    response = _error(503, detail=detail)
    response.headers["Retry-After"] = "5"
    return response


# --- sign-in and sign-out -------------------------------------------------------------------


def _login_page(
    request: Request, status: int = 200, error: str | None = None, next_path: str | None = None
) -> HTMLResponse:
    """The sign-in form with its double-submit CSRF pair (the nonce cookie is kept if the
    browser has one, so two open sign-in tabs both work)."""
    signer = session_signer(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or len(nonce) > 64:
        nonce = signer.login_nonce()
    response = _render(
        "login.html",
        status,
        error=error,
        login_token=signer.login_token(nonce),
        next=_safe_next(next_path),
    )
    _set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_SECONDS)
    return response


@router.get("", name="ui_root")
async def root() -> Response:
    return RedirectResponse("/ui/caseload", status_code=303)


@router.get("/login", name="ui_login")
async def login_form(request: Request) -> Response:
    if cookie_session(request) is not None:
        target = _safe_next(request.query_params.get("next")) or "/ui/caseload"
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_path=request.query_params.get("next"))


@router.post("/login", name="ui_login_submit")
async def login(request: Request, keys: Keys) -> Response:
    """Verify the access key once; the session cookie then holds the key id, never the key."""
    form = await form_fields(request)
    signer = session_signer(request)
    next_path = form.get("next")
    if not signer.check_login(request.cookies.get(LOGIN_COOKIE), form.get("csrf_token")):
        message = "The sign-in form expired. Please enter your access key again."
        return _login_page(request, 403, message, next_path)
    token = form.get("access_key", "").strip()

    def verified() -> ApiKey | None:
        key = keys.verify(token) if token else None
        # verify() may answer from its cache, which lags a revocation by up to
        # key_cache_seconds; the key is asked for afresh, as every page will
        return None if key is None else keys.active(key.key_id)

    try:
        key = await run_in_threadpool(verified)
    except StorageUnavailable:
        return _login_unavailable(request, next_path)
    if key is None:
        message = "This access key was not accepted. Check it and try again."
        return _login_page(request, 401, message, next_path)
    if UI_SCOPE not in key.scopes:
        message = (
            "This access key does not give access to client records. Ask your "
            "administrator for a key with the clients:read scope."
        )
        return _login_page(request, 403, message, next_path)
    value, session = signer.issue(key)
    expires_at = datetime.fromtimestamp(session.expires, UTC)
    try:
        await run_in_threadpool(keys.open_session, session.session_id, key.key_id, expires_at)
    except StorageUnavailable:
        return _login_unavailable(request, next_path)
    signed_in = RedirectResponse(_safe_next(next_path) or "/ui/caseload", status_code=303)
    _set_cookie(signed_in, request, SESSION_COOKIE, value, SESSION_SECONDS)
    _clear_cookie(signed_in, request, LOGIN_COOKIE)
    return signed_in


def _login_unavailable(request: Request, next_path: str | None) -> Response:
    message = "The service cannot reach its database. Please try again in a minute."
    response = _login_page(request, 503, message, next_path)
    response.headers["Retry-After"] = "5"
    return response


@router.post("/logout", name="ui_logout")
async def logout(request: Request, keys: Keys) -> Response:
    """End the session in the database (a copy of the cookie opens nothing afterwards) and
    clear the cookie. A CSRF-protected form: another site cannot sign a clinician out."""
    session = cookie_session(request)
    if session is None:
        return _to_login(request)  # clearing here would let any site sign a clinician out
    form = await form_fields(request)
    if not session_signer(request).check_csrf(session, form.get("csrf_token")):
        return _error(403)

    def work() -> Response:
        keys.end_session(session.session_id)
        response = RedirectResponse("/ui/login", status_code=303)
        _clear_cookie(response, request, SESSION_COOKIE)
        return response

    return await run_in_threadpool(work)  # off the event loop


@router.get("/static/ui.css", name="ui_css")
async def stylesheet() -> Response:
    """The one stylesheet (no inline styles: the CSP allows styles from 'self' only)."""
    headers = {"Cache-Control": "public, max-age=86400"}
    return Response(_CSS, media_type="text/css", headers=headers)


# --- the caseload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    min_level: str | None
    therapist: str | None
    acknowledged: bool | None
    limit: int
    page: int

    def query(self, page: int) -> str:
        """The query string of another page with the same filters."""
        params: dict[str, str] = {
            "min_level": self.min_level or "",
            "therapist": self.therapist or "",
            "acknowledged": {None: "", True: "yes", False: "no"}[self.acknowledged],
        }
        if self.limit != PAGE_SIZE:
            params["limit"] = str(self.limit)
        params["page"] = str(page)
        return urlencode(params)


class _BadQuery(Exception):
    """A query parameter of a page breaks its rule: an error page with this status."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _int(params: Any, name: str, default: int, rule: TypeAdapter[int]) -> int:
    """An integer query parameter, by the API's rule for it (service.core.schemas), or 422."""
    text = params.get(name)
    if text is None:
        return default
    try:
        return rule.validate_python(text)
    except ValidationError as exc:
        raise _BadQuery(422, f"{name}: {exc.errors()[0]['msg']}") from None


def _filters(params: Any, key: ApiKey) -> Filters:
    """The caseload's filters from the query string; _BadQuery (400) if the therapist id is
    invalid, (422) if limit or page is not a plain number in its range.

    An empty `therapist` shows the whole clinic to a clinic-wide key; a therapist's key
    always shows that therapist's clients, and naming another therapist raises
    OtherTherapist (service.security.access, as in the JSON API). Unknown levels fall back to all
    levels; a page beyond the API's offset cap is read as the last page within it.
    """
    level = params.get("min_level") or None
    if level not in repo.LEVELS:
        level = None
    asked = params.get("therapist", "").strip() or None
    if asked is not None and not is_id(asked):
        raise _BadQuery(400)
    therapist = access.caseload_therapist(key, asked)
    acknowledged = {"yes": True, "no": False}.get(params.get("acknowledged", ""))
    limit = _int(params, "limit", PAGE_SIZE, _LIMIT)
    page = min(_int(params, "page", 1, _PAGE), MAX_OFFSET // limit + 1)
    return Filters(level, therapist, acknowledged, limit, page)


@dataclass(frozen=True)
class CaseloadItem:
    client_id: str
    therapist_id: str | None
    level: str
    level_label: str
    probability: str
    landmark: int
    sparkline: views.Sparkline | None
    main_factor: str | None
    acknowledged: bool
    last_session: str | None


def early_sessions(
    s: Session, clinic: str, client_ids: Sequence[str]
) -> dict[str, list[views.Scores]]:
    """Each listed client's early sessions (for the sparklines), by client id: one query."""
    found = sessions_of_clients(s, clinic, client_ids, views.EARLY_SESSIONS)
    return {client_id: [views.session_scores(r) for r in rows] for client_id, rows in found.items()}


def _caseload_item(row: repo.CaseloadRow, scores: list[views.Scores]) -> CaseloadItem:
    return CaseloadItem(
        client_id=row.client_id,
        therapist_id=row.therapist_id,
        level=row.risk_level,
        level_label=views.level_label(row.risk_level),
        probability=views.percent(row.probability),
        landmark=row.landmark,
        sparkline=views.sparkline(scores),
        main_factor=row.main_factor_label,
        acknowledged=row.acknowledged,
        last_session=None if row.last_session_date is None else row.last_session_date.isoformat(),
    )


@router.get("/caseload", name="ui_caseload")
async def caseload(
    request: Request, viewer: Viewer, db: Db, audit: Audit, models: Models
) -> Response:
    """The clinic's clients with a risk, highest first; each client shown is audited. While
    stored risks are recomputed after a change of model, the page says the list is mixed."""

    def work() -> Response:
        try:
            filters = _filters(request.query_params, viewer.key)
        except access.OtherTherapist:
            return _error(403, viewer)
        except _BadQuery as bad:
            return _error(bad.status, viewer, bad.message)
        offset = (filters.page - 1) * filters.limit
        with db.session() as s:
            listed = repo.caseload(
                s,
                viewer.clinic,
                filters.therapist,
                filters.min_level,
                filters.acknowledged,
                filters.limit,
                offset,
            )
            rows, total = listed.rows, listed.total
            sessions = early_sessions(s, viewer.clinic, [r.client_id for r in rows])
            for row in rows:  # each client shown is a read of that client's data
                audit(s, viewer.actor, "caseload.read", row.client_id, row.model_version)
        items = [_caseload_item(r, sessions.get(r.client_id, [])) for r in rows]
        pages = max(1, -(-total // filters.limit))
        return _render(
            "caseload.html",
            viewer=viewer,
            nav="caseload",
            items=items,
            total=total,
            first=offset + 1 if items else 0,
            last=offset + len(items),
            filters=filters,
            page=filters.page,
            pages=pages,
            previous=filters.query(filters.page - 1) if filters.page > 1 else None,
            next=filters.query(filters.page + 1) if filters.page < pages else None,
            early=views.EARLY_SESSIONS,
            recomputing=recomputing_note(listed.versions, serving),
        )

    serving = models.serving_version(viewer.clinic)
    return await run_in_threadpool(work)  # off the event loop


# --- one client -----------------------------------------------------------------------------


@router.get("/clients/{client_id}", name="ui_client")
async def client_page(client_id: str, viewer: Viewer, db: Db, audit: Audit) -> Response:
    """A client's scores by session, latest risk with its factors and actions, risk by
    landmark, and the acknowledge button; one audit row."""

    def work() -> Response:
        if not is_id(client_id):
            return _error(404, viewer)
        with db.session() as s:
            client = access.client_of(s, viewer.key, client_id)
            if client is None:
                return _error(404, viewer)
            records = repo.get_sessions(s, viewer.clinic, client_id)
            history = repo.prediction_history(s, viewer.clinic, client_id)
            latest = history[0] if history else None
            version = None if latest is None else latest.model_version
            audit(s, viewer.actor, "risk.read", client_id, version)
        scores = [views.session_scores(r) for r in records]
        body = latest.body if latest is not None else None
        return _render(
            "client.html",
            viewer=viewer,
            client=client,
            latest=latest,
            body=body,
            standing=standing_note(body) if body is not None else None,
            level_label=views.level_label(latest.risk_level) if latest else None,
            probability=views.percent(latest.probability) if latest else None,
            computed=views.when(latest.computed_at) if latest else None,
            scores=scores,
            charts=views.charts(scores),
            landmarks=views.risk_by_landmark(history),
            history_count=len(history),
            fmt=views,
        )

    return await run_in_threadpool(work)  # off the event loop


@router.post("/clients/{client_id}/acknowledge", name="ui_acknowledge")
async def acknowledge(client_id: str, viewer: FormViewer, db: Db, audit: Audit) -> Response:
    """The clinician has seen the flag: quiet until a new session changes the level. The
    CSRF token is checked before the session (FormViewer)."""

    def work() -> Response:
        if not is_id(client_id):
            return _error(404, viewer)
        with db.session() as s:
            if access.client_of(s, viewer.key, client_id) is None:
                return _error(404, viewer)
            ack = repo.acknowledge(s, viewer.clinic, client_id, viewer.actor.name)
            if ack is None:
                return _error(409, viewer)
            audit(s, viewer.actor, "flag.acknowledge", client_id)
        return RedirectResponse(f"/ui/clients/{client_id}", status_code=303)

    return await run_in_threadpool(work)  # off the event loop


# --- monitoring -----------------------------------------------------------------------------


@router.get("/monitoring", name="ui_monitoring")
async def monitoring_page(
    request: Request, viewer: Viewer, db: Db, models: Models, reports: Reports
) -> Response:
    """The clinic's monitoring report over `window` (default 90d), the report of
    GET /v1/monitoring (the same clinic_report, from the same ReportCache), with its plots
    and the last comparison of the clinic's challenger. For keys with a monitoring scope
    (MONITORING_SCOPES); other signed-in viewers get the 403 page."""
    if not viewer.monitors:
        scopes = " or ".join(MONITORING_SCOPES)
        detail = f"This page needs an access key with the {scopes} scope."
        return _error(403, viewer, detail)
    text = request.query_params.get("window", "90d")
    try:
        days = parse_window(text)
    except InvalidWindow as bad:
        return _error(400, viewer, str(bad))
    model = models.for_clinic(viewer.clinic)

    def work() -> Response:
        with db.snapshot() as s:
            report = clinic_report(s, viewer.clinic, model, days, cache=reports)
        try:
            record = models.registry.index().last_comparison(viewer.clinic)
            unreadable = None
        except RegistryInvalid as exc:  # the served model stays; only the record is missing
            record, unreadable = None, str(exc)
        profile = model.meta.reference_profile
        overall = f"status-{str(report.status).replace(' ', '-')}"
        return _render(
            "monitoring.html",
            viewer=viewer,
            nav="monitoring",
            report=report,
            days=days,
            window=f"{days}d",
            window_rule=WINDOW_RULE,
            period_days=period_days(days),
            overall_css=overall,
            counts=monitoring_views.status_counts(report),
            rows=monitoring_views.figure_rows(report),
            plots=monitoring_views.plots(report, profile),
            comparison=monitoring_views.last_comparison(record),
            registry_error=unreadable,
        )

    return await run_in_threadpool(work)  # off the event loop


_STYLE = re.compile(rb"<style>(.*?)</style>", re.S)


def _page_csp(page: bytes) -> str:
    """The view's CSP, its style-src also allowing the page's own inline <style> blocks by
    their sha256 (a comparison page is one self-contained file: no script, no fetch)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'"
        for block in _STYLE.findall(page)
    )
    return CSP.replace("style-src 'self'", f"style-src 'self' {hashes}") if hashes else CSP


@router.get("/monitoring/comparison", name="ui_monitoring_comparison")
async def monitoring_comparison(viewer: Viewer, models: Models) -> Response:
    """The page of the clinic's last comparison (the copy `compare` / `retrain --clinic`
    kept in the registry, checked against its recorded sha256), for the keys that may see
    the monitoring page; 404 when the clinic has none, 409 when the kept file does not
    match its record (never served then)."""
    if not viewer.monitors:
        scopes = " or ".join(MONITORING_SCOPES)
        return _error(403, viewer, f"This page needs an access key with the {scopes} scope.")

    def work() -> Response:
        try:
            record = models.registry.index().last_comparison(viewer.clinic)
            page = None if record is None else comparison_page(models.registry, record)
        except (RegistryInvalid, ArtifactError) as exc:
            return _error(409, viewer, str(exc))
        if page is None:
            detail = (
                "No comparison page is kept for this clinic: run dropout-risk retrain --clinic "
            )
            return _error(404, viewer, detail + viewer.clinic)
        response = HTMLResponse(page)
        response.headers["content-security-policy"] = _page_csp(page)
        return response

    return await run_in_threadpool(work)
