"""Each API caller is served its clinic's champion, else the network default: predictions,
FHIR and /v1/models/current resolve the model by the key's tenant."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.core.examples import EXAMPLE_EPISODE
from service.core.prediction import Prediction
from service.core.settings import Settings
from service.core.standing import standing_note
from tests.support.helpers import CLINIC, create_key, updated_version
from training.registry import Registry


@pytest.fixture(scope="module")
def served(
    updated_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str], str, str]]:
    """A live app over a registry whose clinic CLINIC has its own champion (the version
    updated on its data) and clinic-b none; the keys of both clinics; the two versions."""
    models = tmp_path_factory.mktemp("champions") / "models"
    shutil.copytree(updated_registry, models)
    registry = Registry(models)
    default, local = registry.champion_of(None), updated_version(models)
    assert default is not None
    registry.promote(local, clinic=CLINIC)
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.db'}"
    keys = {
        "a": create_key(url, CLINIC, ["predict"]),
        "b": create_key(url, "clinic-b", ["predict"]),
    }
    settings = Settings(
        models_dir=models,
        database_url=url,
        pseudonym_key_file=tmp_path_factory.mktemp("p") / "pseudonym.key",
        reload_seconds=0.0,
    )
    with TestClient(create_app(settings)) as client:
        yield client, keys, default, local


def _auth(keys: dict[str, str], clinic: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[clinic]}"}


def test_models_current_names_the_callers_champion(
    served: tuple[TestClient, dict[str, str], str, str],
) -> None:
    client, keys, default, local = served
    assert default != local
    a = client.get("/v1/models/current", headers=_auth(keys, "a")).json()
    b = client.get("/v1/models/current", headers=_auth(keys, "b")).json()
    assert (a["version"], b["version"]) == (local, default)


def test_predictions_are_scored_by_the_callers_champion(
    served: tuple[TestClient, dict[str, str], str, str],
) -> None:
    client, keys, default, local = served
    a = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=_auth(keys, "a")).json()
    b = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=_auth(keys, "b")).json()
    assert (a["model"]["version"], b["model"]["version"]) == (local, default)
    batch = {"clients": [EXAMPLE_EPISODE]}
    a_batch = client.post("/v1/predictions/batch", json=batch, headers=_auth(keys, "a")).json()
    assert a_batch["results"][0]["prediction"]["model"]["version"] == local


def test_each_door_says_the_models_standing_at_the_callers_clinic(
    served: tuple[TestClient, dict[str, str], str, str],
) -> None:
    """Updated on this clinic's data: "local" with the date of the update; the network
    default: "network-default", and the FHIR note says it is not yet checked here."""
    client, keys, _, local = served
    updated_on = Registry(client.app.state.settings.models_dir).load(local).meta.created_at
    a = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=_auth(keys, "a")).json()
    b = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=_auth(keys, "b")).json()
    assert (a["calibration"], a["locally_updated_on"]) == ("local", updated_on[:10])
    assert (b["calibration"], b["locally_updated_on"]) == ("network-default", None)
    assert (
        standing_note(Prediction.from_json(a))
        == f"Model updated on this clinic's own outcomes ({updated_on[:10]})."
    )
    assert standing_note(Prediction.from_json(b)).startswith(
        "Network default model, not yet checked at this clinic"
    )
