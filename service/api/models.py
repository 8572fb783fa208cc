"""Model registry endpoints: list and describe the one serving (predict or models:admin),
promote: a clinic's models:admin changes its own clinic's champion, models:network the
network default. Either way the promotion rule of `training.promotion` applies (a
challenger needs a passing comparison against the champion it replaces, unless forced with
a reason), the actor is the key, and the change is in the registry history and the audit
log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from service.api.deps import ERRORS, Audit, Db, Model, Models, ModelsReadKey, PromoteKey, actor
from service.core.body import documented, json_body
from service.core.schemas import (
    ErrorOut,
    Identifier,
    ModelInfoOut,
    ModelsOut,
    ModelVersionOut,
    PromotedOut,
    PromoteIn,
)

router = APIRouter(prefix="/v1/models", tags=["models"])
Version = Annotated[Identifier, Path()]


@router.get("", response_model=ModelsOut, responses=ERRORS)
async def list_models(store: Models, key: ModelsReadKey) -> Any:
    """Registered versions and the champion."""
    index = store.registry.index()  # a registry that breaks its schema: 503 (registry_invalid)
    return ModelsOut(
        champion=index.champion,
        versions=[
            ModelVersionOut(
                version=v.version,
                created_at=v.created_at,
                sha256=v.sha256,
                estimator=v.estimator,
                auc=v.auc,
                champion=v.version == index.champion,
            )
            for v in index.versions
        ],
    )


@router.get("/current", response_model=ModelInfoOut, responses=ERRORS)
async def current(key: ModelsReadKey, model: Model) -> Any:
    """The model answering this caller on this worker now: its clinic's champion, else the
    network default (the key comes first: the model is resolved by its tenant)."""
    return ModelInfoOut.model_validate(model.meta, from_attributes=True)


async def _promote_order(request: Request) -> PromoteIn:
    """The optional body, read by the service's one JSON body rule (415, 422, duplicate
    keys) when there is one; none: promote under the rule, unforced."""
    if not await request.body():
        return PromoteIn()
    return await json_body(request, PromoteIn)


_OPTIONAL_BODY = documented(PromoteIn)
_OPTIONAL_BODY["requestBody"]["required"] = False


@router.post(
    "/{version}/promote",
    response_model=PromotedOut,
    responses={**ERRORS, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    openapi_extra=_OPTIONAL_BODY,
)
async def promote(
    store: Models,
    key: PromoteKey,
    db: Db,
    audit: Audit,
    version: Version,
    order: Annotated[PromoteIn, Depends(_promote_order)],
) -> Any:
    """Make a registered version the champion of the caller's clinic (models:admin) or the
    network default (models:network). It is verified first and must pass the promotion
    rule (409 naming the rule otherwise, and nothing changes); a version that fails its
    integrity check is refused (409) and the current one keeps serving."""
    clinic = None if "models:network" in key.scopes else key.tenant
    who = actor(key)
    with db.session() as s:
        # The audit row reaches the database before the registry changes, and is rolled
        # back if the promotion is refused: no promotion goes unaudited when the database
        # is away (503, the champion unchanged), and no refusal is recorded as one.
        audit(s, who, "model.promote" if clinic else "model.promote_network", None, version)
        s.flush()
        previous = store.promote(
            version, clinic, actor=who.name, force=order.force, reason=order.reason
        )
    return {"champion": store.for_clinic(clinic).version, "previous": previous}
