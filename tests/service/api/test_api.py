"""The prediction API in-process: every endpoint's success path with real values, each
kind of bad input, auth and scopes, promotion and tampering."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from service.api import predictions as predictions_route
from service.app import create_app
from service.core.examples import EXAMPLE_EPISODE
from service.core.observability import Pseudonymizer, configure_logging
from service.core.schemas import WaiIn
from service.core.settings import Settings
from service.scoring import batcher as batcher_module
from service.scoring.episodes import wai_subscales
from service.scoring.score import score
from service.storage import repository as repo
from service.storage.database import Storage
from tests.support.helpers import REPO, create_key, train, write_csv
from training.cli import run
from training.features import grid_from_tables
from training.predict import score_grid
from training.registry import LoadedModel, Registry
from training.vocabulary import ID_RULE, TEXT_RULE, latest_date, outside_date_window

EXAMPLE: dict[str, Any] = EXAMPLE_EPISODE


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model, copied so promotion tests can add versions."""
    folder = tmp_path_factory.mktemp("models")
    shutil.copytree(REPO / "models", folder, dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.db'}"
    return {
        "predict": create_key(url, "clinic-a", ["predict"]),
        "admin": create_key(url, "clinic-a", ["models:admin"]),
        "network": create_key(url, "clinic-a", ["models:network"]),
        "url": url,
    }


@pytest.fixture(scope="module")
def client(
    registry: Path, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = Settings(
        models_dir=registry,
        database_url=keys["url"],
        pseudonym_key_file=tmp_path_factory.mktemp("p") / "pseudonym.key",
        reload_seconds=0.0,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _auth(keys: dict[str, str], which: str = "predict") -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[which]}"}


def _predict(client: TestClient, keys: dict[str, str], body: Any) -> Any:
    return client.post("/v1/predictions", json=body, headers=_auth(keys))


def test_health_ready_metrics(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["model_version"] == Registry(REPO / "models").read()["champion"]
    assert _predict(client, keys, EXAMPLE).status_code == 200
    text = client.get("/metrics").text
    assert 'route="/v1/predictions"' in text
    assert "dropout_risk_predictions_total{" in text
    assert "A-1001" not in text


def test_prediction_matches_the_training_pipeline(client: TestClient, keys: dict[str, str]) -> None:
    """The same client through the API and through the contract tables gets one risk."""
    body = _predict(client, keys, EXAMPLE).json()
    sessions = pd.DataFrame(
        {
            "client_id": ["A-1001", "A-1001"],
            "session_number": [1, 2],
            "session_date": pd.to_datetime(["2026-03-02", "2026-03-09"]),
            # session 2's 12 items: goal (4, 6, 8, 11) 3.75, task (1, 2, 10, 12) 3.25, bond 4.0
            "wai_goal": [3.25, 3.75],
            "wai_task": [3.5, 3.25],
            "wai_bond": [4.0, 4.0],
            "srs_total": [35.5, 35.7],
            "ors_total": [18.2, np.nan],
            "phq9_total": [14.0, np.nan],
        }
    )
    clients = pd.DataFrame({"client_id": ["A-1001"], "age": [27.0], "gender": ["female"]})
    loaded = Registry(REPO / "models").load()
    p, landmark = score_grid(loaded, grid_from_tables(sessions, clients, 3)[1])
    assert body["probability"] == pytest.approx(round(float(p[0]), 4), abs=1e-12)
    assert body["landmark_session"] == landmark[0] == 2
    th = loaded.metadata["thresholds"]
    expected = "high" if p[0] >= th["high"] else "moderate" if p[0] >= th["moderate"] else "low"
    assert body["risk_level"] == expected
    assert body["model"] == {"version": loaded.version, "sha256": loaded.metadata["sha256"]}
    assert body["thresholds"] == {"moderate": th["moderate"], "high": th["high"]}
    assert body["disclaimer"] == "Decision support, not a diagnosis."
    assert body["client_id"] == "A-1001"


def test_attended_session_without_measures_counts_as_in_predict(
    client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    """Session 3 attended, with a date and no measures: the API takes it (it used to be a
    422) and, like `dropout-risk predict` on the same rows, scores at landmark 3 with the
    gap to it; one probability for one client through both doors."""
    sessions = [
        {"number": 1, "date": "2026-03-02", "wai": {"goal": 3.0, "task": 3.0, "bond": 3.5}},
        {"number": 2, "date": "2026-03-09", "srs": {"total": 33.0}},
        {"number": 3, "date": "2026-03-30"},
    ]
    body = {"client_id": "A-7", "age": 31, "gender": "male", "sessions": sessions}
    answer = _predict(client, keys, body)
    assert answer.status_code == 200, answer.text
    rows = [
        {"client_id": "A-7", "session_number": 1, "session_date": "2026-03-02"}
        | {"wai_goal": 3.0, "wai_task": 3.0, "wai_bond": 3.5},
        {"client_id": "A-7", "session_number": 2, "session_date": "2026-03-09", "srs_total": 33.0},
        {"client_id": "A-7", "session_number": 3, "session_date": "2026-03-30"},
    ]
    write_csv(tmp_path / "sessions.csv", rows)
    write_csv(tmp_path / "clients.csv", [{"client_id": "A-7", "age": 31, "gender": "male"}])
    paths = [str(tmp_path / name) for name in ("sessions.csv", "clients.csv", "out.csv")]
    options = ("--sessions", "--clients", "--out")
    files = [part for pair in zip(options, paths, strict=True) for part in pair]
    status = run(["predict", "--model", "champion", "--models-dir", str(REPO / "models"), *files])
    assert status == 0
    [row] = pd.read_csv(tmp_path / "out.csv").to_dict("records")
    assert answer.json()["landmark_session"] == row["landmark_session"] == 3
    assert answer.json()["probability"] == row["probability"]
    without = {**body, "sessions": sessions[:2]}  # dropping it would move the landmark
    assert _predict(client, keys, without).json()["landmark_session"] == 2


def test_wai_items_map_to_subscales() -> None:
    items = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]  # task 1,2,10,12; bond 3,5,7,9; goal 4,6,8,11
    goal, task, bond = wai_subscales(WaiIn(items=items))
    assert (goal, task, bond) == ((4 + 1 + 3 + 1) / 4, (1 + 2 + 5 + 2) / 4, (3 + 5 + 2 + 4) / 4)


def test_falling_alliance_gets_decline_factor_and_repair_action(
    client: TestClient, keys: dict[str, str]
) -> None:
    falling = {
        "client_id": "B-1",
        "age": 30,
        "sessions": [
            {"number": 1, "wai": {"goal": 4.25, "task": 4.25, "bond": 4.5}, "srs": {"total": 38}},
            {"number": 2, "wai": {"goal": 3.0, "task": 3.0, "bond": 3.25}, "srs": {"total": 31}},
        ],
    }
    body = _predict(client, keys, falling).json()
    codes = {f["code"]: f for f in body["factors"]}
    assert codes["alliance_decline"]["direction"] == "raises"
    assert codes["alliance_decline"]["contribution"] > 0
    assert "rupture_repair" in {a["code"] for a in body["suggested_actions"]}
    assert all(a["source"] for a in body["suggested_actions"])


def test_sessions_after_the_last_landmark_are_ignored(
    client: TestClient, keys: dict[str, str]
) -> None:
    three = {**EXAMPLE, "sessions": [*EXAMPLE["sessions"], {"number": 3, "srs": {"total": 30.0}}]}
    later = {
        **three,
        "sessions": [
            *three["sessions"],
            {"number": 4, "srs": {"total": 40.0}},
            {"number": 7, "wai": {"goal": 1.0}},
        ],
    }
    a, b = _predict(client, keys, three).json(), _predict(client, keys, later).json()
    assert a["landmark_session"] == b["landmark_session"] == 3
    assert a["probability"] == b["probability"]


def _session(**measures: Any) -> dict[str, Any]:
    return {"number": 1, **measures}


@pytest.mark.parametrize(
    ("sessions", "loc", "fragment"),
    [
        ([], "sessions", "at least 1 item"),
        (
            [_session(srs={"total": 36}), _session(srs={"total": 37})],
            "sessions",
            "session number 1 appears twice",
        ),
        ([_session(wia={"goal": 3})], "sessions[0].wia", "Extra inputs are not permitted"),
        ([_session(wai={"goal": 7})], "sessions[0].wai.goal", "less than or equal to 5"),
        ([_session(wai={"goal": "3"})], "sessions[0].wai.goal", "valid number"),
        ([_session(wai={"items": [3] * 11})], "sessions[0].wai.items", "at least 12 items"),
        ([_session(wai={"goal": 3, "items": [3] * 12})], "sessions[0].wai", "not both"),
        ([_session(srs={"relationship": 9})], "sessions[0].srs", "all four items"),
        ([_session(phq9={"total": 3.5})], "sessions[0].phq9.total", "valid integer"),
        ([_session(srs={"total": 36}, date="03/02/2026")], "sessions[0].date", "date"),
        # digits alone would be a Unix timestamp to pydantic: refused, never read as a date
        ([_session(srs={"total": 36}, date="1772409600")], "sessions[0].date", "YYYY-MM-DD"),
        ([_session(srs={"total": 36}, date="2026-02-30")], "sessions[0].date", "day value"),
        (
            [{"number": i, "srs": {"total": 36}} for i in range(1, 52)],
            "sessions",
            "at most 50 items",
        ),
    ],
)
def test_bad_episode_is_422_naming_the_field(
    client: TestClient, keys: dict[str, str], sessions: list[Any], loc: str, fragment: str
) -> None:
    response = _predict(client, keys, {"client_id": "X", "sessions": sessions})
    assert response.status_code == 422
    details = response.json()["detail"]
    assert any(d["loc"] == loc and fragment in d["msg"] for d in details), details


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("client_id", "x" * 65, ID_RULE),
        ("client_id", "bad id!", ID_RULE),
        ("client_id", ".", ID_RULE),
        ("client_id", "..", ID_RULE),
        ("client_id", 7, ID_RULE),
        ("therapist_id", "...", ID_RULE),
        ("age", 7, "greater than or equal to 12"),
        ("gender", "g" * 65, TEXT_RULE),
        ("gender", "", TEXT_RULE),
        ("gender", "fe\u0000male", TEXT_RULE),  # PostgreSQL text cannot hold a NUL
        ("gender", "\u0007", TEXT_RULE),
        ("gender", 1, TEXT_RULE),
    ],
)
def test_bad_client_fields(
    client: TestClient, keys: dict[str, str], field: str, value: Any, fragment: str
) -> None:
    response = _predict(client, keys, {**EXAMPLE, field: value})
    assert response.status_code == 422
    assert any(d["loc"] == field and fragment in d["msg"] for d in response.json()["detail"])


# Two days past the last plausible date (today + 1): still refused if the run crosses midnight
TOO_LATE = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()


def _dated(first: str, second: str | None = None) -> dict[str, Any]:
    one, two = EXAMPLE["sessions"]
    return {**EXAMPLE, "sessions": [{**one, "date": first}, {**two, "date": second or first}]}


@pytest.mark.parametrize("day", ["0001-01-01", "1989-12-31", "2100-01-01", "9999-12-31", TOO_LATE])
def test_implausible_session_dates_are_422_naming_value_and_window(
    client: TestClient, keys: dict[str, str], day: str
) -> None:
    """Outside 1990-01-01..today+1 (UTC), in a prediction and in a batch item."""
    expected = {
        "loc": "sessions[1].date",
        "msg": outside_date_window(dt.date.fromisoformat(day)),
        "type": "date_window",
    }
    response = _predict(client, keys, _dated("2026-03-02", day))
    assert response.status_code == 422
    assert response.json()["detail"] == [expected]
    batch = client.post(
        "/v1/predictions/batch",
        headers=_auth(keys),
        json={"clients": [EXAMPLE, _dated("2026-03-02", day)]},
    )
    assert batch.status_code == 200
    first, second = batch.json()["results"]
    assert first["prediction"] is not None
    assert second["errors"] == [expected]


def test_the_ends_of_the_date_window_are_accepted(client: TestClient, keys: dict[str, str]) -> None:
    response = _predict(client, keys, _dated("1990-01-01", latest_date().isoformat()))
    assert response.status_code == 200, response.text


def _twice(key: str) -> str:
    return f"the key {key!r} appears twice in one object (line 1 column "


DUPLICATED = [
    ('"client_id": "A-1001"', '"client_id": "A-1001", "client_id": "B-2"', "client_id"),
    ('"srs": {"total": 35.5}', '"srs": {"total": 35.5, "total": 4}', "total"),
    ('"age": 27', '"age": 27, "\\u0061ge": 99', "age"),  # the same key, escaped
    ('"number": 2', '"number": 2, "number": 1', "number"),
]


@pytest.mark.parametrize(("part", "twice", "key"), DUPLICATED, ids=[d[2] for d in DUPLICATED])
def test_a_key_given_twice_is_422_naming_it(
    client: TestClient, keys: dict[str, str], part: str, twice: str, key: str
) -> None:
    """Which value would count depends on the parser: refused, in a prediction and in a
    batch (the same key in two objects, like `total` here, is fine)."""
    raw = json.dumps(EXAMPLE)
    assert raw.count(part) == 1
    headers = {**_auth(keys), "Content-Type": "application/json"}
    for path, body in (
        ("/v1/predictions", raw.replace(part, twice)),
        ("/v1/predictions/batch", '{"clients": [' + raw.replace(part, twice) + "]}"),
    ):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 422, path
        [detail] = response.json()["detail"]
        assert (detail["loc"], detail["type"]) == ("body", "json_duplicate_key")
        assert detail["msg"].startswith(_twice(key)), detail
        assert detail["msg"].endswith("); give each key once")
    assert client.post("/v1/predictions", content=raw, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "kind",
    ["Application/JSON", "APPLICATION/JSON; charset=UTF-8", "application/json;charset=utf-8"],
)
def test_media_types_are_case_insensitive(
    client: TestClient, keys: dict[str, str], kind: str
) -> None:
    headers = {**_auth(keys), "Content-Type": kind}
    raw = json.dumps(EXAMPLE)
    assert client.post("/v1/predictions", content=raw, headers=headers).status_code == 200
    batch = client.post(
        "/v1/predictions/batch", content='{"clients": [' + raw + "]}", headers=headers
    )
    assert batch.status_code == 200
    refused = client.post(
        "/v1/predictions", content=raw, headers={**headers, "Content-Type": "Text/Plain"}
    )
    assert refused.status_code == 415
    assert (
        refused.json()["detail"][0]["msg"] == "send the body as application/json, not 'Text/Plain'"
    )


def test_non_finite_and_malformed_json_and_large_bodies(
    client: TestClient, keys: dict[str, str]
) -> None:
    raw = json.dumps(EXAMPLE).replace("35.5", "NaN")
    response = client.post(
        "/v1/predictions", content=raw, headers={**_auth(keys), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    response = client.post(
        "/v1/predictions",
        content=b"{not json",
        headers={**_auth(keys), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    response = client.post(
        "/v1/predictions",
        content=b"\xa6I\xfcX\xa7\xf57",
        headers={**_auth(keys), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "body"
    assert client.get("/v1/nowhere", headers=_auth(keys)).json()["detail"][0]["type"] == (
        "http_error"
    )
    huge = {**EXAMPLE, "gender": "f", "pad": "x" * (1 << 20)}
    response = _predict(client, keys, huge)
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "body_too_large"


def test_batch_answers_in_order_with_item_errors(client: TestClient, keys: dict[str, str]) -> None:
    bad = {"client_id": "Z", "sessions": [{"number": 1, "wai": {"goal": 9}}]}
    other = {**EXAMPLE, "client_id": "A-1002", "age": 61}
    response = client.post(
        "/v1/predictions/batch", headers=_auth(keys), json={"clients": [EXAMPLE, bad, other]}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[1]["prediction"] is None
    assert results[1]["errors"][0]["loc"] == "sessions[0].wai.goal"
    single = _predict(client, keys, EXAMPLE).json()
    assert results[0]["prediction"] == single
    assert results[2]["prediction"]["client_id"] == "A-1002"


def test_batch_caps(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/predictions/batch", headers=_auth(keys), json={"clients": [EXAMPLE] * 1001}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "clients"
    response = client.post("/v1/predictions/batch", headers=_auth(keys), json={"clients": []})
    assert response.status_code == 422


def test_auth_and_scopes(client: TestClient, keys: dict[str, str]) -> None:
    missing = client.post("/v1/predictions", json=EXAMPLE)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post(
        "/v1/predictions", json=EXAMPLE, headers={"Authorization": keys["predict"][:-2] + "xx"}
    )
    assert wrong.status_code == 401
    bad_secret = keys["predict"][:-2] + ("aa" if not keys["predict"].endswith("aa") else "bb")
    assert (
        client.post(
            "/v1/predictions", json=EXAMPLE, headers={"Authorization": f"Bearer {bad_secret}"}
        ).status_code
        == 401
    )
    assert (
        client.post("/v1/predictions", json=EXAMPLE, headers=_auth(keys, "admin")).status_code
        == 403
    )
    version = Registry(REPO / "models").read()["champion"]
    assert client.post(f"/v1/models/{version}/promote", headers=_auth(keys)).status_code == 403
    assert client.get("/v1/models").status_code == 401


def test_models_endpoints(client: TestClient, keys: dict[str, str]) -> None:
    listing = client.get("/v1/models", headers=_auth(keys)).json()
    champion = Registry(REPO / "models").read()["champion"]
    assert listing["champion"] == champion
    assert [v["version"] for v in listing["versions"] if v["champion"]] == [champion]
    current = client.get("/v1/models/current", headers=_auth(keys)).json()
    meta = Registry(REPO / "models").load().metadata
    assert current["version"] == champion
    assert current["sha256"] == meta["sha256"]
    assert current["landmarks"] == [1, 2, 3]
    assert current["features"] == meta["features"]
    # the typed metadata written back: the figures and thresholds exactly as in the file
    assert current["metrics"] == meta["metrics"]
    assert current["thresholds"] == meta["thresholds"]
    assert set(current) == {
        "version",
        "sha256",
        "created_at",
        "estimator",
        "calibration",
        "metrics",
        "thresholds",
        "landmarks",
        "instruments",
        "features",
    }


def test_logs_carry_a_pseudonym_not_the_client(
    client: TestClient, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("dropout_risk")
    logger.addHandler(caplog.handler)
    try:
        _predict(client, keys, EXAMPLE)
        assert not [r for r in caplog.records if r.getMessage() == "prediction"]  # at info
        logger.setLevel(logging.DEBUG)
        _predict(client, keys, EXAMPLE)
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(logging.INFO)
    events = [r for r in caplog.records if r.getMessage() == "prediction"]
    assert len(events) == 1
    event = events[0].event  # type: ignore[attr-defined]
    assert len(event["client"]) == 16
    assert "A-1001" not in json.dumps(event)
    assert keys["predict"] not in json.dumps(event)
    assert "probability" not in event


def test_a_batch_logs_one_line_of_pseudonyms(
    client: TestClient, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    bad = {"client_id": "Z-9", "sessions": [{"number": 1, "wai": {"goal": 9}}]}
    clients = [EXAMPLE, bad, {**EXAMPLE, "client_id": "A-1002"}]
    logger = logging.getLogger("dropout_risk")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    try:
        client.post("/v1/predictions/batch", headers=_auth(keys), json={"clients": clients})
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(logging.INFO)
    events = [r.event for r in caplog.records if r.getMessage() == "predictions"]  # type: ignore[attr-defined]
    assert len(events) == 1  # one line for the request, not one per client
    event = events[0]
    pseudonym = Pseudonymizer(client.app.state.settings.pseudonym_key_file)  # type: ignore[attr-defined]
    assert event["clients"] == [pseudonym("A-1001"), pseudonym("A-1002")]  # the scored ones
    assert event["landmarks"] == [2, 2]
    text = json.dumps(event)
    assert "A-100" not in text
    assert "Z-9" not in text
    assert "probability" not in text
    assert keys["predict"] not in text


def test_pseudonyms_are_hmac_sha256_so_stored_audit_rows_keep_matching(tmp_path: Path) -> None:
    pseudonym = Pseudonymizer(tmp_path / "p.key")
    key = bytes.fromhex((tmp_path / "p.key").read_text())
    for client_id in ("A-1001", "x", "ü-7"):
        expected = hmac.new(key, client_id.encode(), hashlib.sha256).hexdigest()[:16]
        assert pseudonym(client_id) == expected


def test_log_lines_are_json_with_the_event_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("dropout_risk.predictions").info(
        "prediction", extra={"event": {"client": "0123456789abcdef", "landmark": 2}}
    )
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert {
        "level": "info",
        "logger": "dropout_risk.predictions",
        "msg": "prediction",
        "client": "0123456789abcdef",
        "landmark": 2,
    } in lines


def _audit_rows(url: str, clinic: str) -> list[repo.AuditRecord]:
    """Every audit row of `clinic` in the database at `url`."""
    storage = Storage(url)
    try:
        with storage.session() as s:
            return repo.list_audit(s, clinic, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    finally:
        storage.close()


def test_promotion_scopes(client: TestClient, keys: dict[str, str], registry: Path) -> None:
    """A clinic's models:admin promotes its own clinic's champion only; the network default
    takes models:network; a predict key promotes nothing."""
    champion = Registry(registry).read()["champion"]
    listed = client.get("/v1/models", headers=_auth(keys, "admin"))
    assert (listed.status_code, listed.json()["champion"]) == (200, champion)
    current = client.get("/v1/models/current", headers=_auth(keys, "admin"))
    assert (current.status_code, current.json()["version"]) == (200, champion)
    refused = client.post(f"/v1/models/{champion}/promote", headers=_auth(keys))
    assert refused.status_code == 403
    assert "'models:admin' or 'models:network'" in refused.json()["detail"][0]["msg"]
    # another clinic's admin (clinic-a's champion stays the network default for later tests)
    admin_z = {"Authorization": f"Bearer {create_key(keys['url'], 'clinic-z', ['models:admin'])}"}
    own = client.post(f"/v1/models/{champion}/promote", headers=admin_z)
    assert own.status_code == 200
    assert own.json() == {"champion": champion, "previous": champion}  # what served it
    index = Registry(registry).index()
    assert (index.champion, index.clinic_champions) == (champion, {"clinic-z": champion})
    assert index.history[-1].actor.startswith("key:")
    assert index.history[-1].clinic == "clinic-z"
    rows = _audit_rows(keys["url"], "clinic-z")
    assert [(r.action, r.model_version, r.actor) for r in rows] == [
        ("model.promote", champion, index.history[-1].actor)
    ]
    promoted = client.post(f"/v1/models/{champion}/promote", headers=_auth(keys, "network"))
    assert promoted.status_code == 200
    assert promoted.json() == {"champion": champion, "previous": champion}
    network_only = client.get("/v1/models", headers=_auth(keys, "network"))
    assert network_only.status_code == 403


def test_a_promotion_the_audit_cannot_record_changes_nothing(
    client: TestClient, keys: dict[str, str], registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit row is written before the registry changes: when the database refuses it
    the promotion is a 503 and the clinic's champion and the registry's history are as
    they were; once the database takes it, the promotion and its one audit row land."""
    champion = Registry(registry).read()["champion"]
    admin_y = {"Authorization": f"Bearer {create_key(keys['url'], 'clinic-y', ['models:admin'])}"}
    before = Registry(registry).index()

    def refused(*args: object) -> None:
        raise sa_exc.OperationalError("INSERT INTO audit_log", {}, Exception("read-only"))

    with monkeypatch.context() as patch:
        patch.setattr(repo, "add_audit", refused)
        answer = client.post(f"/v1/models/{champion}/promote", headers=admin_y)
    assert answer.status_code == 503
    after = Registry(registry).index()
    assert "clinic-y" not in after.clinic_champions
    assert len(after.history) == len(before.history)
    landed = client.post(f"/v1/models/{champion}/promote", headers=admin_y)
    assert landed.status_code == 200
    assert Registry(registry).index().clinic_champions["clinic-y"] == champion
    rows = _audit_rows(keys["url"], "clinic-y")
    assert [(r.action, r.model_version) for r in rows] == [("model.promote", champion)]


def test_promotion_and_tampering(
    client: TestClient, keys: dict[str, str], registry: Path, small_cohort: Path
) -> None:
    before = Registry(registry).read()["champion"]
    assert train(small_cohort, registry, "--seed", "8") == 0
    new = Registry(registry).read()["versions"][-1]["version"]
    unknown = client.post("/v1/models/nope/promote", headers=_auth(keys, "network"))
    assert unknown.status_code == 404
    model_file = registry / new / "model.joblib"
    original = model_file.read_bytes()
    model_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    refused = client.post(f"/v1/models/{new}/promote", headers=_auth(keys, "network"))
    assert refused.status_code == 409
    assert "refusing to load a modified artifact" in refused.json()["detail"][0]["msg"]
    assert _predict(client, keys, EXAMPLE).json()["model"]["version"] == before
    model_file.write_bytes(original)
    # no comparison against the champion: the promotion rule refuses, and nothing changes
    unproven = client.post(f"/v1/models/{new}/promote", headers=_auth(keys, "network"))
    assert unproven.status_code == 409
    assert unproven.json()["detail"][0]["type"] == "promotion_refused"
    assert "no comparison" in unproven.json()["detail"][0]["msg"]
    assert unproven.json()["detail"][0]["msg"].startswith("POST /v1/models/{version}/promote: ")
    assert (
        'override with "force": true and a "reason" in the same body'
        in (unproven.json()["detail"][0]["msg"])
    )  # the API's words, not the command line's
    assert Registry(registry).read()["champion"] == before
    forced = {"force": True, "reason": "test: tampering check"}
    bad = client.post(
        f"/v1/models/{new}/promote", json={"force": "yes"}, headers=_auth(keys, "network")
    )
    assert bad.status_code == 422  # the one body rule: no coercion of "yes" to true
    assert bad.json()["detail"][0]["loc"] == "force"
    assert Registry(registry).read()["champion"] == before
    empty = client.post(
        f"/v1/models/{new}/promote", json={"force": True}, headers=_auth(keys, "network")
    )
    assert empty.status_code == 409
    assert empty.json()["detail"][0]["msg"].startswith('"force": true: needs a "reason" ')
    promoted = client.post(f"/v1/models/{new}/promote", json=forced, headers=_auth(keys, "network"))
    assert promoted.json() == {"champion": new, "previous": before}
    assert Registry(registry).index().history[-1].reason == "test: tampering check"
    assert _predict(client, keys, EXAMPLE).json()["model"]["version"] == new
    back = client.post(f"/v1/models/{before}/promote", json=forced, headers=_auth(keys, "network"))
    assert back.status_code == 200


def test_without_a_model_ready_and_predictions_say_503(
    keys: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(
        models_dir=tmp_path / "empty",
        database_url=keys["url"],
        pseudonym_key_file=tmp_path / "p.key",
    )
    with TestClient(create_app(settings)) as empty:
        assert empty.get("/healthz").status_code == 200
        ready = empty.get("/readyz")
        assert ready.status_code == 503
        assert "no champion model is registered" in ready.json()["detail"][0]["msg"]
        response = _predict(empty, keys, EXAMPLE)
        assert response.status_code == 503
        assert response.json()["detail"][0]["type"] == "model_unavailable"
        # stored data answers without a model: the caseload names no serving model
        reader = create_key(keys["url"], "clinic-a", ["clients:read"])
        caseload = empty.get("/v1/caseload", headers={"Authorization": f"Bearer {reader}"})
        assert caseload.status_code == 200
        assert caseload.json()["models"] == {
            "serving": None,
            "versions": {},
            "recomputing": False,
        }


def test_unreachable_database_with_an_unknown_key_is_503_not_500(tmp_path: Path) -> None:
    """A key never seen by this process cannot be checked while the database is away."""
    settings = Settings(
        models_dir=REPO / "models",
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",  # nothing listens there
        pseudonym_key_file=tmp_path / "p.key",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as broken:
        response = broken.post(
            "/v1/predictions",
            json=EXAMPLE,
            headers={"Authorization": "Bearer drk_" + "a" * 12 + "_" + "b" * 43},
        )
        assert response.status_code == 503
        assert response.json()["detail"][0]["type"] == "storage_unavailable"


def test_an_episode_before_the_first_landmark_gets_its_reason_not_a_risk(
    client: TestClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a model whose first landmark is session 2 (the shipped one, its landmarks
    moved), a one-session episode is a 422 alone and an item error in a batch, with the
    reason scoring gives: the same bytes these routes have always sent."""

    def later(model: LoadedModel, *args: Any) -> Any:
        moved = LoadedModel(model.model, {**model.metadata, "landmarks": [2, 3]}, model.probability)
        return score(moved, *args)

    monkeypatch.setattr(batcher_module, "score", later)
    monkeypatch.setattr(predictions_route, "score", later)
    early = {"client_id": "E-1", "sessions": [EXAMPLE["sessions"][0]]}
    reason = (
        b'"msg":"the episode has not reached session 2, the first landmark; no risk can be '
        b'computed yet","type":"not_at_landmark"}]'
    )
    alone = _predict(client, keys, early)
    assert alone.status_code == 422
    assert alone.content == b'{"detail":[{"loc":"sessions",' + reason + b"}"
    batch = client.post(
        "/v1/predictions/batch", json={"clients": [early, EXAMPLE]}, headers=_auth(keys)
    )
    assert batch.status_code == 200
    head = b'{"results":[{"index":0,"prediction":null,"errors":[{"loc":"sessions",' + reason
    assert batch.content.startswith(head + b'},{"index":1,"prediction":{"client_id":"A-1001",')
    assert batch.json()["results"][1]["errors"] is None
    assert batch.json()["results"][1]["prediction"]["landmark_session"] == 2
