"""The FHIR R4 endpoints end to end, in-process: $predict with the documented example Bundle
(the same risk as /v1/predictions), OperationOutcomes for bad input, auth and media types,
the stored latest risk as a searchset (clinic-scoped), and the CapabilityStatement."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from service.app import create_app
from service.core.prediction import Prediction
from service.core.settings import Settings
from service.core.standing import standing_note
from service.interop.fhir.reading import episode_from_bundle
from tests.support.helpers import REPO, create_key
from training.cli import run
from training.registry import Registry
from training.vocabulary import latest_date, outside_date_window

DOCS = REPO / "docs" / "fhir.md"
FHIR_JSON = "application/fhir+json"
PREDICT = "/fhir/r4/RiskAssessment/$predict"
SEARCH = "/fhir/r4/RiskAssessment"
CHAMPION = str(Registry(REPO / "models").read()["champion"])
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
# What docs/fhir.md says the example's RiskAssessment.basis is.
EXAMPLE_BASIS = [
    *(
        f"Observation/{kind}-{n}"
        for n in (1, 2)
        for kind in ("wai-goal", "wai-task", "wai-bond", "srs", "ors", "phq9")
    ),
    "QuestionnaireResponse/wai-3",
]


def _json_blocks(markdown: str) -> list[Any]:
    return [json.loads(m) for m in re.findall(r"```json\n(.*?)\n```", markdown, flags=re.S)]


def docs_example_bundle() -> dict[str, Any]:
    """The example Bundle of docs/fhir.md (the first JSON block that is a Bundle)."""
    blocks = _json_blocks(DOCS.read_text(encoding="utf-8"))
    return copy.deepcopy(next(b for b in blocks if b.get("resourceType") == "Bundle"))


def docs_example_outcome() -> dict[str, Any]:
    """The OperationOutcome docs/fhir.md shows for an SRS total of 45."""
    blocks = _json_blocks(DOCS.read_text(encoding="utf-8"))
    return next(b for b in blocks if b.get("resourceType") == "OperationOutcome")


def _entry_of(bundle: dict[str, Any], resource_id: str) -> int:
    ids = [e["resource"].get("id") for e in bundle["entry"]]
    return ids.index(resource_id)


@dataclass(frozen=True)
class Api:
    client: TestClient
    keys: dict[str, str]
    database_url: str

    def auth(self, which: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[which]}"}

    def predict_fhir(
        self, body: bytes | dict[str, Any], content_type: str = FHIR_JSON, key: str = "predict"
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {**self.auth(key), "Content-Type": content_type}
        return self.client.post(PREDICT, content=raw, headers=headers)

    def predict_v1(self, episode: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/v1/predictions", json=episode, headers=self.auth("predict"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def search(self, subject: str, key: str = "read_a") -> Any:
        return self.client.get(SEARCH, params={"subject": subject}, headers=self.auth(key))


PUBLIC = "https://risk.clinic.example/dropout"  # DROPOUT_RISK_PUBLIC_URL, with a path prefix
FOREIGN = {
    "Host": "other.example",
    "X-Forwarded-Host": "other.example",
    "X-Forwarded-Proto": "https",
}


def _build(url: str, folder: Path) -> Iterator[Api]:
    keys = {
        "predict": create_key(url, "clinic-a", ["predict"]),
        "read_a": create_key(url, "clinic-a", ["clients:read"]),
        "write_a": create_key(url, "clinic-a", ["clients:write"]),
        "read_b": create_key(url, "clinic-b", ["clients:read"]),
    }
    settings = Settings(
        models_dir=REPO / "models",
        database_url=url,
        pseudonym_key_file=folder / "pseudonym.key",
        cds_issuers_file=folder / "no-issuers.json",
        reload_seconds=0.0,
        public_url=PUBLIC + "/",
    )
    with TestClient(create_app(settings)) as client:
        yield Api(client, keys, url)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Stateless $predict and metadata: one SQLite database (for the keys) is enough."""
    folder = tmp_path_factory.mktemp("fhir-api")
    yield from _build(f"sqlite:///{folder / 'service.db'}", folder)


@pytest.fixture
def stored_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """Stored clients: on each database kind (tests/support/storage.py)."""
    yield from _build(database_url, tmp_path)


