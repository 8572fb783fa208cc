"""CDS Hooks 2.0 end to end, in-process: an EHR with generated ES384 and RS384 keys
registered in an issuers file, discovery, the patient-view card (from prefetch or from the
clinic's stored sessions), clinic isolation, every kind of refused JWT (the replay cache is
the database), a fhirServer that must never be fetched, and the audit trail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.app import create_app
from service.core.settings import Settings
from service.interop.fhir.reading import episode_from_bundle
from tests.support.helpers import REPO, create_key
from training.cli import run
from training.registry import Registry
from training.vocabulary import outside_date_window

ISS_A = "https://ehr.example.org"
ISS_B = "https://ehr-b.example.org"
BASE = "http://testserver"
DISCOVERY_URL = f"{BASE}/cds-services"
SERVICE_URL = f"{BASE}/cds-services/dropout-risk"
SERVICE = "/cds-services/dropout-risk"
CHAMPION = str(Registry(REPO / "models").read()["champion"])
INDICATOR = {"low": "info", "moderate": "warning", "high": "critical"}
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MEASURES = "urn:dropout-risk:codesystem:measures"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


# --- the simulated EHRs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    ec_a: ec.EllipticCurvePrivateKey
    rsa_a: rsa.RSAPrivateKey
    ec_b: ec.EllipticCurvePrivateKey
    rogue: ec.EllipticCurvePrivateKey  # a P-384 key no issuer registered


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP384R1()),
    )


def public_jwk(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def issuers_file(folder: Path, keys: Keys) -> Path:
    """Two EHRs: ISS_A for clinic-a (an EC and an RSA key), ISS_B for clinic-b."""
    doc = {
        "issuers": [
            {
                "iss": ISS_A,
                "clinic": "clinic-a",
                "jwks": {"keys": [public_jwk(keys.ec_a, "a-ec"), public_jwk(keys.rsa_a, "a-rsa")]},
                "fhir_servers": ["https://ehr.example.org/fhir/R4"],
            },
            {
                "iss": ISS_B,
                "clinic": "clinic-b",
                "jwks": {"keys": [public_jwk(keys.ec_b, "b-ec")]},
            },
        ]
    }
    path = folder / "cds-issuers.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def sign(
    key: Any,
    aud: str = SERVICE_URL,
    *,
    alg: str = "ES384",
    kid: str = "a-ec",
    iss: str = ISS_A,
    lifetime: int = 120,
    age: int = 0,
    **claims: Any,
) -> str:
    """A CDS client JWT as the EHR signs it for one call (issued `age` seconds ago)."""
    now = int(time.time()) - age
    payload = {
        "iss": iss,
        "sub": "dr-1",
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def handmade(header: dict[str, Any], aud: str, secret: bytes | None) -> str:
    """A token built by hand (PyJWT will not make these): unsigned, or HMAC-SHA256."""
    now = int(time.time())
    payload = {"iss": ISS_A, "aud": aud, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}
    head = _b64url(json.dumps(header).encode())
    body = _b64url(json.dumps(payload).encode())
    if secret is None:
        return f"{head}.{body}."
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(mac)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the service -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cds:
    client: TestClient
    keys: Keys
    api_keys: dict[str, str]
    database_url: str

    def auth(self, which: str) -> dict[str, str]:
        return bearer(self.api_keys[which])

    def call(self, hook: dict[str, Any], token: str | None = None) -> Any:
        token = token if token is not None else sign(self.keys.ec_a)
        return self.client.post(SERVICE, json=hook, headers=bearer(token))

    def cards(self, hook: dict[str, Any], token: str | None = None) -> list[dict[str, Any]]:
        response = self.call(hook, token)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"cards"}
        cards: list[dict[str, Any]] = body["cards"]
        return cards

    def predict(self, episode: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/v1/predictions", json=episode, headers=self.auth("predict"))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def store(self, clinic: str, client_id: str, sessions: list[dict[str, Any]]) -> None:
        headers = self.auth(f"write_{clinic}")
        put = self.client.put(f"/v1/clients/{client_id}", json={"age": 34}, headers=headers)
        assert put.status_code == 200, put.text
        for number, session in enumerate(sessions, start=1):
            stored = self.client.put(
                f"/v1/clients/{client_id}/sessions/{number}", json=session, headers=headers
            )
            assert stored.status_code == 200, stored.text


def _settings(database_url: str, folder: Path, keys: Keys, public_url: str = BASE) -> Settings:
    return Settings(
        models_dir=REPO / "models",
        database_url=database_url,
        pseudonym_key_file=folder / "pseudonym.key",
        cds_issuers_file=issuers_file(folder, keys),
        reload_seconds=0.0,
        public_url=public_url,
    )


@pytest.fixture
def cds(database_url: str, tmp_path: Path, keys: Keys) -> Iterator[Cds]:
    """The service on each database kind, with both EHRs registered."""
    api_keys = {
        "predict": create_key(database_url, "clinic-a", ["predict"]),
        "write_a": create_key(database_url, "clinic-a", ["clients:write", "clients:read"]),
        "write_b": create_key(database_url, "clinic-b", ["clients:write", "clients:read"]),
    }
    with TestClient(create_app(_settings(database_url, tmp_path, keys))) as client:
        yield Cds(client, keys, api_keys, database_url)


# --- hook requests ---------------------------------------------------------------------------


def observation(
    patient: str, obs_id: str, code: str, value: float, day: str, system: str = MEASURES
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "survey"}]}],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"{day}T10:00:00+01:00",
        "valueQuantity": {"value": value, "system": UCUM, "code": "{score}"},
    }


Scores = tuple[float, float, float, float, int]  # WAI-SR goal, task, bond; SRS; PHQ-9
DAYS = ("2026-03-02", "2026-03-09")
# Alliance falling from session 1 to 2: high risk, with a factor that raises it and actions.
FALLING: list[Scores] = [(4.25, 4.25, 4.5, 38, 14), (2.5, 2.5, 2.75, 28, 15)]
# Middling and strong alliances (the strong one with an SRS dip, so it has an action):
# moderate and low risk with the shipped model.
MIDDLING: list[Scores] = [(3.0, 3.0, 3.0, 33, 12), (3.0, 3.0, 3.0, 33, 12)]
STRONG: list[Scores] = [(4.5, 4.5, 4.5, 39, 4), (4.5, 4.5, 4.5, 35, 4)]
STORED_SESSIONS = [
    {"date": "2026-03-02", "wai": {"goal": 4.25, "task": 4.25, "bond": 4.5}, "srs": {"total": 38}},
    {"date": "2026-03-09", "wai": {"goal": 2.5, "task": 2.5, "bond": 2.75}, "srs": {"total": 28}},
]


def alliance_observations(patient: str, sessions: list[Scores] = FALLING) -> list[dict[str, Any]]:
    """Each session's survey Observations, six per date."""
    found: list[dict[str, Any]] = []
    codes = ("wai-sr-goal", "wai-sr-task", "wai-sr-bond", "srs-total")
    for n, (day, scores) in enumerate(zip(DAYS, sessions, strict=True), start=1):
        for code, value in zip(codes, scores[:4], strict=True):
            found.append(observation(patient, f"{code}-{n}", code, value, day))
        found.append(observation(patient, f"phq9-{n}", "44261-6", scores[4], day, LOINC))
    return found


