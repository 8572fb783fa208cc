"""The stored-client API end to end, on SQLite and PostgreSQL: clients, sessions and outcomes
written by an EHR, the stored risk (the same as a posted episode's), history, caseload,
acknowledgements, scopes, clinic isolation, and the audit trail and export they leave."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from service.app import create_app
from service.core.observability import Pseudonymizer
from service.core.schemas import EpisodeIn
from service.core.settings import Settings
from service.scoring.records import fingerprint
from service.storage import repository as repo
from service.storage.engine import normalise_url
from service.storage.tables import PredictionRow
from tests.support.helpers import REPO, create_key, db_session
from training.cli import run
from training.registry import Registry, sha256_of
from training.vocabulary import ID_RULE, latest_date, outside_date_window

A, B = "clinic-a", "clinic-b"
MODEL = Registry(REPO / "models").read()["champion"]


def scores(wai: float, srs: float, day: str | None = None) -> dict[str, Any]:
    """A session body: the three WAI-SR subscales at `wai`, and the SRS total."""
    body: dict[str, Any] = {"wai": {"goal": wai, "task": wai, "bond": wai}, "srs": {"total": srs}}
    if day is not None:
        body["date"] = day
    return body


# With the shipped model and a 30-year-old woman, one session at these scores gives (checked
# in each test that relies on it): 0.7266 high, 0.5791 high, 0.2984 moderate, 0.1396 low.
HIGH, HIGHER, MODERATE, LOW = scores(2, 10), scores(3, 25), scores(4, 36), scores(5, 40)
PERSON = {"age": 30, "gender": "female"}


@dataclass
class Api:
    http: TestClient
    url: str
    tokens: dict[str, str]
    pseudonym: Pseudonymizer

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    def key_id(self, who: str) -> str:
        return self.tokens[who].split("_")[1]

    def put(self, path: str, body: Any, who: str | None = "a") -> Any:
        return self.http.put(path, json=body, headers=self.auth(who))

    def get(self, path: str, who: str | None = "a", **params: Any) -> Any:
        return self.http.get(path, params=params or None, headers=self.auth(who))

    def post(self, path: str, body: Any = None, who: str | None = "a") -> Any:
        return self.http.post(path, json=body, headers=self.auth(who))

    def client(self, client_id: str, who: str = "a", **fields: Any) -> None:
        response = self.put(f"/v1/clients/{client_id}", {**PERSON, **fields}, who)
        assert response.status_code == 200, response.text

    def session(self, client_id: str, number: int, body: Any, who: str = "a") -> Any:
        response = self.put(f"/v1/clients/{client_id}/sessions/{number}", body, who)
        assert response.status_code == 200, response.text
        return response.json()

    def risk(self, client_id: str, who: str = "a") -> Any:
        response = self.get(f"/v1/clients/{client_id}/risk", who)
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, client_id: str, who: str = "a") -> list[Any]:
        response = self.get(f"/v1/clients/{client_id}/risk/history", who)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["client_id"] == client_id
        history: list[Any] = body["history"]
        return history

    def caseload(self, who: str = "a", **params: Any) -> Any:
        response = self.get("/v1/caseload", who, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def ids(self, **params: Any) -> list[str]:
        return [c["client_id"] for c in self.caseload(**params)["clients"]]

    def predict(self, body: dict[str, Any]) -> Any:
        response = self.post("/v1/predictions", body)
        assert response.status_code == 200, response.text
        return response.json()

    def db(self) -> AbstractContextManager[Session]:
        return db_session(normalise_url(self.url))


@contextmanager
def serve(database_url: str, tmp_path: Path, models: Path, **settings: Any) -> Iterator[Api]:
    tokens = {
        "a": create_key(database_url, A, ["clients:read", "clients:write", "predict"]),
        "a_read": create_key(database_url, A, ["clients:read"]),
        "predict": create_key(database_url, A, ["predict"]),
        "b": create_key(database_url, B, ["clients:read", "clients:write"]),
        "t1": create_key(database_url, A, ["clients:read"], "T-1"),
        "t1_write": create_key(database_url, A, ["clients:read", "clients:write"], "T-1"),
    }
    key_file = tmp_path / "pseudonym.key"
    config = Settings(
        models_dir=models,
        database_url=database_url,
        pseudonym_key_file=key_file,
        reload_seconds=0.0,
        **settings,
    )
    with TestClient(create_app(config)) as http:
        yield Api(http, database_url, tokens, Pseudonymizer(key_file))


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app on the shipped model; keys of clinic A (all client scopes and predict, read
    only, predict only) and of clinic B (client scopes)."""
    with serve(database_url, tmp_path, REPO / "models") as app:
        yield app


