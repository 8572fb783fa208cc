"""Writing resources: the prediction as a RiskAssessment, the stored latest as a searchset,
the CapabilityStatement and an OperationOutcome, each checked by its R4B model.

Scale: probabilityDecimal is a probability from 0 to 1, not a percentage. The R4 text says
decimals are percentages, but the score, its thresholds and the rest of this API are 0-1,
and a second scale at one edge invites a factor-100 error; invariant ras-2 (<= 100) holds
either way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from service.core.prediction import Prediction
from service.core.standing import standing_note
from service.interop.fhir.codes import (
    ASSESSMENT_STATUSES,
    CAPABILITY_DATE,
    FHIR_VERSION,
    MODEL_SYSTEM,
    NO_FACTOR,
    OUTCOME_TEXT,
    PREDICT_OPERATION,
    RISK_LEVEL_CODES,
    RISK_PROBABILITY_DISPLAY,
    RISK_PROBABILITY_SYSTEM,
    Issue,
)


def risk_assessment(
    result: Prediction,
    subject: str,
    occurrence: dt.datetime,
    basis: list[str],
    assessment_id: str | None = None,
) -> dict[str, Any]:
    """A prediction (service.scoring.score.score's answer) as an R4 RiskAssessment, JSON-ready.

    probabilityDecimal is 0-1 (see the module docstring). `occurrence` must carry a time
    zone: a FHIR dateTime with a time requires one. The body is validated with the R4B
    model and the bindings it does not check; a failure is a bug here, so it raises."""
    if occurrence.utcoffset() is None:
        raise ValueError("occurrence must be timezone-aware")
    body: dict[str, Any] = {"resourceType": "RiskAssessment"}
    if assessment_id is not None:
        body["id"] = assessment_id
    body |= {
        "status": "final",
        "subject": {"reference": subject},
        "occurrenceDateTime": occurrence.isoformat(timespec="seconds"),
        "method": _method(result),
    }
    if basis:  # FHIR JSON has no empty arrays
        body["basis"] = [{"reference": reference} for reference in basis]
    body["prediction"] = [_prediction(result)]
    actions = [a.text for a in result.suggested_actions]
    if actions:
        body["mitigation"] = " ".join(actions)
    body["note"] = [{"text": result.disclaimer}, {"text": standing_note(result)}]
    _check_risk_assessment(body)
    return body


def _method(result: Prediction) -> dict[str, Any]:
    version = result.model.version
    th = result.thresholds
    text = (
        f"Calibrated dropout-risk model {version}, scored at landmark session "
        f"{result.landmark_session}; risk levels: moderate from {th.moderate}, "
        f"high from {th.high} (probability 0-1)"
    )
    coding = {"system": MODEL_SYSTEM, "code": version, "display": f"dropout-risk model {version}"}
    return {"coding": [coding], "text": text}


def _prediction(result: Prediction) -> dict[str, Any]:
    level = result.risk_level
    code = RISK_LEVEL_CODES.get(level)
    if code is None:
        raise ValueError(f"not a risk level: {level!r}")
    labels = [f.label for f in result.factors]
    return {
        "outcome": {"text": OUTCOME_TEXT},
        "probabilityDecimal": result.probability,
        "qualitativeRisk": {
            "coding": [
                {
                    "system": RISK_PROBABILITY_SYSTEM,
                    "code": code,
                    "display": RISK_PROBABILITY_DISPLAY[code],
                }
            ]
        },
        "rationale": "; ".join(labels) or NO_FACTOR,
    }


def _check_risk_assessment(body: dict[str, Any]) -> None:
    """The R4B model, then what it leaves out: the status and qualitativeRisk bindings and
    our 0-1 probability scale (stricter than ras-2, which allows up to 100)."""
    RiskAssessment.model_validate(body)
    if body["status"] not in ASSESSMENT_STATUSES:
        raise ValueError(f"RiskAssessment.status {body['status']!r} is not an ObservationStatus")
    for prediction in body["prediction"]:
        for coding in prediction["qualitativeRisk"]["coding"]:
            if coding["system"] != RISK_PROBABILITY_SYSTEM:
                raise ValueError(f"qualitativeRisk system {coding['system']!r}")
            if coding["code"] not in RISK_PROBABILITY_DISPLAY:
                raise ValueError(f"qualitativeRisk code {coding['code']!r} not in risk-probability")
        probability = prediction["probabilityDecimal"]
        if not 0 <= probability <= 1:
            raise ValueError(f"probabilityDecimal {probability!r} is outside 0-1")


def searchset(resources: list[dict[str, Any]], self_url: str) -> dict[str, Any]:
    """A searchset Bundle of matches; each fullUrl is the server base + Type/id."""
    base = _server_base(self_url, resources)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
    }
    if resources:
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    Bundle.model_validate(bundle)
    return bundle


def _server_base(self_url: str, resources: list[dict[str, Any]]) -> str:
    """`http://host/fhir/r4/RiskAssessment?subject=...` -> `http://host/fhir/r4`."""
    path = self_url.split("?", 1)[0].rstrip("/")
    kinds = {str(r["resourceType"]) for r in resources} | {"RiskAssessment"}
    head, _, last = path.rpartition("/")
    return head if last in kinds else path


def capability_statement(base_url: str, version: str) -> dict[str, Any]:
    """What this server does: search RiskAssessments by subject, and $predict."""
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "dropout-risk",
        "kind": "instance",
        "software": {"name": "dropout-risk", "version": version},
        # cpb-15: an instance statement describes its implementation
        "implementation": {
            "description": "Psychotherapy dropout risk (decision support)",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [_rest()],
    }
    CapabilityStatement.model_validate(statement)
    return statement


def _rest() -> dict[str, Any]:
    return {
        "mode": "server",
        "documentation": "Probabilities are decimals from 0 to 1 (see docs/fhir.md).",
        "security": {"description": "Send an API key as 'Authorization: Bearer <key>'."},
        "resource": [
            {
                "type": "RiskAssessment",
                "interaction": [{"code": "search-type"}],
                "searchParam": [
                    {
                        "name": "subject",
                        "type": "reference",
                        "documentation": "Patient/<id>: the patient's latest stored risk",
                    }
                ],
                "operation": [
                    {
                        "name": "predict",
                        "definition": PREDICT_OPERATION,
                        "documentation": "POST a Bundle of one patient's survey "
                        "Observations and WAI-SR QuestionnaireResponses; returns a "
                        "RiskAssessment (nothing is stored)",
                    }
                ],
            }
        ],
    }


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Issues as an R4 OperationOutcome (which needs at least one issue: with none, an
    informational one says so)."""
    listed = issues or [Issue("information", "informational", "no issues", "Bundle")]
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": i.severity,
                "code": i.code,
                "diagnostics": i.diagnostics,
                "expression": [i.expression],
            }
            for i in listed
        ],
    }
    OperationOutcome.model_validate(outcome)
    return outcome