def searchset(
    resources: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What the EHR answers the `alliance` prefetch template with."""
    entries = [
        {
            "fullUrl": f"https://ehr.example.org/fhir/R4/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [*entries, *(extra or [])],
    }


def hook_request(
    patient: str, prefetch: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": patient},
        **extra,
    }
    if prefetch is not None:
        body["prefetch"] = {"alliance": prefetch}
    return body


def check_card(card: dict[str, Any], expected: dict[str, Any], patient: str) -> None:
    """The card says what /v1/predictions says for the same episode."""
    level, p = expected["risk_level"], expected["probability"]
    assert set(card) == {"uuid", "summary", "indicator", "detail", "source", "links"}
    assert str(uuid.UUID(card["uuid"])) == card["uuid"]
    assert len(card["summary"]) < 140
    assert card["summary"].startswith(f"{level.capitalize()} dropout risk ({p:.0%})")
    assert patient not in card["summary"]
    assert card["indicator"] == INDICATOR[level]
    assert card["source"] == {"label": f"dropout-risk model {CHAMPION}"}
    assert expected["model"]["version"] == CHAMPION
    assert card["links"] == [
        {"label": "Open in dropout-risk", "url": f"{BASE}/ui/clients/{patient}", "type": "absolute"}
    ]
    detail = card["detail"]
    head = f"**Dropout risk {p:.0%} ({level})** at session {expected['landmark_session']};"
    assert detail.startswith(head)
    plain = detail.replace("\\", "")  # Markdown escapes aside
    assert expected["factors"], "the episode should have factors to show"
    for factor in expected["factors"]:
        points = f"{factor['contribution'] * 100:+.1f} points"
        assert f"- {factor['label']}: {factor['direction']} risk, {points}" in plain
    raising = any(f["direction"] == "raises" for f in expected["factors"])
    assert bool(expected["suggested_actions"]) == raising  # actions follow raising factors
    for action in expected["suggested_actions"]:
        assert f"- {action['text']} (Source: {action['source']})" in plain
    assert expected["disclaimer"] in plain
    assert f"Model {CHAMPION}.\n\n" in plain
    # the card says plainly that the network default is not yet checked at this clinic
    assert plain.endswith(
        "Network default model, not yet checked at this clinic: its probabilities may be "
        "off here until it is updated on this clinic's outcomes."
    )


# --- discovery -------------------------------------------------------------------------------


def test_discovery_with_a_valid_es384_or_rs384_token(cds: Cds) -> None:
    for token in (
        sign(cds.keys.ec_a, DISCOVERY_URL),
        sign(cds.keys.rsa_a, DISCOVERY_URL, alg="RS384", kid="a-rsa"),
        sign(cds.keys.ec_b, DISCOVERY_URL, kid="b-ec", iss=ISS_B),
    ):
        response = cds.client.get("/cds-services", headers=bearer(token))
        assert response.status_code == 200, response.text
        [service] = response.json()["services"]
        assert service["id"] == "dropout-risk"
        assert service["hook"] == "patient-view"
        assert service["prefetch"] == {
            "alliance": "Observation?subject={{context.patientId}}&category=survey"
        }
        assert service["title"]
        assert service["description"]


def _refused(response: Any, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    [detail] = response.json()["detail"]
    assert detail["loc"] == "header.authorization"
    assert detail["type"] == "cds_jwt_refused"
    assert reason in detail["msg"]


def test_discovery_without_a_token_is_401(cds: Cds) -> None:
    _refused(cds.client.get("/cds-services"), "Authorization: Bearer")
    _refused(cds.client.get("/cds-services", headers={"Authorization": "Basic x"}), "Bearer")


def test_discovery_with_another_audience_is_401(cds: Cds) -> None:
    for aud in (SERVICE_URL, "https://risk.example/cds-services", f"{DISCOVERY_URL}/"):
        token = sign(cds.keys.ec_a, aud)
        _refused(cds.client.get("/cds-services", headers=bearer(token)), "audience")


# --- patient-view: prefetch ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sessions", "level"),
    [(FALLING, "high"), (MIDDLING, "moderate"), (STRONG, "low")],
    ids=["falling", "middling", "strong"],
)
def test_prefetch_gives_one_card_matching_the_v1_prediction(
    cds: Cds, sessions: list[Scores], level: str
) -> None:
    bundle = searchset(alliance_observations("P-1", sessions))
    [card] = cds.cards(hook_request("P-1", bundle))
    expected = cds.predict(episode_from_bundle(bundle).episode)
    assert expected["risk_level"] == level  # each indicator is seen once
    assert expected["landmark_session"] == 2
    check_card(card, expected, "P-1")
    # the main reason: the largest factor pointing the way of the level, without numbers
    wanted = "lowers" if level == "low" else "raises"
    pointing = [f for f in expected["factors"] if f["direction"] == wanted]
    assert pointing
    main = max(pointing, key=lambda f: abs(f["contribution"]))
    reason = re.sub(r"\s*\([^()]*\)$", "", main["label"])
    assert (
        card["summary"]
        == f"{level.capitalize()} dropout risk ({expected['probability']:.0%}): {reason}"
    )
    if level == "high":
        assert main["code"] == "alliance_decline"


def test_prefetch_with_rs384_token(cds: Cds) -> None:
    bundle = searchset(alliance_observations("P-1"))
    token = sign(cds.keys.rsa_a, alg="RS384", kid="a-rsa")
    [card] = cds.cards(hook_request("P-1", bundle), token)
    check_card(card, cds.predict(episode_from_bundle(bundle).episode), "P-1")


def test_other_surveys_and_search_outcomes_in_prefetch_are_ignored(cds: Cds) -> None:
    ours = alliance_observations("P-1")
    gad7 = observation("P-1", "gad7-1", "70274-6", 12, "2026-03-02", LOINC)
    outcome = {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
        },
        "search": {"mode": "outcome"},
    }
    mixed = searchset([*ours[:6], gad7, *ours[6:]], [outcome])
    [card] = cds.cards(hook_request("P-1", mixed))
    [plain] = cds.cards(hook_request("P-1", searchset(ours)))
    assert card["detail"] == plain["detail"]
    assert card["summary"] == plain["summary"]
    check_card(card, cds.predict(episode_from_bundle(searchset(ours)).episode), "P-1")


def _gad7(code: Any) -> dict[str, Any]:
    return {**observation("P-1", "gad7-1", "70274-6", 12, "2026-03-02", LOINC), "code": code}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda b: b["entry"][0].__setitem__("search", None), 200),
        (lambda b: b["entry"].append({"resource": _gad7("70274-6")}), 200),
        (lambda b: b["entry"].append({"resource": _gad7(["70274-6"])}), 200),
        (lambda b: b["entry"].append({"resource": _gad7({"coding": "70274-6"})}), 200),
        (lambda b: b["entry"].append({"resource": _gad7({"coding": [{"system": [1]}]})}), 200),
        (lambda b: b["entry"].append({"resource": _gad7({"coding": [{"system": {}}]})}), 200),
        (lambda b: b["entry"].append({"resource": "Observation/1"}), 200),
        (lambda b: b["entry"].append("Observation/1"), 200),
        (lambda b: b["entry"][0].__setitem__("search", "match"), 422),
        (lambda b: b["entry"][0].__setitem__("search", ["outcome"]), 422),
    ],
    ids=[
        "search-null",
        "code-string",
        "code-list",
        "coding-string",
        "system-list",
        "system-object",
        "resource-string",
        "entry-string",
        "search-string",
        "search-list",
    ],
)
def test_malformed_prefetch_entries_are_ignored_or_422_never_500(
    cds: Cds, change: Any, status: int
) -> None:
    """Prefetch is the caller's untyped JSON: an entry that is not one of ours is ignored
    whatever its shape; one of ours that breaks the Bundle rules is a 422."""
    bundle = searchset(alliance_observations("P-1"))
    change(bundle)
    response = cds.call(hook_request("P-1", bundle))
    assert response.status_code == status, response.text
    if status == 200:
        [card] = response.json()["cards"]
        expected = cds.predict(episode_from_bundle(searchset(alliance_observations("P-1"))).episode)
        check_card(card, expected, "P-1")
    else:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_prefetch_of_another_patient_is_422(cds: Cds) -> None:
    response = cds.call(hook_request("P-1", searchset(alliance_observations("P-2"))))
    assert response.status_code == 422
    assert "is not the context's patient" in response.text


def test_a_bad_prefetch_observation_is_422_not_ignored(cds: Cds) -> None:
    observations = alliance_observations("P-1")
    observations[3]["valueQuantity"]["value"] = 45  # SRS total is 0-40
    response = cds.call(hook_request("P-1", searchset(observations)))
    assert response.status_code == 422
    assert "outside 0 to 40" in response.text


def test_a_key_given_twice_is_422_naming_it(cds: Cds) -> None:
    hook = json.dumps(hook_request("P-1", searchset(alliance_observations("P-1"))))
    twice = hook.replace('"patientId": "P-1"', '"patientId": "P-1", "patientId": "P-2"')
    headers = {**bearer(sign(cds.keys.ec_a)), "Content-Type": "application/json"}
    response = cds.client.post(SERVICE, content=twice, headers=headers)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert (detail["loc"], detail["type"]) == ("body", "json_duplicate_key")
    assert detail["msg"].startswith("the key 'patientId' appears twice in one object")
    mixed = {**bearer(sign(cds.keys.ec_a)), "Content-Type": "Application/Json"}
    response = cds.client.post(SERVICE, content=hook, headers=mixed)
    assert response.status_code == 200, response.text
    assert len(response.json()["cards"]) == 1


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_an_implausible_prefetch_date_is_422_naming_it(cds: Cds, day: str) -> None:
    observations = alliance_observations("P-1")
    observations[0]["effectiveDateTime"] = f"{day}T10:00:00+01:00"
    response = cds.call(hook_request("P-1", searchset(observations)))
    assert response.status_code == 422
    [issue] = response.json()["issue"]
    assert issue["diagnostics"] == (
        f"effectiveDateTime {outside_date_window(date.fromisoformat(day))}"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"hook": "order-select"},
        {"hookInstance": "not-a-uuid"},
        {"context": {"userId": "Practitioner/dr-1", "patientId": "bad id"}},
        {"context": {"userId": "Practitioner/dr-1", "patientId": ".."}},
        {"context": {"userId": "Practitioner/dr-1", "patientId": "P-1", "encounterId": "."}},
        {"context": {"patientId": "P-1"}},
        {"fhirAuthorization": {"access_token": "x"}},
        {"unexpected": 1},
    ],
    ids=[
        "hook",
        "instance",
        "patient-id",
        "patient-id-dots",
        "encounter-id-dot",
        "no-user",
        "auth-without-server",
        "extra-field",
    ],
)
def test_bad_hook_request_is_422(cds: Cds, change: dict[str, Any]) -> None:
    response = cds.call({**hook_request("P-1"), **change})
    assert response.status_code == 422, response.text


# --- patient-view: stored sessions, isolation ------------------------------------------------


def test_without_prefetch_the_clinics_stored_sessions_are_used(cds: Cds) -> None:
    cds.store("a", "S-1", STORED_SESSIONS)
    stored = cds.client.get("/v1/clients/S-1/risk", headers=cds.auth("write_a"))
    assert stored.status_code == 200
    expected = stored.json()["prediction"]
    [card] = cds.cards(hook_request("S-1"))
    check_card(card, expected, "S-1")
    episode = {
        "client_id": "S-1",
        "age": 34,
        "sessions": [{**s, "number": n} for n, s in enumerate(STORED_SESSIONS, start=1)],
    }
    assert cds.predict(episode)["probability"] == expected["probability"]


def test_unknown_patient_gets_no_card(cds: Cds) -> None:
    assert cds.cards(hook_request("nobody")) == []
    # a patient with a client record but no sessions yet: nothing to score either
    put = cds.client.put("/v1/clients/S-0", json={"age": 40}, headers=cds.auth("write_a"))
    assert put.status_code == 200
    assert cds.cards(hook_request("S-0")) == []


def test_a_patient_of_another_clinic_is_unknown(cds: Cds) -> None:
    cds.store("b", "B-1", STORED_SESSIONS)
    assert cds.cards(hook_request("B-1")) == []  # as clinic-a's EHR
    token_b = sign(cds.keys.ec_b, kid="b-ec", iss=ISS_B)
    [card] = cds.cards(hook_request("B-1"), token_b)  # as clinic-b's EHR
    assert card["links"][0]["url"] == f"{BASE}/ui/clients/B-1"


# --- refused tokens --------------------------------------------------------------------------


def test_replayed_token_is_refused(cds: Cds) -> None:
    bundle = searchset(alliance_observations("P-1"))
    token = sign(cds.keys.ec_a)
    assert len(cds.cards(hook_request("P-1", bundle), token)) == 1
    _refused(cds.call(hook_request("P-1", bundle), token), "token replayed")


def test_replay_against_another_worker_is_refused(cds: Cds, tmp_path: Path) -> None:
    """The jti cache is the database: a second app (another worker) on it refuses too."""
    token = sign(cds.keys.ec_a, DISCOVERY_URL)
    assert cds.client.get("/cds-services", headers=bearer(token)).status_code == 200
    (tmp_path / "other").mkdir()
    settings = _settings(cds.database_url, tmp_path / "other", cds.keys)
    with TestClient(create_app(settings)) as other:
        _refused(other.get("/cds-services", headers=bearer(token)), "token replayed")
        fresh = sign(cds.keys.ec_a, DISCOVERY_URL)
        assert other.get("/cds-services", headers=bearer(fresh)).status_code == 200


def test_concurrent_replays_let_exactly_one_call_through(cds: Cds, tmp_path: Path) -> None:
    """The same token sent at once to two workers, several times each: one 200."""
    (tmp_path / "other").mkdir()
    settings = _settings(cds.database_url, tmp_path / "other", cds.keys)
    token = sign(cds.keys.ec_a, DISCOVERY_URL)
    start = threading.Barrier(8)
    statuses: list[int] = []

    def call(client: TestClient) -> None:
        start.wait(timeout=10)
        statuses.append(client.get("/cds-services", headers=bearer(token)).status_code)

    with TestClient(create_app(settings)) as other:
        # FastAPI builds its routes on an app's first request, from the module-level routers
        # both apps share: one request each first, so the burst races on the jti only
        for client in (cds.client, other):
            warm = client.get("/cds-services", headers=bearer(sign(cds.keys.ec_a, DISCOVERY_URL)))
            assert warm.status_code == 200
        threads = [
            threading.Thread(target=call, args=(cds.client if i % 2 else other,)) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(statuses) == [200] + [401] * 7


def test_hs256_token_is_refused(cds: Cds) -> None:
    """The key confusion attack: HMAC with the issuer's public key as the secret."""
    public_pem = cds.keys.ec_a.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = handmade({"alg": "HS256", "typ": "JWT", "kid": "a-ec"}, SERVICE_URL, public_pem)
    _refused(cds.call(hook_request("P-1"), token), "algorithm not allowed")


def test_unsigned_token_is_refused(cds: Cds) -> None:
    token = handmade({"alg": "none", "typ": "JWT", "kid": "a-ec"}, SERVICE_URL, None)
    _refused(cds.call(hook_request("P-1"), token), "algorithm not allowed")


def test_expired_token_is_refused(cds: Cds) -> None:
    token = sign(cds.keys.ec_a, age=200, lifetime=120)  # expired 80 s ago (30 s leeway)
    _refused(cds.call(hook_request("P-1"), token), "expired")


def test_long_lived_token_is_refused(cds: Cds) -> None:
    token = sign(cds.keys.ec_a, lifetime=3600)
    _refused(cds.call(hook_request("P-1"), token), "longer than 5 minutes")


def test_token_for_another_audience_is_refused(cds: Cds) -> None:
    for aud in (DISCOVERY_URL, "https://risk.example/cds-services/dropout-risk"):
        token = sign(cds.keys.ec_a, aud)
        _refused(cds.call(hook_request("P-1"), token), "audience")


OTHER_SERVICE = "https://other.example/cds-services/dropout-risk"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "other.example"}