def _outcome(response: Any, status: int = 422) -> list[dict[str, Any]]:
    """The OperationOutcome's issues, after checking the status, media type and R4B model."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    OperationOutcome.model_validate(body)
    assert body["resourceType"] == "OperationOutcome"
    issues: list[dict[str, Any]] = body["issue"]
    assert issues
    return issues


# --- $predict ------------------------------------------------------------------------------


def test_predict_docs_example_matches_v1_prediction(api: Api) -> None:
    bundle = docs_example_bundle()
    before = datetime.now(UTC)
    response = api.predict_fhir(bundle)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    RiskAssessment.model_validate(body)

    parsed = episode_from_bundle(bundle)
    assert parsed.patient_id == "A-1001"
    assert parsed.episode["age"] == 26  # what the docs say the example is read as
    assert [s["number"] for s in parsed.episode["sessions"]] == [1, 2, 3]
    expected = api.predict_v1(parsed.episode)

    assert body["resourceType"] == "RiskAssessment"
    assert body["status"] == "final"
    assert body["subject"] == {"reference": "Patient/A-1001"}
    [prediction] = body["prediction"]
    assert prediction["probabilityDecimal"] == expected["probability"]
    assert 0 < prediction["probabilityDecimal"] < 1
    assert prediction["qualitativeRisk"]["coding"][0]["system"] == RISK_PROBABILITY
    assert prediction["qualitativeRisk"]["coding"][0]["code"] == expected["risk_level"]
    labels = [f["label"] for f in expected["factors"]]
    assert prediction["rationale"] == ("; ".join(labels) or "No single factor stands out")
    assert body["basis"] == [{"reference": r} for r in EXAMPLE_BASIS]
    assert parsed.basis == EXAMPLE_BASIS

    method = body["method"]
    assert method["coding"][0]["system"] == "urn:dropout-risk:model"
    assert method["coding"][0]["code"] == expected["model"]["version"] == CHAMPION
    assert CHAMPION in method["text"]
    assert f"landmark session {expected['landmark_session']}" in method["text"]
    actions = " ".join(a["text"] for a in expected["suggested_actions"])
    assert body.get("mitigation", "") == actions
    assert body["note"] == [
        {"text": expected["disclaimer"]},
        {"text": standing_note(Prediction.from_json(expected))},
    ]
    occurred = datetime.fromisoformat(body["occurrenceDateTime"])
    assert occurred.utcoffset() is not None
    assert before - timedelta(seconds=2) <= occurred <= datetime.now(UTC) + timedelta(seconds=2)


def test_plain_json_is_accepted_too(api: Api) -> None:
    bundle = docs_example_bundle()
    fhir_json = api.predict_fhir(bundle).json()
    plain = api.predict_fhir(bundle, content_type="application/json; charset=utf-8")
    assert plain.status_code == 200
    assert plain.json()["prediction"] == fhir_json["prediction"]


def test_predict_from_one_session_scores_at_the_first_landmark(api: Api) -> None:
    """The shipped model scores from session 1, so a Bundle of one date is enough."""
    current = api.client.get("/v1/models/current", headers=api.auth("predict")).json()
    assert current["landmarks"][0] == 1
    bundle = docs_example_bundle()
    bundle["entry"] = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Patient"
        or e["resource"].get("effectiveDateTime", "").startswith("2026-03-02")
    ]
    assert len(bundle["entry"]) == 7
    response = api.predict_fhir(bundle)
    assert response.status_code == 200, response.text
    body = response.json()
    RiskAssessment.model_validate(body)
    expected = api.predict_v1(episode_from_bundle(bundle).episode)
    assert expected["landmark_session"] == 1
    assert "landmark session 1;" in body["method"]["text"]
    assert body["prediction"][0]["probabilityDecimal"] == expected["probability"]
    assert len(body["basis"]) == 6


def test_out_of_range_value_is_the_documented_outcome(api: Api) -> None:
    bundle = docs_example_bundle()
    srs = _entry_of(bundle, "srs-1")
    bundle["entry"][srs]["resource"]["valueQuantity"]["value"] = 45
    issues = _outcome(api.predict_fhir(bundle))
    documented = docs_example_outcome()
    assert srs == 4  # the docs' example names entry 4
    assert issues == documented["issue"]


@pytest.mark.parametrize(
    ("body", "code", "expression", "fragment"),
    [
        (b"{not json", "structure", "Bundle", "not valid JSON"),
        (b"[]", "invalid", "Bundle", "got a list"),
        (
            json.dumps({"resourceType": "Patient", "id": "A-1001"}).encode(),
            "invalid",
            "Bundle.resourceType",
            "send a Bundle",
        ),
        (
            json.dumps({"resourceType": "Bundle", "type": "collection"}).encode(),
            "required",
            "Bundle.entry",
            "nothing to score",
        ),
    ],
    ids=["not-json", "a-list", "a-patient", "no-entries"],
)
def test_unreadable_bodies_give_an_operation_outcome(
    api: Api, body: bytes, code: str, expression: str, fragment: str
) -> None:
    [issue] = _outcome(api.predict_fhir(body))
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert issue["expression"] == [expression]
    assert fragment in issue["diagnostics"]


def test_unknown_observation_code_is_not_supported(api: Api) -> None:
    bundle = docs_example_bundle()
    at = _entry_of(bundle, "phq9-2")
    # GAD-7 total: a survey score this service does not read
    bundle["entry"][at]["resource"]["code"] = {
        "coding": [{"system": "http://loinc.org", "code": "70274-6"}]
    }
    [issue] = _outcome(api.predict_fhir(bundle))
    assert issue["code"] == "not-supported"
    assert issue["expression"] == [f"Bundle.entry[{at}].resource.code"]
    assert "none of the measures read" in issue["diagnostics"]


def test_every_problem_is_reported_at_once(api: Api) -> None:
    bundle = docs_example_bundle()
    ors = _entry_of(bundle, "ors-2")
    phq9 = _entry_of(bundle, "phq9-1")
    bundle["entry"][ors]["resource"]["valueQuantity"]["value"] = -1
    bundle["entry"][phq9]["resource"]["valueQuantity"]["value"] = 13.5  # PHQ-9 is whole
    bundle["entry"].append({"resource": {"resourceType": "Condition", "id": "c-1"}})
    issues = _outcome(api.predict_fhir(bundle))
    found = {(i["code"], i["expression"][0]) for i in issues}
    assert found == {
        ("value", f"Bundle.entry[{ors}].resource.valueQuantity.value"),
        ("value", f"Bundle.entry[{phq9}].resource.valueQuantity.value"),
        ("not-supported", f"Bundle.entry[{len(bundle['entry']) - 1}].resource.resourceType"),
    }


# Two days past the last plausible date (today + 1): still refused if the run crosses midnight
TOO_LATE = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()


@pytest.mark.parametrize("day", ["0001-01-01", "1989-12-31", "9999-12-31", TOO_LATE])
def test_implausible_dates_are_refused_where_they_are_written(api: Api, day: str) -> None:
    """effectiveDateTime and authored outside 1990-01-01..today+1 (UTC): each named, with
    its value and the window (training/vocabulary.py)."""
    bundle = docs_example_bundle()
    srs, wai = _entry_of(bundle, "srs-1"), _entry_of(bundle, "wai-3")
    bundle["entry"][srs]["resource"]["effectiveDateTime"] = f"{day}T10:00:00+01:00"
    bundle["entry"][wai]["resource"]["authored"] = f"{day}T11:30:00+01:00"
    issues = _outcome(api.predict_fhir(bundle))
    message = outside_date_window(date.fromisoformat(day))
    assert {(i["code"], i["expression"][0], i["diagnostics"]) for i in issues} == {
        (
            "value",
            f"Bundle.entry[{srs}].resource.effectiveDateTime",
            f"effectiveDateTime {message}",
        ),
        ("value", f"Bundle.entry[{wai}].resource.authored", f"authored {message}"),
    }


def test_the_last_plausible_date_is_accepted(api: Api) -> None:
    bundle = docs_example_bundle()
    wai = _entry_of(bundle, "wai-3")
    bundle["entry"][wai]["resource"]["authored"] = latest_date().isoformat()
    assert api.predict_fhir(bundle).status_code == 200


@pytest.mark.parametrize("patient", [".", "..", "..."])
def test_a_patient_id_of_dots_only_is_refused(api: Api, patient: str) -> None:
    bundle = docs_example_bundle()
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["id"] = patient
        else:
            entry["resource"]["subject"] = {"reference": f"Patient/{patient}"}
    issues = _outcome(api.predict_fhir(bundle))
    assert any("subject" in i["expression"][0] for i in issues), issues
    assert api.search(f"Patient/{patient}").json()["detail"][0]["loc"] == "query.subject"


def test_a_key_given_twice_is_an_operation_outcome_naming_it(api: Api) -> None:
    raw = json.dumps(docs_example_bundle())
    part = '"resourceType": "Bundle"'
    assert raw.count(part) == 1
    twice = raw.replace(part, part + ', "type": "collection"', 1)
    assert twice.count('"type": "collection"') == 2
    [issue] = _outcome(api.predict_fhir(twice.encode()))
    assert (issue["code"], issue["expression"]) == ("structure", ["Bundle"])
    assert "the key 'type' appears twice in one object" in issue["diagnostics"]


@pytest.mark.parametrize("kind", ["Application/FHIR+JSON", "APPLICATION/JSON; Charset=UTF-8"])
def test_media_types_are_case_insensitive(api: Api, kind: str) -> None:
    assert api.predict_fhir(docs_example_bundle(), content_type=kind).status_code == 200


def test_other_media_type_is_415(api: Api) -> None:
    raw = json.dumps(docs_example_bundle()).encode()
    response = api.predict_fhir(raw, content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["detail"][0]["type"] == "unsupported_media_type"


def test_predict_needs_a_predict_key(api: Api) -> None:
    raw = json.dumps(docs_example_bundle()).encode()
    missing = api.client.post(PREDICT, content=raw, headers={"Content-Type": FHIR_JSON})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"][0]["type"] == "unauthenticated"
    read_only = api.predict_fhir(raw, key="read_a")
    assert read_only.status_code == 403
    assert "'predict'" in read_only.json()["detail"][0]["msg"]


# --- search --------------------------------------------------------------------------------

SESSION_1 = {
    "date": "2026-03-02",
    "wai": {"goal": 4.25, "task": 4.25, "bond": 4.5},
    "srs": {"total": 38},
    "phq9": {"total": 14},
}
SESSION_2 = {"date": "2026-03-09", "wai": {"goal": 3.0, "task": 3.0, "bond": 3.25}}


def _store(api: Api, client_id: str, number: int, session: dict[str, Any]) -> dict[str, Any]:
    """PUT a session (the client first, for session 1); returns the recomputed risk."""
    headers = api.auth("write_a")
    if number == 1:
        put = api.client.put(
            f"/v1/clients/{client_id}", json={"age": 31, "gender": "male"}, headers=headers
        )
        assert put.status_code == 200, put.text
    stored = api.client.put(
        f"/v1/clients/{client_id}/sessions/{number}", json=session, headers=headers
    )
    assert stored.status_code == 200, stored.text
    risk: dict[str, Any] = stored.json()["risk"]
    assert risk is not None
    return risk


def _searchset(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    Bundle.model_validate(body)
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "searchset"
    return body


def test_search_returns_the_latest_stored_risk_of_the_clinic(stored_api: Api) -> None:
    api = stored_api
    first = _store(api, "X-1", 1, SESSION_1)
    found = _searchset(api.search("Patient/X-1"))
    assert found["total"] == 1
    [entry] = found["entry"]
    resource = entry["resource"]
    RiskAssessment.model_validate(resource)
    assert resource["subject"] == {"reference": "Patient/X-1"}
    assert resource["prediction"][0]["probabilityDecimal"] == first["probability"]
    [coding] = resource["prediction"][0]["qualitativeRisk"]["coding"]
    assert (coding["system"], coding["code"]) == (RISK_PROBABILITY, first["risk_level"])
    assert resource["method"]["coding"][0]["code"] == CHAMPION
    assert re.fullmatch(r"ra-\d+", resource["id"])
    assert entry["fullUrl"] == f"{PUBLIC}/fhir/r4/RiskAssessment/{resource['id']}"
    assert entry["search"] == {"mode": "match"}
    [link] = found["link"]
    assert link["relation"] == "self"
    self_url = urlsplit(link["url"])
    assert (self_url.scheme, self_url.netloc, self_url.path) == (
        "https",
        "risk.clinic.example",
        "/dropout/fhir/r4/RiskAssessment",
    )
    assert parse_qs(self_url.query) == {"subject": ["Patient/X-1"]}
    stored = api.client.get("/v1/clients/X-1/risk", headers=api.auth("read_a")).json()
    assert stored["prediction"]["probability"] == first["probability"]
    occurred = datetime.fromisoformat(resource["occurrenceDateTime"])
    assert occurred == datetime.fromisoformat(stored["computed_at"]).replace(microsecond=0)

    # a second session: the search answers the newer risk, still one resource
    second = _store(api, "X-1", 2, SESSION_2)
    assert second["landmark_session"] == 2
    again = _searchset(api.search("Patient/X-1"))
    assert again["total"] == 1
    latest = again["entry"][0]["resource"]
    assert latest["prediction"][0]["probabilityDecimal"] == second["probability"]
    assert latest["id"] != resource["id"]
    assert "landmark session 2;" in latest["method"]["text"]


def test_search_does_not_reveal_other_clinics_or_unknown_patients(stored_api: Api) -> None:
    api = stored_api
    _store(api, "X-2", 1, SESSION_1)
    assert _searchset(api.search("Patient/X-2"))["total"] == 1
    for subject, key in [("Patient/X-2", "read_b"), ("Patient/nobody", "read_a")]:
        empty = _searchset(api.search(subject, key=key))
        assert empty["total"] == 0
        assert "entry" not in empty


def test_search_reads_are_audited(stored_api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api = stored_api
    _store(api, "X-3", 1, SESSION_1)
    _searchset(api.search("Patient/X-3"))
    capsys.readouterr()
    argv = ["audit", "--clinic", "clinic-a", "--since", "2000-01-01"]
    assert run([*argv, "--database-url", api.database_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    reads = [line.split("\t") for line in lines if "\tfhir.risk.read\t" in line]
    assert len(reads) == 1
    assert reads[0][1].startswith("key:")
    assert reads[0][4] == CHAMPION
    assert "X-3" not in "\n".join(lines)  # clients are pseudonyms in the audit trail


@pytest.mark.parametrize(
    "subject", ["Group/1", "Patient/", "Patient/bad id", "patient/X-1", "Patient/X-1/_history/2"]
)
def test_search_refuses_a_bad_subject(api: Api, subject: str) -> None:
    response = api.search(subject)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "query.subject"


def test_search_needs_a_subject_and_a_read_key(api: Api) -> None:
    assert api.client.get(SEARCH, headers=api.auth("read_a")).status_code == 422
    assert api.client.get(SEARCH, params={"subject": "Patient/X-1"}).status_code == 401
    assert api.search("Patient/X-1", key="predict").status_code == 403
    assert api.search("Patient/X-1", key="write_a").status_code == 403


# --- metadata ------------------------------------------------------------------------------


def test_metadata_never_reflects_a_foreign_host(api: Api) -> None:
    """Host and X-Forwarded-* are the caller's to choose: the statement names the configured
    URL whatever they say, and so does a searchset's self link."""
    for response in (
        api.client.get("/fhir/r4/metadata", headers=FOREIGN),
        api.client.get("https://other.example/fhir/r4/metadata"),  # as a proxy-aware server
    ):
        assert response.json()["implementation"]["url"] == f"{PUBLIC}/fhir/r4"
        assert "other.example" not in response.text
    search = api.client.get(
        SEARCH, params={"subject": "Patient/nobody"}, headers={**api.auth("read_a"), **FOREIGN}
    )
    assert search.json()["link"][0]["url"].startswith(f"{PUBLIC}/fhir/r4/RiskAssessment?")