@pytest.fixture(scope="module")
def late_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with landmarks 2 and 3 only: a first session has no risk yet."""
    folder = tmp_path_factory.mktemp("late-models")
    shutil.copytree(REPO / "models", folder, dirs_exist_ok=True)
    meta_path = folder / MODEL / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["landmarks"] = [2, 3]
    meta_path.write_text(json.dumps(meta, indent=2))
    registry = json.loads((folder / "registry.json").read_text())
    registry["versions"][0]["metadata_sha256"] = sha256_of(meta_path)
    (folder / "registry.json").write_text(json.dumps(registry, indent=2))
    return folder


def episode(client_id: str, sessions: dict[int, dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """The POST /v1/predictions body of a stored client."""
    numbered = [{**body, "number": n} for n, body in sorted(sessions.items())]
    return {"client_id": client_id, **fields, "sessions": numbered}


def locs(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [d["loc"] for d in response.json()["detail"]]


# --- clients and sessions -------------------------------------------------------------------


def test_put_client_reports_created_updated_unchanged(api: Api) -> None:
    path = "/v1/clients/c-1"
    body = {"age": 30, "gender": "female", "therapist_id": "T-1"}
    assert api.put(path, body).json() == {"client_id": "c-1", "status": "created"}
    assert api.put(path, body).json() == {"client_id": "c-1", "status": "unchanged"}
    assert api.put(path, {**body, "age": 31}).json()["status"] == "updated"
    assert api.put(path, {**body, "age": 31}).json()["status"] == "unchanged"
    with api.db() as s:
        stored = repo.get_client(s, A, "c-1")
    assert stored is not None
    assert (stored.age, stored.gender, stored.therapist_id) == (31, "female", "T-1")
    assert api.put(path, {}).json()["status"] == "updated"  # every field cleared
    with api.db() as s:
        stored = repo.get_client(s, A, "c-1")
    assert stored is not None
    assert (stored.age, stored.gender, stored.therapist_id) == (None, None, None)


def test_put_session_is_idempotent_and_reports_changes(api: Api) -> None:
    api.client("c-1")
    first = api.session("c-1", 1, HIGHER)
    # the shipped model's first landmark is session 1: the first session already has a risk
    assert first["status"] == "created"
    assert (first["client_id"], first["number"]) == ("c-1", 1)
    assert first["risk"]["landmark_session"] == 1
    assert (first["risk"]["probability"], first["risk"]["risk_level"]) == (0.5791, "high")

    again = api.session("c-1", 1, HIGHER)
    assert again["status"] == "unchanged"
    assert again["risk"] == first["risk"]
    with api.db() as s:
        rows = repo.get_sessions(s, A, "c-1")
    assert [(r.number, r.payload) for r in rows] == [(1, HIGHER)]
    assert len(api.history("c-1")) == 1  # the same inputs are not stored as a new risk

    changed = api.session("c-1", 1, LOW)
    assert changed["status"] == "updated"
    assert (changed["risk"]["probability"], changed["risk"]["risk_level"]) == (0.1396, "low")
    with api.db() as s:
        rows = repo.get_sessions(s, A, "c-1")
    assert [(r.number, r.payload) for r in rows] == [(1, LOW)]
    history = api.history("c-1")
    assert [h["prediction"]["probability"] for h in history] == [0.1396, 0.5791]

    dated = api.session("c-1", 1, {**LOW, "date": "2026-03-02"})  # only the date changes
    assert dated["status"] == "updated"
    with api.db() as s:
        rows = repo.get_sessions(s, A, "c-1")
    assert [(r.number, r.session_date) for r in rows] == [(1, date(2026, 3, 2))]
    assert rows[0].payload == {**LOW, "date": "2026-03-02"}


def test_stored_risk_equals_the_posted_episode(api: Api) -> None:
    """Sessions in every accepted form, pushed out of order: the stored risk is the very
    answer POST /v1/predictions gives for the same episode."""
    person = {"age": 44, "gender": "male", "therapist_id": "T-9"}
    sessions: dict[int, dict[str, Any]] = {
        1: {
            "date": "2026-03-02",
            "wai": {"goal": 3.25, "task": 3.5, "bond": 4.0},
            "srs": {"total": 35.5},
            "ors": {"total": 18.2},
            "phq9": {"total": 14},
        },
        2: {
            "date": "2026-03-16",
            "wai": {"items": [4, 3, 4, 3, 4, 4, 3, 4, 5, 3, 4, 3]},
            "srs": {"relationship": 9.1, "goals": 8.7, "approach": 8.9, "overall": 9.0},
        },
        3: {
            "date": "2026-04-20",
            "wai": {"goal": 2.5},
            "srs": {"total": 28.0},
            "phq9": {"total": 9},
        },
    }
    api.client("c-7", **person)
    answers = {}
    for number in (2, 3, 1):
        answers[number] = api.session("c-7", number, sessions[number])["risk"]

    posted = api.predict(episode("c-7", sessions, **person))
    assert posted["landmark_session"] == 3
    stored = api.risk("c-7")
    assert stored["prediction"] == posted  # every field: probability, level, factors, actions
    assert answers[1] == posted  # the last PUT answered the risk it stored
    assert stored["acknowledged"] is False
    expected = EpisodeIn.model_validate(episode("c-7", sessions, **person))
    assert stored["inputs_sha256"] == fingerprint(expected)
    # the earlier answers were the risks of the sessions stored so far
    assert answers[2] == api.predict(episode("c-7", {2: sessions[2]}, **person))
    assert answers[3] == api.predict(episode("c-7", {2: sessions[2], 3: sessions[3]}, **person))

    # a change of demographics (model inputs) recomputes the stored risk
    assert api.put("/v1/clients/c-7", {**person, "age": 19}).json()["status"] == "updated"
    younger = api.predict(episode("c-7", sessions, **{**person, "age": 19}))
    assert younger["probability"] != posted["probability"]
    assert api.risk("c-7")["prediction"] == younger


def test_a_stored_session_without_measures_counts_for_the_landmark(api: Api) -> None:
    """PUT of an attended session with a date and no measures (once a 422): stored, and the
    risk moves to landmark 2, the very answer POST /v1/predictions gives."""
    api.client("c-8", **PERSON)
    first = api.session("c-8", 1, scores(3, 30, "2026-03-02"))["risk"]
    assert first["landmark_session"] == 1
    second = api.session("c-8", 2, {"date": "2026-03-23"})["risk"]
    sessions = {1: scores(3, 30, "2026-03-02"), 2: {"date": "2026-03-23"}}
    assert second == api.predict(episode("c-8", sessions, **PERSON))
    assert second["landmark_session"] == 2
    assert second["probability"] != first["probability"]  # the 21-day gap counts
    assert api.session("c-8", 3, {})["risk"]["landmark_session"] == 3  # no date either


def test_stored_risk_follows_the_max_landmark_setting(database_url: str, tmp_path: Path) -> None:
    """With DROPOUT_RISK_MAX_LANDMARK=2 a posted episode is scored at session 2 at most;
    its stored twin must be too."""
    with serve(database_url, tmp_path, REPO / "models", max_landmark=2) as api:
        api.client("c-1")
        sessions = {1: HIGHER, 2: MODERATE, 3: LOW}
        for number, body in sessions.items():
            answer = api.session("c-1", number, body)
        posted = api.predict(episode("c-1", sessions, **PERSON))
        assert posted["landmark_session"] == 2
        assert answer["risk"] == posted
        assert api.risk("c-1")["prediction"] == posted


def test_no_risk_before_the_first_landmark(
    database_url: str, tmp_path: Path, late_models: Path
) -> None:
    with serve(database_url, tmp_path, late_models) as api:
        api.client("c-1")
        first = api.session("c-1", 1, HIGHER)
        assert first["status"] == "created"
        assert first["risk"] is None
        for path in ("/v1/clients/c-1/risk", "/v1/clients/c-1/flag/acknowledge"):
            response = api.http.request(
                "POST" if path.endswith("acknowledge") else "GET", path, headers=api.auth("a")
            )
            assert response.status_code == 404
            assert response.json()["detail"][0]["type"] == "no_risk_yet"
        assert api.history("c-1") == []
        assert api.caseload()["total"] == 0
        assert api.post("/v1/predictions", episode("c-1", {1: HIGHER}, **PERSON)).status_code == 422

        second = api.session("c-1", 2, HIGHER)
        assert second["risk"] is not None
        assert second["risk"]["landmark_session"] == 2
        assert second["risk"] == api.predict(episode("c-1", {1: HIGHER, 2: HIGHER}, **PERSON))
        assert api.risk("c-1")["prediction"] == second["risk"]
        assert api.ids() == ["c-1"]


def test_history_is_newest_first_and_grows_with_each_new_risk(api: Api) -> None:
    api.client("c-1")
    answers = [api.session("c-1", n, body)["risk"] for n, body in enumerate((LOW, LOW), 1)]
    assert [a["landmark_session"] for a in answers] == [1, 2]
    history = api.history("c-1")
    assert [h["prediction"] for h in history] == answers[::-1]
    assert api.risk("c-1") == history[0]

    answers.append(api.session("c-1", 3, HIGH)["risk"])  # a new session: a new risk on top
    assert (answers[2]["landmark_session"], answers[2]["risk_level"]) == (3, "high")
    history = api.history("c-1")
    assert [h["prediction"] for h in history] == answers[::-1]
    stamps = [datetime.fromisoformat(h["computed_at"]) for h in history]
    assert stamps == sorted(stamps, reverse=True)
    assert len({h["inputs_sha256"] for h in history}) == 3
    assert api.risk("c-1") == history[0]

    limited = api.get("/v1/clients/c-1/risk/history", limit=2).json()["history"]
    assert [h["prediction"] for h in limited] == answers[:0:-1]

    # session 4 is past the last landmark: same features, but new inputs, so a new entry
    api.session("c-1", 4, LOW)
    history = api.history("c-1")
    assert len(history) == 4
    assert history[0]["prediction"] == answers[2]
    assert history[0]["inputs_sha256"] != history[1]["inputs_sha256"]
    assert [h["prediction"] for h in history[1:]] == answers[::-1]


def test_a_stored_risk_the_code_cannot_read_is_a_500_logged_without_its_data(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored body that no longer parses (damaged in the database, or written by code
    this one cannot read) is not the caller's fault: a 500 with the one error body, and
    one log line naming the exception's type, the route template and where it was
    raised, never the exception's text, which here quotes the stored values."""
    api.client("c-secret-7")
    api.session("c-secret-7", 1, LOW)
    with api.db() as s:
        s.execute(
            update(PredictionRow)
            .where(PredictionRow.client_id == "c-secret-7")
            .values(body={"probability": "0.8123-of-c-secret-7"})
        )
    with caplog.at_level(logging.INFO):
        response = api.get("/v1/clients/c-secret-7/risk")
    assert response.status_code == 500
    assert response.json() == {
        "detail": [
            {
                "loc": "server",
                "msg": "an unexpected error; it was logged (without the request's data)",
                "type": "internal_error",
            }
        ]
    }
    (line,) = [r for r in caplog.records if r.getMessage().startswith("unexpected")]
    assert line.name == "dropout_risk.errors"
    assert line.getMessage().startswith(
        "unexpected ValidationError in GET /v1/clients/{client_id}/risk\n  at "
    )
    assert "in _prediction" in line.getMessage()  # where: the repository's reader
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx2")  # not the test's
    assert "0.8123" not in ours
    assert "c-secret-7" not in ours
    assert "site-packages" in line.getMessage().splitlines()[-1]  # the innermost: pydantic's
    assert all(
        "/service/" in at or "/training/" in at for at in line.getMessage().splitlines()[1:-1]
    )


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(api: Api) -> None:
    api.client("c-1")
    api.session("c-1", 1, HIGHER)
    before = (api.history("c-1"), api.caseload())

    cases: list[tuple[str, Any, str]] = [
        ("/v1/clients/c-1/sessions/2", {"wai": {"goal": 6}}, "wai.goal"),
        ("/v1/clients/c-1/sessions/2", {"wai": {"items": [3] * 11}}, "wai.items"),
        ("/v1/clients/c-1/sessions/2", {"srs": {"totl": 30}}, "srs.totl"),
        ("/v1/clients/c-1/sessions/2", {"srs": {"total": "30"}}, "srs.total"),
        ("/v1/clients/c-1/sessions/2", {**LOW, "date": "2026-02-30"}, "date"),
        ("/v1/clients/c-1/sessions/2", {**LOW, "number": 2}, "number"),
        ("/v1/clients/c-1/sessions/0", LOW, "path.number"),
        ("/v1/clients/c-1/sessions/1001", LOW, "path.number"),
        ("/v1/clients/c-1/sessions/two", LOW, "path.number"),
        ("/v1/clients/bad!id/sessions/2", LOW, "path.client_id"),
        (f"/v1/clients/{'c' * 65}/sessions/2", LOW, "path.client_id"),
        ("/v1/clients/c-1/outcome", {"dropout": True, "ended_on": "2026-13-01"}, "ended_on"),
        ("/v1/clients/c-1/outcome", {"dropout": "yes", "ended_on": "2026-05-01"}, "dropout"),
        ("/v1/clients/c-1/outcome", {"dropout": True}, "ended_on"),
        ("/v1/clients/c-1", {"age": 11}, "age"),
        ("/v1/clients/c-1", {"age": "30"}, "age"),
        ("/v1/clients/c-1", {"therapist_id": "T 1"}, "therapist_id"),
        ("/v1/clients/c-1", {"sex": "female"}, "sex"),
        ("/v1/clients/c-1", {"gender": "g" * 65}, "gender"),
        ("/v1/clients/c-9", {"gender": "fe\u0000male"}, "gender"),  # a 503 from PostgreSQL before
        ("/v1/clients/c-9", {"gender": "\u001b[31m"}, "gender"),
        ("/v1/clients/bad!id", PERSON, "path.client_id"),
    ]
    for path, body, loc in cases:
        assert loc in locs(api.put(path, body)), (path, body)

    missing = api.put("/v1/clients/ghost/sessions/1", LOW)
    assert missing.status_code == 404
    [detail] = missing.json()["detail"]
    assert (detail["loc"], detail["type"]) == ("path.client_id", "client_not_found")
    assert "'ghost'" in detail["msg"]
    ghost_outcome = api.put(
        "/v1/clients/ghost/outcome", {"dropout": True, "ended_on": "2026-05-01"}
    )
    assert ghost_outcome.status_code == 404
    assert ghost_outcome.json()["detail"][0]["type"] == "client_not_found"
    for path in ("/v1/clients/ghost/risk", "/v1/clients/ghost/risk/history"):
        assert api.get(path).status_code == 404
    assert api.post("/v1/clients/ghost/flag/acknowledge").status_code == 404

    assert (api.history("c-1"), api.caseload()) == before
    with api.db() as s:
        assert [r.number for r in repo.get_sessions(s, A, "c-1")] == [1]
        assert repo.get_client(s, A, "ghost") is None
        assert repo.get_client(s, A, "c-9") is None
        stored = repo.get_client(s, A, "c-1")
        sessions, clients = repo.export_tables(s, A)
    assert stored is not None
    assert (stored.age, stored.gender) == (30, "female")
    assert [c["dropout"] for c in clients] == [None]  # no outcome was recorded
    assert len(sessions) == 1