def test_token_for_another_service_with_its_host_is_refused(cds: Cds) -> None:
    """The audience is the configured URL: a token minted for another CDS service stays
    refused when the call carries that service's Host (and forwarded headers), whether the
    server reads them (an absolute https URL, as behind a proxy-aware server) or not."""
    for url, headers in (
        (OTHER_SERVICE, FORWARDED),
        (SERVICE, {"Host": "other.example", **FORWARDED}),
    ):
        token = sign(cds.keys.ec_a, OTHER_SERVICE)
        sent = {**bearer(token), **headers}
        _refused(cds.client.post(url, json=hook_request("P-1"), headers=sent), "audience")
    token = sign(cds.keys.ec_a, "https://other.example/cds-services")
    discovery = cds.client.get("https://other.example/cds-services", headers=bearer(token))
    _refused(discovery, "audience")


def test_the_public_url_is_the_audience_and_the_card_link(
    database_url: str, tmp_path: Path, keys: Keys
) -> None:
    public = "https://risk.clinic.example/dropout"
    settings = _settings(database_url, tmp_path, keys, public_url=public + "/")
    hook = hook_request("P-1", searchset(alliance_observations("P-1")))
    with TestClient(create_app(settings)) as client:
        accepted = client.post(
            SERVICE, json=hook, headers=bearer(sign(keys.ec_a, public + SERVICE))
        )
        refused = client.post(SERVICE, json=hook, headers=bearer(sign(keys.ec_a, SERVICE_URL)))
    assert accepted.status_code == 200, accepted.text
    [card] = accepted.json()["cards"]
    assert card["links"][0]["url"] == f"{public}/ui/clients/P-1"
    _refused(refused, "audience")