def test_metadata_without_a_public_url_names_the_bind_address(tmp_path: Path) -> None:
    settings = Settings(
        models_dir=REPO / "models",
        database_url=f"sqlite:///{tmp_path / 'service.db'}",
        pseudonym_key_file=tmp_path / "pseudonym.key",
        cds_issuers_file=tmp_path / "no-issuers.json",
        host="127.0.0.1",
        port=8123,
    )
    with TestClient(create_app(settings)) as client:
        body = client.get("/fhir/r4/metadata", headers=FOREIGN).json()
    assert body["implementation"]["url"] == "http://127.0.0.1:8123/fhir/r4"


def test_metadata_is_an_r4_capability_statement(api: Api) -> None:
    response = api.client.get("/fhir/r4/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    CapabilityStatement.model_validate(body)
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["kind"] == "instance"
    assert "json" in body["format"]
    assert body["implementation"]["url"] == f"{PUBLIC}/fhir/r4"
    [rest] = body["rest"]
    assert rest["mode"] == "server"
    [resource] = [r for r in rest["resource"] if r["type"] == "RiskAssessment"]
    assert {"code": "search-type"} in resource["interaction"]
    assert [(p["name"], p["type"]) for p in resource["searchParam"]] == [("subject", "reference")]
    assert [op["name"] for op in resource["operation"]] == ["predict"]
    assert "0 to 1" in rest["documentation"]