# Two days past the last plausible date (today + 1): still refused if the run crosses midnight
TOO_LATE = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()


def test_implausible_dates_and_ids_of_dots_are_422_and_write_nothing(api: Api) -> None:
    """The rules of training/vocabulary.py, at the stored-client doors."""
    api.client("c-1")
    api.session("c-1", 1, HIGHER)
    before = (api.history("c-1"), api.caseload())
    for day in ("0001-01-01", "1989-12-31", "2100-01-01", "9999-12-31", TOO_LATE):
        message = outside_date_window(date.fromisoformat(day))
        session = api.put("/v1/clients/c-1/sessions/2", {**LOW, "date": day})
        assert session.status_code == 422
        assert session.json()["detail"] == [{"loc": "date", "msg": message, "type": "date_window"}]
        outcome = api.put("/v1/clients/c-1/outcome", {"dropout": True, "ended_on": day})
        assert outcome.status_code == 422
        assert outcome.json()["detail"] == [
            {"loc": "ended_on", "msg": message, "type": "date_window"}
        ]
    for dots in ("...", "%2E", "%2E%2E", ".%2E."):
        assert locs(api.put(f"/v1/clients/{dots}", PERSON)) == ["path.client_id"], dots
        assert locs(api.put(f"/v1/clients/{dots}/sessions/1", LOW)) == ["path.client_id"]
        assert locs(api.get(f"/v1/clients/{dots}/risk")) == ["path.client_id"]
    refused = api.put("/v1/clients/c-1", {**PERSON, "therapist_id": ".."})
    assert refused.json()["detail"] == [
        {"loc": "therapist_id", "msg": f"must be {ID_RULE}", "type": "id_format"}
    ]
    assert locs(api.get("/v1/caseload", therapist_id=".")) == ["query.therapist_id"]
    assert (api.history("c-1"), api.caseload()) == before
    with api.db() as s:
        assert [r.number for r in repo.get_sessions(s, A, "c-1")] == [1]
        _, clients = repo.export_tables(s, A)
    assert [c["dropout"] for c in clients] == [None]
    edge = api.put("/v1/clients/c-1/sessions/2", {**LOW, "date": latest_date().isoformat()})
    assert edge.status_code == 200, edge.text
    first = api.put("/v1/clients/c-1/outcome", {"dropout": False, "ended_on": "1990-01-01"})
    assert first.status_code == 200, first.text


