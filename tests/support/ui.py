"""The clinician view for tests: an app with its pages, a signed-in browser (`Ui`), the
stored clients every page test starts from, and helpers that read pages."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.routing import NoMatchFound

import service.ui.routes
from service.core.observability import Pseudonymizer
from service.security.session_cookies import (
    SESSION_COOKIE,
)
from service.storage import repository as repo
from service.storage.engine import normalise_url
from tests.support.helpers import db_session

A, B = "clinic-a", "clinic-b"
PERSON = {"age": 30, "gender": "female"}
CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def scores(wai: float, srs: float, day: str, **more: Any) -> dict[str, Any]:
    """A session body: the three WAI-SR subscales at `wai`, the SRS total, a date."""
    wais = {"goal": wai, "task": wai, "bond": wai}
    return {"date": day, "wai": wais, "srs": {"total": srs}, **more}


# With the shipped model and a 30-year-old woman (levels asserted where they are stored):
# "hi" is high after two sessions of weak alliance, "mod" moderate, "lo" low.
CLIENTS: dict[str, tuple[str, str, list[dict[str, Any]]]] = {
    "hi": (
        "T-1",
        "high",
        [
            scores(2, 10, "2026-03-02", ors={"total": 14.5}, phq9={"total": 18}),
            {
                "date": "2026-03-09",
                "wai": {"items": [2, 2, 3, 2, 2, 2, 3, 2, 2, 2, 2, 2]},
                "srs": {"relationship": 3, "goals": 3, "approach": 3, "overall": 3},
                "ors": {"total": 16},
                "phq9": {"total": 19},
            },
        ],
    ),
    "mod": ("T-2", "moderate", [scores(4, 36, "2026-03-03")]),
    "lo": ("T-1", "low", [scores(5, 40, "2026-03-04")]),
}


def include_ui(app: FastAPI) -> FastAPI:
    """Register the clinician view unless the app already does (service/app.py will).

    FastAPI keeps an included router as one entry of app.routes, so its paths are looked
    up by route name, which works whether or not the router is included already."""
    try:
        app.url_path_for("ui_login")
    except NoMatchFound:
        app.include_router(service.ui.routes.router)
    return app


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


def set_cookies(response: httpx.Response, name: str) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="caseload-row[^"]*" data-client-id="([^"]+)"', html)


def row_of(html: str, client_id: str) -> str:
    found = re.search(
        rf'<tr class="caseload-row[^"]*" data-client-id="{client_id}".*?</tr>', html, re.S
    )
    assert found is not None, f"no caseload row for {client_id}"
    return found.group(0)


@dataclass
class Ui:
    http: TestClient
    url: str
    tokens: dict[str, str]
    risks: dict[str, dict[str, Any]]
    pseudonym: Pseudonymizer
    secret_file: Path

    def key_id(self, who: str) -> str:
        return self.tokens[who].split("_")[1]

    def login(self, who: str, next_path: str | None = None) -> httpx.Response:
        """Sign in through the form (its CSRF pair included); returns the POST's answer."""
        form = self.http.get("/ui/login")
        assert form.status_code == 200, form.text
        data = {"access_key": self.tokens[who], "csrf_token": csrf(form.text)}
        if next_path is not None:
            data["next"] = next_path
        return self.http.post("/ui/login", data=data, follow_redirects=False)

    def signed_in(self, who: str) -> None:
        response = self.login(who)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/ui/caseload"

    def page(self, path: str, status: int = 200) -> str:
        response = self.http.get(path, follow_redirects=False)
        assert response.status_code == status, response.text
        return response.text

    def api(self, method: str, path: str, who: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        response = self.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def session_value(self) -> str:
        value = self.http.cookies.get(SESSION_COOKIE, domain="testserver.local", path="/ui")
        assert value, "no session cookie in the jar"
        return value

    def db(self) -> AbstractContextManager[Session]:
        return db_session(normalise_url(self.url))

    def audit(self, since: datetime, clinic: str = A) -> list[repo.AuditRecord]:
        with self.db() as s:
            return repo.list_audit(s, clinic, since)