def test_unknown_issuer_is_refused(cds: Cds) -> None:
    token = sign(cds.keys.ec_a, iss="https://evil.example.org")
    _refused(cds.call(hook_request("P-1"), token), "issuer is not trusted")


def test_token_signed_by_a_key_not_in_the_jwks_is_refused(cds: Cds) -> None:
    forged = sign(cds.keys.rogue)  # claims kid a-ec, signed with another P-384 key
    _refused(cds.call(hook_request("P-1"), forged), "signature does not verify")
    unknown_kid = sign(cds.keys.rogue, kid="rogue")
    _refused(cds.call(hook_request("P-1"), unknown_kid), "unknown kid")
    # clinic-b's key is registered, but not for clinic-a's issuer
    crossed = sign(cds.keys.ec_b, kid="b-ec")
    _refused(cds.call(hook_request("P-1"), crossed), "unknown kid")


# --- fhirServer is never fetched -------------------------------------------------------------


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, address = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.accepted.append(address)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


def test_fhir_server_is_never_fetched(cds: Cds, listener: Listener) -> None:
    server = f"http://127.0.0.1:{listener.port}/fhir"
    auth = {"access_token": "secret", "token_type": "Bearer", "expires_in": 300, "scope": "x"}
    bundle = searchset(alliance_observations("P-1"))
    with_prefetch = hook_request("P-1", bundle, fhirServer=server, fhirAuthorization=auth)
    [card] = cds.cards(with_prefetch)
    check_card(card, cds.predict(episode_from_bundle(bundle).episode), "P-1")
    # without prefetch, the service could be tempted to fetch: it uses stored data only
    assert cds.cards(hook_request("P-2", fhirServer=server, fhirAuthorization=auth)) == []
    time.sleep(0.2)  # a connection attempt made in the background would be accepted by now
    assert listener.accepted == []
    # the listener does see connections: the assertion above could fail
    with socket.create_connection(("127.0.0.1", listener.port), timeout=2):
        pass
    deadline = time.monotonic() + 2
    while not listener.accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(listener.accepted) == 1