def test_a_key_given_twice_is_422_and_writes_nothing(api: Api) -> None:
    """In every stored PUT; media types are compared case-insensitively."""
    api.client("c-1")
    api.session("c-1", 1, HIGHER)
    before = (api.history("c-1"), api.caseload())
    headers = {**api.auth("a"), "Content-Type": "application/json"}
    cases = [
        ("/v1/clients/c-1", '{"age": 30, "age": 61}', "age"),
        ("/v1/clients/c-1/sessions/2", '{"srs": {"total": 40, "total": 10}}', "total"),
        (
            "/v1/clients/c-1/sessions/2",
            '{"date": "2026-03-02", "srs": {"total": 40}, "date": "2026-03-09"}',
            "date",
        ),
        (
            "/v1/clients/c-1/outcome",
            '{"dropout": true, "dropout": false, "ended_on": "2026-05-01"}',
            "dropout",
        ),
    ]
    for path, body, key in cases:
        response = api.http.put(path, content=body, headers=headers)
        assert response.status_code == 422, (path, body)
        [detail] = response.json()["detail"]
        assert (detail["loc"], detail["type"]) == ("body", "json_duplicate_key")
        assert detail["msg"].startswith(f"the key {key!r} appears twice in one object")
    assert (api.history("c-1"), api.caseload()) == before
    with api.db() as s:
        assert [r.number for r in repo.get_sessions(s, A, "c-1")] == [1]
        _, clients = repo.export_tables(s, A)
    assert [c["dropout"] for c in clients] == [None]

    mixed = {**api.auth("a"), "Content-Type": "Application/JSON; Charset=UTF-8"}
    response = api.http.put("/v1/clients/c-1/sessions/2", json=LOW, headers=mixed)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "created"
    plain = {**api.auth("a"), "Content-Type": "text/plain"}
    assert api.http.put("/v1/clients/c-1", json=PERSON, headers=plain).status_code == 415


