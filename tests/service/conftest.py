"""Fixtures shared by the service tests: `ui`, the clinician view with stored clients (its
pages: tests/service/ui/, its behaviour with the database away: tests/service/storage/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.core.observability import Pseudonymizer
from service.core.settings import Settings
from tests.support.helpers import REPO, create_key
from tests.support.ui import CLIENTS, PERSON, A, B, Ui, include_ui


@pytest.fixture
def ui(database_url: str, tmp_path: Path) -> Iterator[Ui]:
    """The app on the shipped model with the clinician view; clinic A holds a high, a
    moderate and a low risk client, clinic B one high risk client."""
    tokens = {
        "writer": create_key(database_url, A, ["clients:read", "clients:write"]),
        "a": create_key(database_url, A, ["clients:read"]),
        "t1": create_key(database_url, A, ["clients:read"], "T-1"),
        "predict": create_key(database_url, A, ["predict"]),
        "b": create_key(database_url, B, ["clients:read", "clients:write"]),
    }
    settings = Settings(
        models_dir=REPO / "models",
        database_url=database_url,
        pseudonym_key_file=tmp_path / "p.key",
        ui_secret_file=tmp_path / "ui-session.key",
    )
    # the cookie jar files a dotless host's cookies under '<host>.local': name it so
    with TestClient(include_ui(create_app(settings)), base_url="http://testserver.local") as http:
        app = Ui(
            http,
            database_url,
            tokens,
            {},
            Pseudonymizer(tmp_path / "p.key"),
            tmp_path / "ui-session.key",
        )
        for client_id, (therapist, level, sessions) in CLIENTS.items():
            app.api(
                "PUT", f"/v1/clients/{client_id}", "writer", {**PERSON, "therapist_id": therapist}
            )
            for number, body in enumerate(sessions, start=1):
                risk = app.api("PUT", f"/v1/clients/{client_id}/sessions/{number}", "writer", body)[
                    "risk"
                ]
            assert risk["risk_level"] == level, (client_id, risk["probability"])
            app.risks[client_id] = risk
        app.api("PUT", "/v1/clients/b-secret", "b", {**PERSON, "therapist_id": "T-1"})
        other = app.api("PUT", "/v1/clients/b-secret/sessions/1", "b", CLIENTS["hi"][2][0])
        assert other["risk"]["risk_level"] == "high"
        yield app