# --- audit -----------------------------------------------------------------------------------


def test_patient_view_is_audited(cds: Cds, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = searchset(alliance_observations("P-9"))
    assert len(cds.cards(hook_request("P-9", bundle))) == 1
    out = audit_trail(capsys, cds.database_url, "clinic-a")
    assert f"cds:{ISS_A}" in out
    rows = [line.split("\t") for line in out.splitlines() if "\tcds.patient_view\t" in line]
    assert len(rows) == 1
    [at, actor, _, client, model] = rows[0]
    assert datetime.fromisoformat(at) > datetime.now(UTC) - timedelta(minutes=5)
    assert actor == f"cds:{ISS_A}|dr-1"
    assert model == CHAMPION
    assert client not in ("P-9", "-")  # a pseudonym
    # clinic-b's trail does not show clinic-a's call
    assert "cds.patient_view" not in audit_trail(capsys, cds.database_url, "clinic-b")


def audit_trail(capsys: pytest.CaptureFixture[str], database_url: str, clinic: str) -> str:
    """What `dropout-risk audit` prints for the clinic."""
    capsys.readouterr()
    argv = ["audit", "--clinic", clinic, "--since", "2000-01-01", "--database-url", database_url]
    assert run(argv) == 0
    return capsys.readouterr().out