LOOSE_INTEGERS = [
    "%201",
    "1%20",
    "+1",
    "%2B1",
    "01",
    "1_0",
    "1%E2%80%89",
    "%D9%A1",
    "1.0",
    "-0",
    "",
]


def test_path_and_query_integers_are_plain_digits(api: Api) -> None:
    """Python's int() reads " 1", "+1", "01", "1_0" (as 10) and other digits; a URL gets
    plain ASCII digits only, or a 422 naming the parameter (service/core/schemas.py)."""
    api.client("c-1")
    api.session("c-1", 1, HIGHER)
    before = (api.history("c-1"), api.caseload())
    plain = (
        "must be written in plain digits 0-9, without a sign, spaces, underscores or leading zeros"
    )
    for text in LOOSE_INTEGERS:
        stored = api.put(f"/v1/clients/c-1/sessions/{text}", LOW)
        if text == "":  # /sessions/ is another path
            assert stored.status_code in (404, 405)
            continue
        assert stored.status_code == 422, text
        assert stored.json()["detail"] == [
            {"loc": "path.number", "msg": plain, "type": "int_plain_digits"}
        ], text
    for path, name in (
        ("/v1/clients/c-1/risk/history", "limit"),
        ("/v1/caseload", "limit"),
        ("/v1/caseload", "offset"),
    ):
        for text in LOOSE_INTEGERS:
            response = api.http.get(f"{path}?{name}={text}", headers=api.auth("a"))
            assert response.status_code == 422, (path, name, text)
            [detail] = response.json()["detail"]
            assert (detail["loc"], detail["type"]) == (f"query.{name}", "int_plain_digits")
    assert api.caseload(offset="0")["offset"] == 0
    assert api.caseload(limit="10")["limit"] == 10
    assert (api.history("c-1"), api.caseload()) == before
    with api.db() as s:
        assert [r.number for r in repo.get_sessions(s, A, "c-1")] == [1]


# --- keys and clinics -------------------------------------------------------------------------


def test_scopes_and_missing_keys(api: Api) -> None:
    api.client("c-1")
    api.session("c-1", 1, HIGHER)
    writes = [
        ("/v1/clients/c-1", {"age": 50}),
        ("/v1/clients/c-1/sessions/2", LOW),
        ("/v1/clients/c-1/outcome", {"dropout": True, "ended_on": "2026-05-01"}),
    ]
    reads = ["/v1/clients/c-1/risk", "/v1/clients/c-1/risk/history", "/v1/caseload"]
    fhir = "/fhir/r4/RiskAssessment?subject=Patient/c-1"

    for who, scope in (("predict", "clients:write"), ("a_read", "clients:write")):
        for path, body in writes:
            response = api.put(path, body, who)
            assert response.status_code == 403, (who, path)
            assert response.json()["detail"][0]["type"] == "forbidden"
            assert scope in response.json()["detail"][0]["msg"]
    for path in [*reads, fhir]:
        assert api.get(path, "predict").status_code == 403, path
        assert api.get(path, "a_read").status_code == 200, path
    assert api.post("/v1/clients/c-1/flag/acknowledge", who="predict").status_code == 403

    for path, body in writes:
        response = api.put(path, body, None)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert (
            api.http.put(path, json=body, headers={"Authorization": "Bearer drk_nope"}).status_code
            == 401
        )
    for path in [*reads, fhir]:
        assert api.get(path, None).status_code == 401
    assert api.post("/v1/clients/c-1/flag/acknowledge", who=None).status_code == 401

    # none of the refused writes happened
    history = api.history("c-1")
    assert len(history) == 1
    assert history[0]["acknowledged"] is False
    with api.db() as s:
        stored = repo.get_client(s, A, "c-1")
        assert [r.number for r in repo.get_sessions(s, A, "c-1")] == [1]
        assert [c["dropout"] for c in repo.export_tables(s, A)[1]] == [None]
    assert stored is not None
    assert stored.age == 30


def test_another_clinic_sees_nothing_and_can_change_nothing(api: Api) -> None:
    api.client("c-1", therapist_id="T-1")
    api.session("c-1", 1, HIGHER)
    before = api.history("c-1")

    refused = [
        api.get("/v1/clients/c-1/risk", "b"),
        api.get("/v1/clients/c-1/risk/history", "b"),
        api.put("/v1/clients/c-1/sessions/2", LOW, "b"),
        api.put("/v1/clients/c-1/outcome", {"dropout": True, "ended_on": "2026-05-01"}, "b"),
        api.post("/v1/clients/c-1/flag/acknowledge", who="b"),
    ]
    for response in refused:
        assert response.status_code == 404, response.request.url  # as if it did not exist
        assert response.json()["detail"][0]["type"] == "client_not_found"
    serving = api.http.app.state.models.for_clinic(B).version  # type: ignore[attr-defined]
    assert api.caseload("b") == {
        "total": 0,
        "limit": 50,
        "offset": 0,
        "models": {"serving": serving, "versions": {}, "recomputing": False},
        "clients": [],
    }
    assert api.caseload("b", therapist_id="T-1")["total"] == 0

    search = api.get("/fhir/r4/RiskAssessment", "b", subject="Patient/c-1")
    assert search.status_code == 200
    assert search.json()["type"] == "searchset"
    assert search.json()["total"] == 0
    assert "entry" not in search.json()
    ours = api.get("/fhir/r4/RiskAssessment", "a", subject="Patient/c-1").json()
    assert ours["total"] == 1
    assert ours["entry"][0]["resource"]["subject"]["reference"] == "Patient/c-1"

    # A's client is untouched: same history, not acknowledged, no session 2, no outcome
    assert api.history("c-1") == before
    with api.db() as s:
        assert [r.number for r in repo.get_sessions(s, A, "c-1")] == [1]
        assert [c["dropout"] for c in repo.export_tables(s, A)[1]] == [None]
        assert repo.export_tables(s, B) == ([], [])

    # the same id in clinic B is another client altogether
    assert api.put("/v1/clients/c-1", PERSON, "b").json()["status"] == "created"
    api.session("c-1", 1, LOW, "b")
    assert api.risk("c-1", "b")["prediction"]["risk_level"] == "low"
    assert api.risk("c-1")["prediction"]["risk_level"] == "high"
    assert api.ids() == ["c-1"]
    assert api.caseload("b")["clients"][0]["probability"] == 0.1396


