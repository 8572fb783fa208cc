"""CDS Hooks 2.0 (docs/cds-hooks.md): discovery and the patient-view service.

Every call carries the EHR's signed JWT; service.interop.cds.client_jwt checks it
(algorithm, key, issuer, audience, lifetime) and the jti replay cache lives in the
database, so a token replayed against another worker process is refused too. The issuer's
clinic scopes the call: the patient is looked up among that clinic's clients only. A
caller-supplied fhirServer is never fetched (OWASP API7): the card uses the prefetch the
EHR sent, else stored sessions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from service.api.deps import Audit, Db, current_model
from service.core.body import json_body
from service.core.prediction import NotAtLandmark, Prediction
from service.core.schemas import EpisodeIn
from service.interop.cds import cards, client_jwt, hooks, limits
from service.interop.fhir import codes, reading
from service.scoring.records import Actor, Auditor, episode
from service.scoring.score import score
from service.storage import repository as repo
from service.storage.database import Storage
from training.registry import LoadedModel

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])


def _json(body: dict[str, Any]) -> Response:
    return Response(to_json(body), media_type="application/json")


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise limits.CdsAuthError("send the CDS client JWT as 'Authorization: Bearer <jwt>'")
    return token.strip()


def _jti_store(storage: Storage) -> Callable[[str, str, datetime], bool]:
    def remember(iss: str, jti: str, expires_at: datetime) -> bool:
        with storage.session() as s:
            return repo.remember_jti(s, iss, jti, expires_at)

    return remember


def _base_url(request: Request) -> str:
    """The service's configured base URL (settings.base_url), never the request's Host."""
    base: str = request.app.state.settings.base_url
    return base


def caller(request: Request, path: str) -> client_jwt.CdsCaller:
    """The verified caller. The audience is this service's URL for `path` (CDS Hooks 2.0),
    built from the configured base URL: from the request's Host, a token minted for another
    service would pass when sent with that service's Host header."""
    return client_jwt.verify_client_jwt(
        _bearer(request),
        _base_url(request) + path,
        request.app.state.cds_issuers,
        _jti_store(request.app.state.storage),
    )


@router.get("")
def discovery(request: Request) -> Response:
    """The services this endpoint offers (the JWT is checked here too)."""
    caller(request, router.prefix)
    return _json(cards.discovery())


PATIENT_VIEW = f"{router.prefix}/{limits.SERVICE_ID}"


@router.post(f"/{limits.SERVICE_ID}")
async def patient_view(request: Request, db: Db, audit: Audit) -> Response:
    """At most one card: the patient's dropout risk, its main reason and what to do."""
    who = await _run(caller, request, PATIENT_VIEW)
    hook = await json_body(request, hooks.HookRequest)
    model = current_model(request, who.clinic)  # the issuer's tenant
    result = await _run(_result, db, audit, who, hook, model, request.app.state.settings)
    if result is None:
        return _json(cards.cards_response([]))
    link = f"{_base_url(request)}/ui/clients/{hook.context.patientId}"
    return _json(cards.cards_response([cards.card(result, link, str(uuid.uuid4()))]))


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    """Database work off the event loop."""
    return await run_in_threadpool(fn, *args)


def _result(
    db: Storage,
    audit: Auditor,
    who: client_jwt.CdsCaller,
    hook: hooks.HookRequest,
    model: LoadedModel,
    settings: Any,
) -> Prediction | None:
    """The risk from the prefetch Observations when the EHR sent them, else from the
    clinic's stored sessions of that patient; None when there is nothing to score."""
    patient = hook.context.patientId
    actor = Actor(clinic=who.clinic, name=f"cds:{who.iss}|{who.sub or '-'}")
    body = _prefetched(hook)
    with db.session() as s:
        if body is None:
            client = repo.get_client(s, who.clinic, patient)
            sessions = [] if client is None else repo.get_sessions(s, who.clinic, patient)
            body = None if client is None or not sessions else episode(client, sessions)
        if body is None:
            return None
        result = score(model, [body], settings.max_landmark, who.clinic)[0]
        if isinstance(result, NotAtLandmark):
            return None
        audit(s, actor, "cds.patient_view", patient, model.version)
    return result


_OURS = {(m.system, m.code) for m in codes.MEASURES}


def _ours(entry: Any) -> bool:
    """Prefetch answers `Observation?category=survey`, which may hold other surveys (GAD-7,
    say) and search outcome entries: keep our measures, questionnaires and the patient.

    The prefetch is untyped JSON from the caller: any member may have any JSON type, so
    each is type-checked before use (a malformed entry is a 422 or ignored, never a 500)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    search = entry.get("search") if isinstance(entry, dict) else None
    if not isinstance(resource, dict):
        return False
    if isinstance(search, dict) and search.get("mode") == "outcome":
        return False
    kind = resource.get("resourceType")
    if kind != "Observation":
        return kind in ("Patient", "QuestionnaireResponse")
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return isinstance(codings, list) and any(_our_coding(c) for c in codings)


def _our_coding(coding: Any) -> bool:
    if not isinstance(coding, dict):
        return False
    system, code = coding.get("system"), coding.get("code")
    return isinstance(system, str) and isinstance(code, str) and (system, code) in _OURS


def _prefetched(hook: hooks.HookRequest) -> EpisodeIn | None:
    """The episode in the prefetch bundle, if the EHR sent one with our observations."""
    bundle = (hook.prefetch or {}).get("alliance")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("entry"), list):
        return None
    entries = [e for e in bundle["entry"] if _ours(e)]
    if not any(e["resource"]["resourceType"] != "Patient" for e in entries):
        return None
    parsed = reading.episode_from_bundle({**bundle, "entry": entries})
    if parsed.patient_id != hook.context.patientId:
        raise codes.FhirInputError(
            [
                codes.Issue(
                    "error",
                    "invalid",
                    f"prefetch.alliance: subject Patient/{parsed.patient_id} is not the "
                    f"context's patient {hook.context.patientId}",
                    "Bundle.entry.resource.subject",
                )
            ]
        )
    return EpisodeIn.model_validate(parsed.episode)
