"""FHIR R4 (docs/fhir.md): a RiskAssessment from a Bundle of one patient's Observations,
the stored latest as a searchset, and the CapabilityStatement. Resources are built and
checked by service.fhir (fhir.resources R4B models plus the checks they leave out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic_core import to_json

from service import fhir
from service.auth import PredictKey, ReadKey
from service.body import json_bytes
from service.db import repository as repo
from service.routes.clients import Audit, Db, actor
from service.routes.predictions import ERRORS, Model
from service.schemas import EpisodeIn
from service.scoring import NotAtLandmark, score
from training.vocabulary import ID_MAX_LENGTH, ID_REGEX

router = APIRouter(prefix="/fhir/r4", tags=["fhir"])
FHIR_JSON = "application/fhir+json"
SUBJECT = Query(pattern=rf"^Patient/{ID_REGEX}$", max_length=len("Patient/") + ID_MAX_LENGTH)


def _fhir(body: dict[str, Any], status: int = 200) -> Response:
    return Response(to_json(body), status_code=status, media_type=FHIR_JSON)


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """The CapabilityStatement: what this FHIR endpoint supports."""
    return _fhir(fhir.capability_statement(str(request.base_url) + "fhir/r4", "1"))


@router.post("/RiskAssessment/$predict", responses=ERRORS)
async def predict(request: Request, key: PredictKey, model: Model) -> Response:
    """A Bundle of one patient's survey Observations (WAI-SR, SRS, ORS, PHQ-9) and WAI-SR
    QuestionnaireResponses in; a RiskAssessment out. Nothing is stored."""
    parsed = fhir.episode_from_bundle(await json_bytes(request))  # keys checked there
    episode = EpisodeIn.model_validate(parsed.episode)
    result = score(model, [episode], request.app.state.settings.max_landmark)[0]
    if isinstance(result, NotAtLandmark):
        issue = fhir.Issue("error", "required", str(result), "Bundle.entry")
        return _fhir(fhir.operation_outcome([issue]), 422)
    subject = f"Patient/{parsed.patient_id}"
    return _fhir(fhir.risk_assessment(result, subject, datetime.now(UTC), parsed.basis))


@router.get("/RiskAssessment", responses=ERRORS)
def search(
    request: Request,
    key: ReadKey,
    db: Db,
    audit: Audit,
    subject: Annotated[str, SUBJECT],
) -> Response:
    """The stored latest RiskAssessment of a patient of the caller's clinic, as a searchset
    Bundle (empty when the patient has no stored risk or is not a client of the clinic)."""
    who = actor(key)
    client_id = subject.removeprefix("Patient/")
    found: list[dict[str, Any]] = []
    with db.session() as s:
        record = repo.latest_prediction(s, who.clinic, client_id)
        if record is not None:
            found.append(
                fhir.risk_assessment(
                    record.body, subject, record.computed_at, [], f"ra-{record.id}"
                )
            )
            audit(s, who, "fhir.risk.read", client_id, record.model_version)
    return _fhir(fhir.searchset(found, str(request.url)))