# --- caseload and acknowledgements ------------------------------------------------------------


def _four_clients(api: Api) -> dict[str, Any]:
    """hi-1 high 0.7266 (T-1), hi-2 high 0.5791 (T-2), mod moderate 0.2984 (T-2), lo low
    0.1396 (T-1), and `new`, a client without sessions (so without a risk)."""
    plan = [
        ("lo", "T-1", LOW, "2026-03-05"),
        ("hi-2", "T-2", HIGHER, "2026-03-04"),
        ("mod", "T-2", MODERATE, None),
        ("hi-1", "T-1", HIGH, "2026-03-02"),
    ]
    risks = {}
    for client_id, therapist, body, day in plan:
        api.client(client_id, therapist_id=therapist)
        risks[client_id] = api.session(
            client_id, 1, body if day is None else {**body, "date": day}
        )["risk"]
    api.client("new", therapist_id="T-1")
    levels = {c: (r["probability"], r["risk_level"]) for c, r in risks.items()}
    assert levels == {
        "hi-1": (0.7266, "high"),
        "hi-2": (0.5791, "high"),
        "mod": (0.2984, "moderate"),
        "lo": (0.1396, "low"),
    }
    return risks


def test_a_therapists_key_sees_only_their_clients(api: Api) -> None:
    """A key bound to T-1 sees T-1's clients on every route; T-2's answer exactly like a
    client that does not exist, and its caseload may not name another therapist."""
    risks = _four_clients(api)
    assert [c["client_id"] for c in api.caseload("t1")["clients"]] == ["hi-1", "lo"]
    own = api.caseload("t1", therapist_id="T-1")
    assert [c["client_id"] for c in own["clients"]] == ["hi-1", "lo"]
    other = api.get("/v1/caseload", "t1", therapist_id="T-2")
    assert other.status_code == 403
    assert other.json()["detail"] == [
        {
            "loc": "query.therapist_id",
            "msg": "therapist_id: value 'T-2' is not this key's therapist: a key bound to a "
            "therapist sees only that therapist's clients",
            "type": "other_therapist",
        }
    ]
    assert api.risk("hi-1", "t1")["prediction"] == risks["hi-1"]
    assert [h["prediction"]["risk_level"] for h in api.history("lo", "t1")] == ["low"]
    for path, method in (
        ("/v1/clients/{}/risk", api.get),
        ("/v1/clients/{}/risk/history", api.get),
        ("/v1/clients/{}/flag/acknowledge", api.post),
    ):
        hidden, missing = method(path.format("hi-2"), who="t1"), method(path.format("zz"), who="t1")
        assert (hidden.status_code, missing.status_code) == (404, 404), path
        assert hidden.text == missing.text.replace("zz", "hi-2"), path
    assert [c["acknowledged"] for c in api.caseload("a", therapist_id="T-2")["clients"]] == [
        False,
        False,
    ]
    search = api.get("/fhir/r4/RiskAssessment", "t1", subject="Patient/hi-2").json()
    assert (search["total"], "entry" in search) == (0, False)
    found = api.get("/fhir/r4/RiskAssessment", "t1", subject="Patient/hi-1").json()
    assert found["entry"][0]["resource"]["subject"] == {"reference": "Patient/hi-1"}


def test_a_therapists_key_writes_only_their_clients(api: Api) -> None:
    """The binding holds for writes too: a T-1 key cannot change, score or label T-2's
    client (404, as on reads: the PUT's answer would show the risk), nor create or move a
    client to another therapist (403); its own clients it writes as any key does."""
    _four_clients(api)
    before = api.history("hi-2")
    one = {"wai": {"goal": 2.0, "task": 2.0, "bond": 2.0}}
    for path, body in (
        ("/v1/clients/hi-2", {**PERSON, "therapist_id": "T-2"}),
        ("/v1/clients/hi-2/sessions/2", one),
        ("/v1/clients/hi-2/outcome", {"dropout": True, "ended_on": "2026-04-01"}),
    ):
        hidden = api.put(path, body, "t1_write")
        assert hidden.status_code == 404, path
        assert hidden.json()["detail"][0]["type"] == "client_not_found", path
    for client_id, therapist in (("hi-1", "T-2"), ("fresh", "T-2"), ("fresh", None)):
        moved = api.put(
            f"/v1/clients/{client_id}", {**PERSON, "therapist_id": therapist}, "t1_write"
        )
        assert moved.status_code == 403, (client_id, therapist)
        assert moved.json()["detail"][0]["loc"] == "body.therapist_id"
        assert moved.json()["detail"][0]["type"] == "other_therapist"
    assert api.history("hi-2") == before
    assert api.ids(therapist_id="T-2") == ["hi-2", "mod"]
    api.client("fresh", "t1_write", therapist_id="T-1")
    assert api.session("fresh", 1, one, "t1_write")["risk"]["risk_level"] in {"moderate", "high"}
    done = {"dropout": False, "ended_on": "2026-04-01"}
    assert api.put("/v1/clients/lo/outcome", done, "t1_write").status_code == 200


