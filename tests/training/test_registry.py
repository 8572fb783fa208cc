"""registry.json and metadata.json against their typed schema, at every door: the loader,
the CLI (exit 2, one message), and the service (a running worker keeps its model, a fresh
one comes up not-ready and recovers when the file is fixed). No message shows a path."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.app import create_app
from service.core.examples import EXAMPLE_EPISODE
from service.core.observability import REQUESTS
from service.core.settings import Settings
from service.scoring.model_store import ModelStore
from service.scoring.score import _SERVING
from service.warmup import UNISSUED_TOKEN, WarmUpFailed, warm_up
from tests.support.helpers import REPO, create_key, train, updated_version
from training.artifact_schema import ModelMetadata
from training.cli import run
from training.errors import ArtifactError, RegistryError, RegistryInvalid
from training.registry import LoadedModel, Registry, sha256_of

BAD_VERSIONS: list[Any] = [[{}], [1], "x"]
# An absolute path in a message: /something/... (a URL path like /v1/... is not one here).
SHIPPED = Registry(REPO / "models").read()["champion"]
SERVER_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*")


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(REPO / "models", folder)
    return folder


def _registry_json(models: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((models / "registry.json").read_text())
    return data


def _write_versions(models: Path, versions: Any) -> None:
    (models / "registry.json").write_text(json.dumps({"champion": "x", "versions": versions}))


@pytest.mark.parametrize("versions", BAD_VERSIONS, ids=["empty-object", "number", "string"])
def test_a_registry_breaking_its_schema_is_refused_with_the_field(
    models: Path, versions: Any
) -> None:
    _write_versions(models, versions)
    with pytest.raises(RegistryInvalid) as caught:
        Registry(models).load()
    message = str(caught.value)
    assert message.startswith("registry.json does not match its schema: versions")
    assert str(models) not in message


def test_the_registry_names_each_missing_field(models: Path) -> None:
    _write_versions(models, [{}])
    with pytest.raises(RegistryInvalid) as caught:
        Registry(models).index()
    message = str(caught.value)
    for field in ("version", "created_at", "sha256", "metadata_sha256", "estimator"):
        assert f"versions[0].{field}: Field required (value: {{}})" in message


def test_registry_that_is_not_json_is_refused(models: Path) -> None:
    (models / "registry.json").write_text("{not json")
    with pytest.raises(RegistryInvalid, match=r"registry\.json does not match its schema"):
        Registry(models).index()


def _rewrite_metadata(models: Path, change: dict[str, Any], drop: str | None = None) -> str:
    """Edit the champion's metadata.json and record its new hash, as a careless (or newer)
    writer would: the hash matches, so only the schema can catch it."""
    registry = _registry_json(models)
    version = str(registry["champion"])
    path = models / version / "metadata.json"
    meta = {**json.loads(path.read_text()), **change}
    if drop:
        del meta[drop]
    path.write_text(json.dumps(meta))
    registry["versions"][0]["metadata_sha256"] = sha256_of(path)
    (models / "registry.json").write_text(json.dumps(registry))
    return version


def test_metadata_breaking_its_schema_is_refused(models: Path) -> None:
    version = _rewrite_metadata(models, {"landmarks": ["one"]}, drop="thresholds")
    with pytest.raises(ArtifactError) as caught:
        Registry(models).load()
    message = str(caught.value)
    assert message.startswith(f"model {version}: metadata.json does not match its schema")
    assert "landmarks[0]: Input should be a valid integer (value: 'one')" in message
    assert "thresholds: Field required" in message


def test_metadata_keeps_unknown_keys_and_types_the_known_ones(models: Path) -> None:
    ranges = {"feature_range": {"age": [18, 80]}, "written_by_a_newer_trainer": [{"name": "a"}]}
    _rewrite_metadata(models, ranges)
    loaded = Registry(models).load()
    assert isinstance(loaded.meta, ModelMetadata)
    assert loaded.meta.landmarks == [1, 2, 3]
    assert loaded.meta.thresholds.moderate == loaded.metadata["thresholds"]["moderate"]
    assert loaded.meta.feature_range == {"age": [18.0, 80.0]}  # typed: floats
    assert loaded.meta.model_extra == {"written_by_a_newer_trainer": [{"name": "a"}]}


def _untyped_keys(value: object, path: str) -> list[str]:
    """The keys of every stored document under `value` that its schema does not declare."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _untyped_keys(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list):
        return [k for i, item in enumerate(value) for k in _untyped_keys(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in _untyped_keys(item, f"{path}.{key}")]
    return []


def test_every_key_train_and_update_write_is_typed(updated_registry: Path) -> None:
    """The card, the report and the CLI read the typed metadata only: a key that train or
    update writes but the schema does not declare would be invisible to them."""
    registry = Registry(updated_registry)
    shipped, updated = registry.load(SHIPPED), registry.load(updated_version(updated_registry))
    assert updated.meta.update is not None
    assert updated.meta.update.closed_test.tests  # the sections are read, not defaulted
    assert shipped.meta.specification is not None
    assert shipped.meta.specification.terms
    assert _untyped_keys(shipped.meta, "metadata") == []
    assert _untyped_keys(updated.meta, "metadata") == []


def test_a_comparison_written_before_too_few_existed_still_loads(models: Path) -> None:
    """The first artifacts with the clinic rules wrote no `too_few` per rule: they load,
    every rule with its figures."""
    version = _registry_json(models)["champion"]
    metrics = json.loads((models / version / "metadata.json").read_text())["metrics"]
    for rule in metrics["baselines"]["rules"]:
        del rule["too_few"]
    _rewrite_metadata(models, {"metrics": metrics})
    baselines = Registry(models).load().meta.metrics.baselines
    assert baselines is not None
    assert [r.too_few for r in baselines.rules] == [False, False, False]
    assert baselines.rules[0].model_auc == metrics["baselines"]["rules"][0]["model_auc"]


def test_a_provenance_section_of_the_wrong_type_is_refused(models: Path) -> None:
    version = _rewrite_metadata(models, {"training_data": {"n_clients": "many"}})
    with pytest.raises(ArtifactError) as caught:
        Registry(models).load()
    assert str(caught.value) == (
        f"model {version}: metadata.json does not match its schema: training_data.n_clients: "
        "Input should be a valid integer (value: 'many')"
    )


def test_loader_messages_name_versions_not_paths(models: Path) -> None:
    with pytest.raises(RegistryError) as unknown:
        Registry(models).load("nope")
    assert str(unknown.value) == (f"model version 'nope' is not registered (registered: {SHIPPED})")
    version = _registry_json(models)["champion"]
    (models / version / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(ArtifactError) as tampered:
        Registry(models).load()
    assert str(tampered.value).startswith(
        f"model {version}: model.joblib does not match the sha256 recorded in registry.json"
    )
    (models / version / "model.joblib").unlink()
    with pytest.raises(ArtifactError) as missing:
        Registry(models).load()
    assert str(missing.value) == f"model {version}: model.joblib is missing"
    for error in (unknown, tampered, missing):
        assert not SERVER_PATH.search(str(error.value)), str(error.value)


@pytest.mark.parametrize(
    "command", [["models", "list"], ["models", "promote", "x"], ["models", "report-path"]]
)
def test_cli_on_a_bad_registry_exits_2_with_one_message(
    models: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _write_versions(models, [1])
    assert run([*command, "--models-dir", str(models)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: registry.json does not match its schema: versions[0]")
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


# ---- the service


@pytest.fixture
def key_url(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    return create_key(url, "clinic-a", ["predict", "models:admin", "models:network"]), url


def _settings(models: Path, database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        models_dir=models,
        database_url=database_url,
        pseudonym_key_file=tmp_path / "p.key",
        reload_seconds=0.0,
    )


@pytest.fixture
def service(models: Path, key_url: tuple[str, str], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(models, key_url[1], tmp_path))) as client:
        client.headers["Authorization"] = f"Bearer {key_url[0]}"
        yield client


def test_a_running_service_keeps_its_model_when_the_registry_goes_bad(
    service: TestClient, models: Path
) -> None:
    good = (models / "registry.json").read_text()
    _write_versions(models, [{}])
    predicted = service.post("/v1/predictions", json=EXAMPLE_EPISODE)
    assert predicted.status_code == 200
    assert predicted.json()["model"]["version"] == json.loads(good)["champion"]
    assert service.get("/readyz").status_code == 200
    listed = service.get("/v1/models")
    assert listed.status_code == 503
    detail = listed.json()["detail"][0]
    assert detail["type"] == "registry_invalid"
    assert detail["msg"].startswith("registry.json does not match its schema: versions[0]")
    (models / "registry.json").write_text(good)
    assert service.get("/v1/models").json()["champion"] == json.loads(good)["champion"]


@pytest.mark.parametrize("versions", BAD_VERSIONS[:2], ids=["empty-object", "number"])
def test_a_fresh_start_on_a_bad_registry_is_not_ready_then_recovers(
    models: Path, key_url: tuple[str, str], tmp_path: Path, versions: Any
) -> None:
    good = (models / "registry.json").read_text()
    _write_versions(models, versions)
    with TestClient(create_app(_settings(models, key_url[1], tmp_path))) as client:
        auth = {"Authorization": f"Bearer {key_url[0]}"}
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"][0]["type"] == "model_unavailable"
        assert ready.json()["detail"][0]["msg"].startswith("registry.json does not match")
        predicted = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=auth)
        assert predicted.status_code == 503
        assert predicted.json()["detail"][0]["type"] == "model_unavailable"
        (models / "registry.json").write_text(good)
        assert client.get("/readyz").json()["model_version"] == json.loads(good)["champion"]
        assert client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=auth).status_code == 200


def test_api_error_bodies_show_no_server_path(service: TestClient, models: Path) -> None:
    unknown = service.post("/v1/models/nope/promote")
    assert unknown.status_code == 404
    version = _registry_json(models)["champion"]
    (models / version / "model.joblib").write_bytes(b"tampered")
    tampered = service.post(f"/v1/models/{version}/promote")
    assert tampered.status_code == 409
    bodies = [unknown.text, tampered.text]
    _write_versions(models, [1])
    bodies.append(service.get("/v1/models").text)
    (models / "registry.json").write_text("{broken")
    bodies.append(service.get("/v1/models").text)
    (models / "registry.json").unlink()
    bodies.append(service.get("/readyz").text)  # still ready: the verified model stays
    assert all(not SERVER_PATH.search(body) for body in bodies), bodies
    assert str(models) not in "".join(bodies)


# ---- warm-up before readiness


def test_the_store_is_ready_only_after_the_model_is_warmed(models: Path) -> None:
    seen: list[tuple[bool, LoadedModel]] = []
    store: ModelStore

    def warm(model: LoadedModel) -> None:
        seen.append((store.ready, model))  # asked while warming: not ready yet
        warm_up(model)

    store = ModelStore(Registry(models), reload_seconds=0.0, warm=warm)
    assert not store.ready
    store.refresh(force=True)
    assert store.ready
    assert [(ready, model) for ready, model in seen] == [(False, store.current)]
    assert store.current in _SERVING  # the serving data was built by the warm-up


def test_a_model_that_fails_its_warm_up_is_not_served(models: Path) -> None:
    def broken(model: LoadedModel) -> None:
        raise ArtifactError(f"model {model.version}: cannot score the reference episode")

    store = ModelStore(Registry(models), reload_seconds=0.0, warm=broken)
    store.refresh(force=True)
    assert not store.ready
    assert store.last_error == f"model {SHIPPED}: cannot score the reference episode"


def test_warm_up_reaches_every_landmark_of_the_model(models: Path) -> None:
    loaded = Registry(models).load()
    later = LoadedModel(loaded.model, {**loaded.metadata, "landmarks": [3]}, loaded.probability)
    warm_up(later)  # the two-session example is extended to session 3
    assert later in _SERVING


def test_the_start_sends_one_uncounted_request_through_the_routes(
    models: Path, key_url: tuple[str, str], tmp_path: Path
) -> None:
    """The warm-up request reached the key check (its never-issued key was looked up in the
    database and remembered as unknown) and left no trace in the metrics."""
    refused = REQUESTS.labels("POST", "/v1/predictions", "401")
    before = refused._value.get()  # type: ignore[attr-defined]
    with TestClient(create_app(_settings(models, key_url[1], tmp_path))) as client:
        app: Any = client.app
        assert app.state.keys.cached(UNISSUED_TOKEN) == (True, None)
        assert refused._value.get() == before  # type: ignore[attr-defined]


def test_readyz_is_503_until_a_warm_up_has_succeeded(
    models: Path, key_url: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's readiness follows the warm-up: while it fails, the worker is up (healthz)
    but not ready; once it runs, the same worker is ready without a restart."""
    calls: list[str] = []

    def failing(model: LoadedModel, max_landmark: int | None = None) -> None:
        calls.append(model.version)
        raise WarmUpFailed(f"model {model.version}: the reference episode failed")

    monkeypatch.setattr("service.app.warm_up", failing)
    with TestClient(create_app(_settings(models, key_url[1], tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"][0]["msg"] == (
            f"model {SHIPPED}: the reference episode failed"
        )
        app: Any = client.app
        app.state.models.warm = warm_up  # the next look warms it for real
        assert client.get("/readyz").json()["status"] == "ready"
    assert calls[0] == SHIPPED


def test_a_version_that_cannot_be_warmed_is_not_promoted(models: Path, small_cohort: Path) -> None:
    champion = _registry_json(models)["champion"]
    assert train(small_cohort, models, "--seed", "8") == 0
    new = _registry_json(models)["versions"][-1]["version"]
    assert new != champion

    def refuse(model: LoadedModel) -> None:
        if model.version == new:
            raise WarmUpFailed(f"model {model.version}: the reference episode failed")

    store = ModelStore(Registry(models), reload_seconds=0.0, warm=refuse)
    store.refresh(force=True)
    with pytest.raises(ArtifactError, match="the reference episode failed"):
        store.promote(new)
    assert _registry_json(models)["champion"] == champion
    assert store.current.version == champion
