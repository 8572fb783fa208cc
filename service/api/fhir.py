"""FHIR R4 (docs/fhir.md): a RiskAssessment from a Bundle of one patient's Observations,
the stored latest as a searchset, and the CapabilityStatement. Resources are built and
checked by service.interop.fhir (fhir.resources R4B models plus the checks they
leave out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic_core import to_json

from service.api.deps import ERRORS, Audit, Db, Model, PredictKey, ReadKey, actor
from service.core.body import json_bytes
from service.core.prediction import NotAtLandmark
from service.core.schemas import EpisodeIn
from service.interop.fhir import codes, reading, writing
from service.scoring.score import score
from service.security import access
from service.storage import repository as repo
from training.vocabulary import ID_MAX_LENGTH, ID_REGEX

router = APIRouter(prefix="/fhir/r4", tags=["fhir"])
FHIR_JSON = "application/fhir+json"
SUBJECT = Query(pattern=rf"^Patient/{ID_REGEX}$", max_length=len("Patient/") + ID_MAX_LENGTH)


def _endpoint(request: Request) -> str:
    """This FHIR endpoint's URL, from the configured base URL (settings.base_url): never
    from the request's Host or X-Forwarded-* headers, which the caller chooses."""
    base: str = request.app.state.settings.base_url
    return base + router.prefix


def _fhir(body: dict[str, Any], status: int = 200) -> Response:
    return Response(to_json(body), status_code=status, media_type=FHIR_JSON)


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """The CapabilityStatement: what this FHIR endpoint supports."""
    return _fhir(writing.capability_statement(_endpoint(request), "1"))


@router.post("/RiskAssessment/$predict", responses=ERRORS)
async def predict(request: Request, key: PredictKey, model: Model) -> Response:
    """A Bundle of one patient's survey Observations (WAI-SR, SRS, ORS, PHQ-9) and WAI-SR
    QuestionnaireResponses in; a RiskAssessment out. Nothing is stored."""
    parsed = reading.episode_from_bundle(await json_bytes(request))  # keys checked there
    episode = EpisodeIn.model_validate(parsed.episode)
    result = score(model, [episode], request.app.state.settings.max_landmark, key.tenant)[0]
    if isinstance(result, NotAtLandmark):
        issue = codes.Issue("error", "required", result.reason, "Bundle.entry")
        return _fhir(writing.operation_outcome([issue]), 422)
    subject = f"Patient/{parsed.patient_id}"
    return _fhir(writing.risk_assessment(result, subject, datetime.now(UTC), parsed.basis))


@router.get("/RiskAssessment", responses=ERRORS)
def search(
    request: Request,
    key: ReadKey,
    db: Db,
    audit: Audit,
    subject: Annotated[str, SUBJECT],
) -> Response:
    """The stored latest RiskAssessment of a patient of the caller's clinic, as a searchset
    Bundle (empty when the patient has no stored risk or is not a client the key may see:
    of another clinic, or of another therapist for a therapist's key)."""
    who = actor(key)
    client_id = subject.removeprefix("Patient/")
    found: list[dict[str, Any]] = []
    with db.session() as s:
        visible = access.client_of(s, key, client_id) is not None
        record = repo.latest_prediction(s, who.clinic, client_id) if visible else None
        if record is not None:
            found.append(
                writing.risk_assessment(
                    record.body, subject, record.computed_at, [], f"ra-{record.id}"
                )
            )
            audit(s, who, "fhir.risk.read", client_id, record.model_version)
    query = f"?{request.url.query}" if request.url.query else ""
    return _fhir(writing.searchset(found, f"{_endpoint(request)}/RiskAssessment{query}"))