def test_caseload_order_fields_filters_and_pages(api: Api) -> None:
    risks = _four_clients(api)
    everyone = api.caseload()
    assert (everyone["total"], everyone["limit"], everyone["offset"]) == (4, 50, 0)
    rows = everyone["clients"]
    assert [r["client_id"] for r in rows] == ["hi-1", "hi-2", "mod", "lo"]
    assert [r["probability"] for r in rows] == [0.7266, 0.5791, 0.2984, 0.1396]
    for row in rows:
        risk = risks[row["client_id"]]
        stored = api.risk(row["client_id"])
        assert row["risk_level"] == risk["risk_level"]
        assert row["landmark_session"] == 1
        assert row["model_version"] == MODEL
        assert row["computed_at"] == stored["computed_at"]
        assert row["main_factor"] == risk["factors"][0]["label"]
        assert row["acknowledged"] is False
    assert {r["client_id"]: r["therapist_id"] for r in rows} == {
        "hi-1": "T-1",
        "hi-2": "T-2",
        "mod": "T-2",
        "lo": "T-1",
    }
    assert {r["client_id"]: r["last_session_date"] for r in rows} == {
        "hi-1": "2026-03-02",
        "hi-2": "2026-03-04",
        "mod": None,
        "lo": "2026-03-05",
    }

    assert api.ids(min_level="low") == ["hi-1", "hi-2", "mod", "lo"]
    assert api.ids(min_level="moderate") == ["hi-1", "hi-2", "mod"]
    assert api.ids(min_level="high") == ["hi-1", "hi-2"]
    assert api.ids(therapist_id="T-1") == ["hi-1", "lo"]
    assert api.ids(therapist_id="T-2", min_level="high") == ["hi-2"]
    assert api.ids(therapist_id="T-3") == []
    assert api.caseload(min_level="moderate")["total"] == 3

    assert api.post("/v1/clients/hi-2/flag/acknowledge").status_code == 200
    assert api.ids(acknowledged="true") == ["hi-2"]
    assert api.ids(acknowledged="false") == ["hi-1", "mod", "lo"]
    assert api.caseload(acknowledged="false", min_level="high")["total"] == 1

    pages = [api.caseload(limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [[c["client_id"] for c in p["clients"]] for p in pages] == [
        ["hi-1", "hi-2"],
        ["mod", "lo"],
        [],
    ]
    assert [(p["total"], p["limit"], p["offset"]) for p in pages] == [
        (4, 2, 0),
        (4, 2, 2),
        (4, 2, 4),
    ]
    page = api.caseload(limit=2, offset=1, min_level="moderate")
    assert ([c["client_id"] for c in page["clients"]], page["total"]) == (["hi-2", "mod"], 3)

    bad = [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"min_level": "severe"}, "query.min_level"),
        ({"acknowledged": "maybe"}, "query.acknowledged"),
        ({"therapist_id": "T 1"}, "query.therapist_id"),
    ]
    for params, loc in bad:
        assert locs(api.get("/v1/caseload", **params)) == [loc], params


def test_acknowledgement_lasts_until_the_level_changes(api: Api) -> None:
    api.client("c-1")
    assert api.session("c-1", 1, HIGHER)["risk"]["risk_level"] == "high"
    assert api.risk("c-1")["acknowledged"] is False

    ack = api.post("/v1/clients/c-1/flag/acknowledge")
    assert ack.status_code == 200
    assert ack.json()["client_id"] == "c-1"
    assert ack.json()["risk_level"] == "high"
    assert datetime.fromisoformat(ack.json()["acknowledged_at"]).tzinfo is not None
    assert api.risk("c-1")["acknowledged"] is True
    assert api.caseload()["clients"][0]["acknowledged"] is True

    same_level = api.session("c-1", 2, HIGHER)["risk"]  # a new risk at the same level
    assert (same_level["probability"], same_level["risk_level"]) == (0.5372, "high")
    assert api.risk("c-1")["acknowledged"] is True
    assert api.caseload()["clients"][0]["acknowledged"] is True
    assert [h["acknowledged"] for h in api.history("c-1")] == [True, False]

    new_level = api.session("c-1", 3, LOW)["risk"]  # the level changes: the flag re-opens
    assert (new_level["probability"], new_level["risk_level"]) == (0.211, "low")
    assert api.risk("c-1")["acknowledged"] is False
    assert api.caseload()["clients"][0]["acknowledged"] is False
    assert api.ids(acknowledged="true") == []
    assert [h["acknowledged"] for h in api.history("c-1")] == [False, False, False]

    again = api.post("/v1/clients/c-1/flag/acknowledge", who="a_read")  # clients:read may
    assert again.json()["risk_level"] == "low"
    assert api.risk("c-1")["acknowledged"] is True


# --- audit trail --------------------------------------------------------------------------------


