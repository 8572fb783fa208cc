"""Property-based API testing against the app's own OpenAPI schema: generated requests,
valid and invalid, never get a 5xx or a response that breaks the declared schema."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.core.settings import Settings
from service.security.api_keys import SCOPES
from tests.support.helpers import REPO, create_key

TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    root = tmp_path_factory.mktemp("st")
    shutil.copytree(REPO / "models", root / "models")
    url = f"sqlite:///{root / 'service.db'}"
    TOKEN["value"] = create_key(url, "clinic-a", list(SCOPES))
    application = create_app(
        Settings(
            models_dir=root / "models",
            database_url=url,
            pseudonym_key_file=root / "p.key",
        )
    )
    with TestClient(application):  # runs the lifespan: model, keys, pseudonymizer
        yield application


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_no_server_error_and_schema_conformance(
    app: FastAPI, mode: schemathesis.GenerationMode
) -> None:
    """Each operation gets 25 generated requests per mode, valid (positive) and invalid
    (negative), derandomized so CI is repeatable."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {TOKEN['value']}"}
    # FHIR and CDS Hooks speak their own formats (FHIR resources, signed JWTs): their
    # tests are tests/service/interop/test_fhir_api.py and tests/service/interop/test_cds_api.py.
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if not op.path.startswith(("/fhir", "/cds-services"))
    ]
    assert len(operations) == 16
    if mode == schemathesis.GenerationMode.NEGATIVE:  # only inputs can be made invalid
        operations = [op for op in operations if op.method.upper() in ("POST", "PUT")]
        assert len(operations) == 7
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.validate_response(case.call(headers=headers), checks=CHECKS)

        check()


def test_schema_has_every_endpoint(app: FastAPI) -> None:
    paths = set(app.openapi()["paths"])
    assert paths == {
        "/v1/predictions",
        "/v1/predictions/batch",
        "/v1/models",
        "/v1/models/current",
        "/v1/models/{version}/promote",
        "/v1/clients/{client_id}",
        "/v1/clients/{client_id}/sessions/{number}",
        "/v1/clients/{client_id}/outcome",
        "/v1/clients/{client_id}/risk",
        "/v1/clients/{client_id}/risk/history",
        "/v1/clients/{client_id}/flag/acknowledge",
        "/v1/caseload",
        "/v1/monitoring",
        "/fhir/r4/metadata",
        "/fhir/r4/RiskAssessment/$predict",
        "/fhir/r4/RiskAssessment",
        "/cds-services",
        "/cds-services/dropout-risk",
        "/healthz",
        "/readyz",
        "/metrics",
    }
