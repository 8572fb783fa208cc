"""service.interop.fhir without a server: Bundles in, RiskAssessment and friends out."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from service.core.prediction import Prediction
from service.core.schemas import EpisodeIn
from service.core.standing import standing_note
from service.interop.fhir import codes, reading, writing
from service.scoring.episodes import wai_subscales
from tests.support.helpers import REPO
from training.vocabulary import WAI_SR_ITEMS

DOCS = REPO / "docs" / "fhir.md"
CATEGORY = [{"coding": [{"system": codes.CATEGORY_SYSTEM, "code": "survey"}]}]
ITEMS = [4, 3, 4, 3, 4, 4, 3, 4, 5, 3, 4, 3]
DAY1, DAY2, DAY3 = "2026-03-02", "2026-03-09", "2026-03-16"


def observation(
    obs_id: str | None, code: str, value: float, day: str, system: str = codes.MEASURE_SYSTEM
) -> dict[str, Any]:
    obs: dict[str, Any] = {"resourceType": "Observation"}
    if obs_id is not None:
        obs["id"] = obs_id
    obs |= {
        "status": "final",
        "category": copy.deepcopy(CATEGORY),
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/A-1001"},
        "effectiveDateTime": f"{day}T10:00:00+01:00",
        "valueQuantity": {"value": value, "system": codes.UCUM, "code": "{score}"},
    }
    return obs


def questionnaire(qr_id: str, day: str, items: list[int]) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": qr_id,
        "status": "completed",
        "subject": {"reference": "Patient/A-1001"},
        "authored": f"{day}T11:30:00+01:00",
        "item": [
            {"linkId": str(n), "answer": [{"valueInteger": v}]}
            for n, v in enumerate(items, start=1)
        ],
    }


def session_observations(n: int, day: str, scores: tuple[float, ...]) -> list[dict[str, Any]]:
    goal, task, bond, srs, ors, phq9 = scores
    return [
        observation(f"wai-goal-{n}", "wai-sr-goal", goal, day),
        observation(f"wai-task-{n}", "wai-sr-task", task, day),
        observation(f"wai-bond-{n}", "wai-sr-bond", bond, day),
        observation(f"srs-{n}", "srs-total", srs, day),
        observation(f"ors-{n}", "ors-total", ors, day),
        observation(f"phq9-{n}", "44261-6", phq9, day, system=codes.LOINC),
    ]


def example_bundle() -> dict[str, Any]:
    """Patient, two dates of Observations, a WAI-SR questionnaire on a third date."""
    patient = {
        "resourceType": "Patient",
        "id": "A-1001",
        "gender": "female",
        "birthDate": "1999-05-20",
    }
    resources = [
        patient,
        *session_observations(1, DAY1, (3.25, 3.5, 4.0, 35.5, 18.2, 14)),
        *session_observations(2, DAY2, (3.0, 3.25, 3.75, 31, 20.4, 12)),
        questionnaire("wai-3", DAY3, ITEMS),
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries(resources)}


def entries(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"resource": r} for r in resources]


EXPECTED_SESSIONS = [
    {
        "number": 1,
        "date": DAY1,
        "wai": {"goal": 3.25, "task": 3.5, "bond": 4.0},
        "srs": {"total": 35.5},
        "ors": {"total": 18.2},
        "phq9": {"total": 14},
    },
    {
        "number": 2,
        "date": DAY2,
        "wai": {"goal": 3.0, "task": 3.25, "bond": 3.75},
        "srs": {"total": 31.0},
        "ors": {"total": 20.4},
        "phq9": {"total": 12},
    },
    {"number": 3, "date": DAY3, "wai": {"items": ITEMS}},
]


def issues_of(bundle: dict[str, Any] | bytes) -> list[codes.Issue]:
    with pytest.raises(codes.FhirInputError) as caught:
        reading.episode_from_bundle(bundle)
    assert caught.value.issues, "a FhirInputError must carry issues"
    return caught.value.issues


def resource(bundle: dict[str, Any], i: int) -> dict[str, Any]:
    found: dict[str, Any] = bundle["entry"][i]["resource"]
    return found


# --- reading ---------------------------------------------------------------------------------


def test_example_bundle_parses_to_the_episode() -> None:
    parsed = reading.episode_from_bundle(example_bundle())
    assert parsed.patient_id == "A-1001"
    assert parsed.episode == {
        "client_id": "A-1001",
        "age": 26,  # born 1999-05-20, latest session 2026-03-16: birthday not yet reached
        "gender": "female",
        "sessions": EXPECTED_SESSIONS,
    }
    assert parsed.basis == [
        *[f"Observation/{k}-1" for k in ("wai-goal", "wai-task", "wai-bond", "srs", "ors", "phq9")],
        *[f"Observation/{k}-2" for k in ("wai-goal", "wai-task", "wai-bond", "srs", "ors", "phq9")],
        "QuestionnaireResponse/wai-3",
    ]
    assert isinstance(parsed.episode["sessions"][1]["srs"]["total"], float)
    assert isinstance(parsed.episode["sessions"][0]["phq9"]["total"], int)


def test_questionnaire_items_give_the_subscale_means() -> None:
    episode = EpisodeIn.model_validate(reading.episode_from_bundle(example_bundle()).episode)
    wai = episode.sessions[2].wai
    assert wai is not None
    assert wai.items == ITEMS

    def mean(numbers: tuple[int, ...]) -> float:
        return sum(ITEMS[n - 1] for n in numbers) / 4

    expected = (mean(WAI_SR_ITEMS["goal"]), mean(WAI_SR_ITEMS["task"]), mean(WAI_SR_ITEMS["bond"]))
    assert expected == (3.75, 3.25, 4.0)
    assert wai_subscales(wai) == expected


def test_sessions_are_numbered_by_date_not_by_entry_order() -> None:
    bundle = example_bundle()
    bundle["entry"].reverse()
    parsed = reading.episode_from_bundle(bundle)
    assert [s["date"] for s in parsed.episode["sessions"]] == [DAY1, DAY2, DAY3]
    assert [s["number"] for s in parsed.episode["sessions"]] == [1, 2, 3]
    assert parsed.episode["sessions"] == EXPECTED_SESSIONS
    assert parsed.basis[0] == "QuestionnaireResponse/wai-3"  # basis keeps entry order


def test_date_is_the_written_local_date() -> None:
    bundle = example_bundle()
    # 23:30 at UTC-05:00 is the next day in UTC; the session still belongs to DAY1
    resource(bundle, 1)["effectiveDateTime"] = f"{DAY1}T23:30:00-05:00"
    assert reading.episode_from_bundle(bundle).episode["sessions"][0]["wai"]["goal"] == 3.25


def test_basis_uses_urn_uuid_full_urls_and_leaves_out_the_unnamed() -> None:
    bundle = example_bundle()
    del resource(bundle, 1)["id"]
    bundle["entry"][1]["fullUrl"] = "urn:uuid:0d1c6d5c-7a55-4e5e-9a8e-3f7b0f5d9c11"
    del resource(bundle, 2)["id"]  # no id and no fullUrl: used, but cannot be referenced
    basis = reading.episode_from_bundle(bundle).basis
    assert basis[0] == "urn:uuid:0d1c6d5c-7a55-4e5e-9a8e-3f7b0f5d9c11"
    assert basis[1] == "Observation/wai-bond-1"
    assert len(basis) == 12


def test_without_a_patient_the_subjects_name_the_client() -> None:
    bundle = example_bundle()
    del bundle["entry"][0]
    parsed = reading.episode_from_bundle(bundle)
    assert parsed.patient_id == "A-1001"
    assert parsed.episode["client_id"] == "A-1001"
    assert "age" not in parsed.episode
    assert "gender" not in parsed.episode


def test_subject_may_be_the_patient_entry_full_url() -> None:
    bundle = example_bundle()
    bundle["entry"][0]["fullUrl"] = "urn:uuid:5f0e1c9a-1111-4c1d-9f00-000000000001"
    resource(bundle, 3)["subject"] = {"reference": "urn:uuid:5f0e1c9a-1111-4c1d-9f00-000000000001"}
    assert reading.episode_from_bundle(bundle).episode["sessions"] == EXPECTED_SESSIONS


def test_unknown_gender_is_left_out() -> None:
    bundle = example_bundle()
    resource(bundle, 0)["gender"] = "unknown"
    assert "gender" not in reading.episode_from_bundle(bundle).episode


def test_json_bytes_are_read() -> None:
    parsed = reading.episode_from_bundle(json.dumps(example_bundle()).encode())
    assert parsed.episode["sessions"] == EXPECTED_SESSIONS


# --- errors ----------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(i: int, path: str, value: Any) -> Mutation:
    def mutate(bundle: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = resource(bundle, i)
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _delete(i: int, key: str) -> Mutation:
    def mutate(bundle: dict[str, Any]) -> None:
        del resource(bundle, i)[key]

    return mutate


def _append(*resources: dict[str, Any]) -> Mutation:
    def mutate(bundle: dict[str, Any]) -> None:
        bundle["entry"] += entries(list(resources))

    return mutate


LAB = [{"coding": [{"system": codes.CATEGORY_SYSTEM, "code": "laboratory"}]}]
ERROR_CASES: dict[str, tuple[Mutation, str, str]] = {
    "wrong category": (_set(1, "category", LAB), "Bundle.entry[1].resource.category", "value"),
    "no category": (_delete(1, "category"), "Bundle.entry[1].resource.category", "required"),
    "unknown code": (
        _set(4, "code", {"coding": [{"system": codes.LOINC, "code": "70274-6"}]}),
        "Bundle.entry[4].resource.code",
        "not-supported",
    ),
    "value out of range": (
        _set(4, "valueQuantity.value", 45),
        "Bundle.entry[4].resource.valueQuantity.value",
        "value",
    ),
    "WAI mean below 1": (
        _set(1, "valueQuantity.value", 0.5),
        "Bundle.entry[1].resource.valueQuantity.value",
        "value",
    ),
    "PHQ-9 not whole": (
        _set(6, "valueQuantity.value", 12.5),
        "Bundle.entry[6].resource.valueQuantity.value",
        "value",
    ),
    "value as a string": (
        _set(4, "valueQuantity.value", "35.5"),
        "Bundle.entry[4].resource.valueQuantity.value",
        "value",
    ),
    "other unit": (
        _set(4, "valueQuantity.code", "%"),
        "Bundle.entry[4].resource.valueQuantity.code",
        "value",
    ),
    "missing effectiveDateTime": (
        _delete(2, "effectiveDateTime"),
        "Bundle.entry[2].resource.effectiveDateTime",
        "required",
    ),
    "partial effectiveDateTime": (
        _set(2, "effectiveDateTime", "2026-03"),
        "Bundle.entry[2].resource.effectiveDateTime",
        "value",
    ),
    "entered in error": (
        _set(3, "status", "entered-in-error"),
        "Bundle.entry[3].resource.status",
        "value",
    ),
    "bogus status": (_set(3, "status", "done"), "Bundle.entry[3].resource.status", "value"),
    "no subject": (_delete(5, "subject"), "Bundle.entry[5].resource.subject", "required"),
    "another patient's subject": (
        _set(5, "subject", {"reference": "Patient/B-2002"}),
        "Bundle.entry[5].resource.subject.reference",
        "invalid",
    ),
    "two patients": (
        _append({"resourceType": "Patient", "id": "B-2002"}),
        "Bundle.entry[14].resource",
        "invalid",
    ),
    "duplicate measure on a date": (
        _append(observation("srs-1b", "srs-total", 30, DAY1)),
        "Bundle.entry[14].resource",
        "invalid",
    ),
    "questionnaire and subscales on one date": (
        _append(questionnaire("wai-1", DAY1, ITEMS)),
        "Bundle.entry[14].resource",
        "invalid",
    ),
    "unsupported resource": (
        _append({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}),
        "Bundle.entry[14].resource.resourceType",
        "not-supported",
    ),
    "unknown resource type": (
        _append({"resourceType": "Foo"}),
        "Bundle.entry[14].resource.resourceType",
        "not-supported",
    ),
    "unknown element": (_set(1, "bogus", 1), "Bundle.entry[1].resource.bogus", "structure"),
    "bad FHIR date": (
        _set(13, "authored", "16.03.2026"),
        "Bundle.entry[13].resource.authored",
        "value",
    ),
    "questionnaire not completed": (
        _set(13, "status", "in-progress"),
        "Bundle.entry[13].resource.status",
        "value",
    ),
    "WAI item out of range": (
        _set(13, "item", questionnaire("x", DAY3, [*ITEMS[:11], 6])["item"]),
        "Bundle.entry[13].resource.item[11].answer[0].valueInteger",
        "value",
    ),
    "WAI item missing": (
        _set(13, "item", questionnaire("x", DAY3, ITEMS)["item"][:11]),
        "Bundle.entry[13].resource.item",
        "required",
    ),
    "too young": (
        _set(0, "birthDate", "2020-01-01"),
        "Bundle.entry[0].resource.birthDate",
        "value",
    ),
    "partial birthDate": (
        _set(0, "birthDate", "1999"),
        "Bundle.entry[0].resource.birthDate",
        "value",
    ),
    "bad gender": (_set(0, "gender", "f"), "Bundle.entry[0].resource.gender", "value"),
    "Patient without id": (_delete(0, "id"), "Bundle.entry[0].resource.id", "required"),
    "bundle type": (lambda b: b.update(type="message-ish"), "Bundle.type", "value"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_each_error_names_its_expression(case: str) -> None:
    mutate, expression, code = ERROR_CASES[case]
    bundle = example_bundle()
    mutate(bundle)
    found = {(i.expression, i.code) for i in issues_of(bundle)}
    assert (expression, code) in found, found


def test_issues_say_what_and_why() -> None:
    bundle = example_bundle()
    _set(4, "valueQuantity.value", 45)(bundle)
    (issue,) = issues_of(bundle)
    assert issue.severity == "error"
    assert "Session Rating Scale total" in issue.diagnostics
    assert "45" in issue.diagnostics
    assert "0 to 40" in issue.diagnostics


def test_all_issues_are_reported_not_just_the_first() -> None:
    bundle = example_bundle()
    _set(1, "category", LAB)(bundle)
    _set(4, "valueQuantity.value", 45)(bundle)
    _append({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}})(bundle)
    _set(7, "bogus", True)(bundle)  # structural: entry 7 is not read further
    expressions = [i.expression for i in issues_of(bundle)]
    assert "Bundle.entry[1].resource.category" in expressions
    assert "Bundle.entry[4].resource.valueQuantity.value" in expressions
    assert "Bundle.entry[14].resource.resourceType" in expressions
    assert "Bundle.entry[7].resource.bogus" in expressions


def test_unknown_nested_resource_type_is_an_issue_not_a_crash() -> None:
    bundle = example_bundle()
    resource(bundle, 0)["contained"] = [{"resourceType": "Foo"}]
    assert [(i.expression, i.code) for i in issues_of(bundle)] == [("Bundle", "structure")]


@pytest.mark.parametrize(
    ("body", "expression", "code"),
    [
        ({"resourceType": "Patient", "id": "A-1001"}, "Bundle.resourceType", "invalid"),
        ({"type": "collection"}, "Bundle.resourceType", "invalid"),
        ([1, 2], "Bundle", "invalid"),
        (b'{"resourceType": "Bundle", "type": ', "Bundle", "structure"),
        (b'{"resourceType": "Bundle", "type": "collection", "total": NaN}', "Bundle", "structure"),
        (b"\xff\xfe", "Bundle", "structure"),
        ({"resourceType": "Bundle", "type": "collection"}, "Bundle.entry", "required"),
        ({"resourceType": "Bundle", "entry": []}, "Bundle.type", "required"),
    ],
)
def test_not_a_bundle(body: Any, expression: str, code: str) -> None:
    found = [(i.expression, i.code) for i in issues_of(body)]
    assert (expression, code) in found, found


def test_too_many_entries() -> None:
    bundle = example_bundle()
    extra = [observation(f"x{k}", "srs-total", 30, f"2025-01-{k % 28 + 1:02d}") for k in range(190)]
    _append(*extra)(bundle)
    assert len(bundle["entry"]) == 204
    assert [(i.expression, i.code) for i in issues_of(bundle)] == [("Bundle.entry", "too-costly")]


def test_two_hundred_entries_are_not_too_many() -> None:
    bundle = example_bundle()
    bundle["entry"] += [{"fullUrl": f"urn:uuid:{k}"} for k in range(200 - len(bundle["entry"]))]
    issues = issues_of(bundle)  # read: each entry without a resource is reported
    assert {i.code for i in issues} == {"required"}
    assert issues[0].expression == "Bundle.entry[14].resource"
    assert len(issues) == 200 - 14


def test_a_bad_wai_answer_is_one_issue() -> None:
    bundle = example_bundle()
    resource(bundle, 13)["item"][4]["answer"] = [{"valueInteger": True}]
    assert [(i.expression, i.code) for i in issues_of(bundle)] == [
        ("Bundle.entry[13].resource.item[4].answer[0].valueInteger", "value")
    ]


def test_wai_items_may_sit_in_groups() -> None:
    bundle = example_bundle()
    flat = resource(bundle, 13)["item"]
    resource(bundle, 13)["item"] = [
        {"linkId": "part-1", "item": flat[:6]},
        {"linkId": "part-2", "item": flat[6:]},
    ]
    assert reading.episode_from_bundle(bundle).episode["sessions"][2]["wai"] == {"items": ITEMS}


def test_error_message_does_not_echo_values() -> None:
    bundle = example_bundle()
    _set(4, "valueQuantity.value", 39.75)(bundle)
    _set(4, "valueQuantity.code", "%")(bundle)
    with pytest.raises(codes.FhirInputError) as caught:
        reading.episode_from_bundle(bundle)
    assert "39.75" not in str(caught.value)
    assert "1 problem(s)" in str(caught.value)


# --- writing ---------------------------------------------------------------------------------

RESULT_JSON: dict[str, Any] = {
    "client_id": "A-1001",
    "probability": 0.31,
    "risk_level": "high",
    "landmark_session": 2,
    "model": {"version": "20261122-68131565", "sha256": "ab" * 32},
    "thresholds": {"moderate": 0.2, "high": 0.3},
    "factors": [
        {
            "code": "alliance_decline",
            "label": "Alliance fell from session 1 to 2 (WAI-SR 3.5 → 3.0)",
            "direction": "raises",
            "contribution": 0.07,
        },
        {
            "code": "phq9_high",
            "label": "PHQ-9 at 14",
            "direction": "raises",
            "contribution": 0.03,
        },
    ],
    "suggested_actions": [
        {"code": "rupture_repair", "text": "Talk about the alliance.", "source": "Safran"},
        {"code": "feedback", "text": "Use session feedback.", "source": "Lambert"},
    ],
    "disclaimer": "Decision support, not a diagnosis.",
}
RESULT = Prediction.from_json(RESULT_JSON)
WHEN = dt.datetime(2026, 3, 9, 12, 30, 15, 123456, tzinfo=dt.UTC)


def test_risk_assessment_fields() -> None:
    basis = ["Observation/srs-1", "QuestionnaireResponse/wai-3"]
    ra = writing.risk_assessment(RESULT, "Patient/A-1001", WHEN, basis, "ra-7")
    RiskAssessment.model_validate(ra)
    assert ra["resourceType"] == "RiskAssessment"
    assert ra["id"] == "ra-7"
    assert ra["status"] == "final"
    assert ra["subject"] == {"reference": "Patient/A-1001"}
    assert ra["occurrenceDateTime"] == "2026-03-09T12:30:15+00:00"
    assert ra["method"]["coding"] == [
        {
            "system": "urn:dropout-risk:model",
            "code": "20261122-68131565",
            "display": "dropout-risk model 20261122-68131565",
        }
    ]
    assert "landmark session 2" in ra["method"]["text"]
    assert ra["basis"] == [
        {"reference": "Observation/srs-1"},
        {"reference": "QuestionnaireResponse/wai-3"},
    ]
    (prediction,) = ra["prediction"]
    assert prediction["probabilityDecimal"] == 0.31
    assert prediction["qualitativeRisk"]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/risk-probability",
            "code": "high",
            "display": "High likelihood",
        }
    ]
    assert prediction["outcome"]["text"].startswith("Dropout from psychotherapy")
    assert prediction["rationale"] == (
        "Alliance fell from session 1 to 2 (WAI-SR 3.5 → 3.0); PHQ-9 at 14"
    )
    assert ra["mitigation"] == "Talk about the alliance. Use session feedback."
    assert ra["note"] == [
        {"text": "Decision support, not a diagnosis."},
        {"text": standing_note(RESULT)},
    ]
    assert ra["note"][1]["text"].startswith("Network default model, not yet checked")
    json.dumps(ra)  # JSON-ready: no Decimal, no datetime


@pytest.mark.parametrize("level", ["low", "moderate", "high"])
def test_levels_map_to_risk_probability_codes(level: str) -> None:
    ra = writing.risk_assessment(replace(RESULT, risk_level=level), "Patient/A-1001", WHEN, [])
    assert ra["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == level


def test_risk_assessment_without_factors_actions_or_basis() -> None:
    result = replace(RESULT, factors=(), suggested_actions=(), risk_level="low")
    ra = writing.risk_assessment(result, "Patient/A-1001", WHEN, [])
    RiskAssessment.model_validate(ra)
    assert ra["prediction"][0]["rationale"] == "No single factor stands out"
    assert "mitigation" not in ra
    assert "basis" not in ra
    assert "id" not in ra


@pytest.mark.parametrize(
    ("change", "when"),
    [
        ({"probability": 1.5}, WHEN),
        ({"probability": -0.01}, WHEN),
        ({"risk_level": "very high"}, WHEN),
        ({}, WHEN.replace(tzinfo=None)),
    ],
)
def test_risk_assessment_refuses_what_the_library_would_pass(
    change: dict[str, Any], when: dt.datetime
) -> None:
    with pytest.raises(ValueError, match=r"probabilityDecimal|risk level|timezone"):
        writing.risk_assessment(replace(RESULT, **change), "Patient/A-1001", when, [])


def test_output_is_r4_not_the_r5_default() -> None:
    assert writing.RiskAssessment.__module__ == "fhir.resources.R4B.riskassessment"
    ra = writing.risk_assessment(RESULT, "Patient/A-1001", WHEN, ["Observation/srs-1"], "ra-1")
    r4_elements = {f.alias or name for name, f in RiskAssessment.model_fields.items()}
    assert set(ra) - {"resourceType"} <= r4_elements
    assert "reason" not in ra  # R5 renamed R4's reasonCode/reasonReference to reason


def test_searchset() -> None:
    ra = writing.risk_assessment(RESULT, "Patient/A-1001", WHEN, [], "ra-7")
    url = "http://testserver/fhir/r4/RiskAssessment?subject=Patient/A-1001"
    bundle = writing.searchset([ra], url)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    assert bundle["link"] == [{"relation": "self", "url": url}]
    assert bundle["entry"] == [
        {
            "fullUrl": "http://testserver/fhir/r4/RiskAssessment/ra-7",
            "resource": ra,
            "search": {"mode": "match"},
        }
    ]


def test_empty_searchset() -> None:
    bundle = writing.searchset([], "http://testserver/fhir/r4/RiskAssessment?subject=Patient/X")
    Bundle.model_validate(bundle)
    assert bundle["total"] == 0
    assert "entry" not in bundle


def test_capability_statement() -> None:
    cs = writing.capability_statement("http://testserver/fhir/r4", "1.2.3")
    CapabilityStatement.model_validate(cs)
    assert (cs["status"], cs["kind"], cs["fhirVersion"]) == ("active", "instance", "4.0.1")
    assert cs["format"] == ["json"]
    assert cs["implementation"]["url"] == "http://testserver/fhir/r4"
    assert cs["software"] == {"name": "dropout-risk", "version": "1.2.3"}
    (rest,) = cs["rest"]
    assert rest["mode"] == "server"
    (ra,) = rest["resource"]
    assert ra["type"] == "RiskAssessment"
    assert ra["interaction"] == [{"code": "search-type"}]
    assert [(p["name"], p["type"]) for p in ra["searchParam"]] == [("subject", "reference")]
    assert [(o["name"], o["definition"]) for o in ra["operation"]] == [
        ("predict", "urn:dropout-risk:operation:predict")
    ]


def test_operation_outcome_from_input_issues() -> None:
    bundle = example_bundle()
    _set(4, "valueQuantity.value", 45)(bundle)
    outcome = writing.operation_outcome(issues_of(bundle))
    OperationOutcome.model_validate(outcome)
    (issue,) = outcome["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == "value"
    assert issue["expression"] == ["Bundle.entry[4].resource.valueQuantity.value"]
    assert "0 to 40" in issue["diagnostics"]


def test_operation_outcome_needs_an_issue() -> None:
    outcome = writing.operation_outcome([])
    OperationOutcome.model_validate(outcome)
    assert [i["code"] for i in outcome["issue"]] == ["informational"]


def test_issue_codes_are_checked() -> None:
    with pytest.raises(ValueError, match="issue severity/code"):
        codes.Issue("error", "bogus", "x", "Bundle")  # type: ignore[arg-type]


# --- the documented example ------------------------------------------------------------------


def test_docs_examples() -> None:
    """The examples in docs/fhir.md: the Bundle is the one tested here, the others are
    valid R4 resources."""
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    shown = {b["resourceType"]: b for b in map(json.loads, blocks)}
    assert set(shown) == {"Bundle", "RiskAssessment", "OperationOutcome"}
    parsed = reading.episode_from_bundle(shown["Bundle"])
    assert parsed.episode == reading.episode_from_bundle(example_bundle()).episode
    RiskAssessment.model_validate(shown["RiskAssessment"])
    assert shown["RiskAssessment"]["basis"] == [{"reference": r} for r in parsed.basis]
    OperationOutcome.model_validate(shown["OperationOutcome"])
    bad = example_bundle()
    _set(4, "valueQuantity.value", 45)(bad)
    assert shown["OperationOutcome"] == writing.operation_outcome(issues_of(bad))
