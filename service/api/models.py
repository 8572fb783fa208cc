"""Model registry endpoints: list and describe the one serving (predict or models:admin),
promote (models:network: the champion is served to every clinic)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from service.api.deps import ERRORS, Model, Models, ModelsReadKey, NetworkKey
from service.core.schemas import ErrorOut, Identifier, ModelInfoOut, ModelsOut, PromotedOut

router = APIRouter(prefix="/v1/models", tags=["models"])
Version = Annotated[Identifier, Path()]


@router.get("", response_model=ModelsOut, responses=ERRORS)
async def list_models(store: Models, key: ModelsReadKey) -> Any:
    """Registered versions and the champion."""
    index = store.registry.index()  # a registry that breaks its schema: 503 (registry_invalid)
    return {
        "champion": index.champion,
        "versions": [
            {
                **v.model_dump(include={"version", "created_at", "sha256", "estimator", "auc"}),
                "champion": v.version == index.champion,
            }
            for v in index.versions
        ],
    }


@router.get("/current", response_model=ModelInfoOut, responses=ERRORS)
async def current(key: ModelsReadKey, model: Model) -> Any:
    """The model answering this caller on this worker now: its clinic's champion, else the
    network default (the key comes first: the model is resolved by its tenant)."""
    meta = model.metadata
    return {k: meta[k] for k in ModelInfoOut.model_fields}


@router.post(
    "/{version}/promote",
    response_model=PromotedOut,
    responses={**ERRORS, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def promote(store: Models, key: NetworkKey, version: Version) -> Any:
    """Make a registered version the champion. It is verified first; a version that fails
    its integrity check is refused (409) and the current one keeps serving."""
    previous = store.promote(version)
    return {"champion": store.current.version, "previous": previous}