def _audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = run(["audit", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_audit_lists_every_read_and_write(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    cid = "client-7781"
    api.client(cid, therapist_id="T-1")
    api.session(cid, 1, HIGHER)
    api.session(cid, 1, HIGHER)
    api.risk(cid)
    api.history(cid)
    api.caseload()
    assert api.post(f"/v1/clients/{cid}/flag/acknowledge").status_code == 200
    assert (
        api.put(
            f"/v1/clients/{cid}/outcome", {"dropout": True, "ended_on": "2026-05-01"}
        ).status_code
        == 200
    )
    assert api.get("/fhir/r4/RiskAssessment", subject=f"Patient/{cid}").json()["total"] == 1
    api.risk(cid, "a_read")
    # refused and failed requests leave no trace
    assert api.get("/v1/clients/ghost/risk").status_code == 404
    assert api.put(f"/v1/clients/{cid}/sessions/0", LOW).status_code == 422
    assert api.get(f"/v1/clients/{cid}/risk", "b").status_code == 404
    assert api.put(f"/v1/clients/{cid}", PERSON, "a_read").status_code == 403
    capsys.readouterr()

    status, out, err = _audit(
        capsys, "--clinic", A, "--since", "2000-01-01", "--database-url", api.url
    )
    assert (status, err) == (0, "")
    header, *lines = out.splitlines()
    assert header == "AT\tACTOR\tACTION\tCLIENT\tMODEL"
    rows = [line.split("\t") for line in lines]
    writer, reader = f"key:{api.key_id('a')}", f"key:{api.key_id('a_read')}"
    assert [(r[1], r[2], r[4]) for r in rows] == [
        (writer, "client.created", "-"),
        (writer, "session.created", MODEL),
        (writer, "session.unchanged", MODEL),
        (writer, "risk.read", MODEL),
        (writer, "risk.history", "-"),
        (writer, "caseload.read", MODEL),
        (writer, "flag.acknowledge", "-"),
        (writer, "outcome.created", "-"),
        (writer, "fhir.risk.read", MODEL),
        (reader, "risk.read", MODEL),
    ]
    pseudonym = api.pseudonym(cid)
    assert re.fullmatch(r"[0-9a-f]{16}", pseudonym)
    assert {r[3] for r in rows} == {pseudonym}
    assert cid not in out
    stamps = [datetime.fromisoformat(r[0]) for r in rows]
    assert stamps == sorted(stamps)
    assert all(s.tzinfo is not None for s in stamps)

    status, out, _ = _audit(
        capsys, "--clinic", A, "--since", "2999-01-01", "--database-url", api.url
    )
    assert (status, out.strip()) == (0, f"no audit entries for clinic {A} since 2999-01-01")
    status, out, _ = _audit(
        capsys, "--clinic", B, "--since", "2000-01-01", "--database-url", api.url
    )
    assert (status, out.strip()) == (0, f"no audit entries for clinic {B} since 2000-01-01")


def test_audit_refuses_bad_options(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for since in ["2026-13-01", "yesterday", "[/x]", "[bold]1[/bold]"]:
        status, out, err = _audit(
            capsys, "--clinic", A, "--since", since, "--database-url", database_url
        )
        assert (status, out) == (2, ""), since
        assert err.startswith("error: --since"), since
        assert repr(since) in err  # the value as given, markup and all
    status, out, err = _audit(
        capsys, "--clinic", "a b", "--since", "2000-01-01", "--database-url", database_url
    )
    assert (status, out) == (2, "")
    assert err.startswith("error: --clinic")


# --- export -------------------------------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_export_writes_the_cohort_contract(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.client("c-1", age=27, gender="female", therapist_id="T-1")
    api.session(
        "c-1",
        1,
        {
            "date": "2026-03-02",
            # goal (4, 6, 8, 11) 3.75, task (1, 2, 10, 12) 3.25, bond (3, 5, 7, 9) 4.0
            "wai": {"items": [4, 3, 4, 3, 4, 4, 3, 4, 5, 3, 4, 3]},
            "srs": {"relationship": 9.1, "goals": 8.7, "approach": 8.9, "overall": 9.0},
            "ors": {"total": 18.2},
            "phq9": {"total": 14},
        },
    )
    api.session("c-1", 2, {"wai": {"goal": 2.5}, "srs": {"total": 28.0}})
    api.client("c-2", age=61, gender="male")
    api.session("c-2", 1, {"date": "2026-04-01", "ors": {"total": 30.5}})
    api.client("c-3")  # no sessions, no outcome
    outcomes = [
        ("c-1", {"dropout": True, "ended_on": "2026-05-01"}, "created"),
        ("c-1", {"dropout": True, "ended_on": "2026-05-01"}, "unchanged"),
        ("c-2", {"dropout": True, "ended_on": "2026-06-01"}, "created"),
        ("c-2", {"dropout": False, "ended_on": "2026-06-01"}, "updated"),
    ]
    for client_id, body, status in outcomes:
        answer = api.put(f"/v1/clients/{client_id}/outcome", body).json()
        assert answer == {"client_id": client_id, "status": status}
    api.client("other", who="b")
    api.session("other", 1, LOW, who="b")
    capsys.readouterr()

    out = tmp_path / "export" / "a"
    assert run(["export", "--clinic", A, "--out", str(out), "--database-url", api.url]) == 0
    assert "exported 3 clients and 3 sessions" in capsys.readouterr().out
    session_columns, sessions = _read_csv(out / "sessions.csv")
    client_columns, clients = _read_csv(out / "clients.csv")
    assert session_columns == [
        "client_id",
        "session_number",
        "session_date",
        "wai_goal",
        "wai_task",
        "wai_bond",
        "srs_total",
        "ors_total",
        "phq9_total",
    ]
    assert client_columns == ["client_id", "therapist_id", "age", "gender", "dropout"]
    srs = sessions[0].pop("srs_total")
    assert float(srs) == pytest.approx(35.7, abs=1e-9)
    assert sessions == [
        {
            "client_id": "c-1",
            "session_number": "1",
            "session_date": "2026-03-02",
            "wai_goal": "3.75",
            "wai_task": "3.25",
            "wai_bond": "4.0",
            "ors_total": "18.2",
            "phq9_total": "14",
        },
        {
            "client_id": "c-1",
            "session_number": "2",
            "session_date": "",
            "wai_goal": "2.5",
            "wai_task": "",
            "wai_bond": "",
            "srs_total": "28.0",
            "ors_total": "",
            "phq9_total": "",
        },
        {
            "client_id": "c-2",
            "session_number": "1",
            "session_date": "2026-04-01",
            "wai_goal": "",
            "wai_task": "",
            "wai_bond": "",
            "srs_total": "",
            "ors_total": "30.5",
            "phq9_total": "",
        },
    ]
    assert clients == [
        {
            "client_id": "c-1",
            "therapist_id": "T-1",
            "age": "27",
            "gender": "female",
            "dropout": "1",
        },
        {"client_id": "c-2", "therapist_id": "", "age": "61", "gender": "male", "dropout": "0"},
        {"client_id": "c-3", "therapist_id": "", "age": "30", "gender": "female", "dropout": ""},
    ]

    validate = [
        "validate",
        "--sessions",
        str(out / "sessions.csv"),
        "--clients",
        str(out / "clients.csv"),
    ]
    assert run(validate) == 0
    assert "ok: 3 clients, 3 sessions" in capsys.readouterr().out

    empty = tmp_path / "export" / "nobody"
    assert (
        run(["export", "--clinic", "clinic-z", "--out", str(empty), "--database-url", api.url]) == 0
    )
    assert (empty / "sessions.csv").read_text().splitlines() == [",".join(session_columns)]
    assert (empty / "clients.csv").read_text().splitlines() == [",".join(client_columns)]
    capsys.readouterr()

    assert (
        run(
            [
                "export",
                "--clinic",
                "bad clinic",
                "--out",
                str(tmp_path / "x"),
                "--database-url",
                api.url,
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("error: --clinic")
    assert not (tmp_path / "x").exists()


def test_export_to_a_file_is_a_usage_error(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert run(["export", "--clinic", A, "--out", str(target), "--database-url", database_url]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --out")
    assert "Traceback" not in captured.err
    assert target.read_text() == "not a folder"
