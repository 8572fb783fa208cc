"""The route warm-up at start-up (service.warmup.warm_routes): it sends a prediction through
the app's router below the middleware, relying on a private FastAPI detail (the exit
stack its routes expect in the scope). It must reach the key check on the FastAPI this
project installs, and it must never stop the service from starting if a release changes
that detail."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app
from service.core.settings import Settings
from service.security.key_store import DbKeyStore
from service.warmup import UNISSUED_TOKEN, warm_routes
from tests.support.helpers import REPO


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        models_dir=REPO / "models",
        database_url=f"sqlite:///{tmp_path / 'service.db'}",
        pseudonym_key_file=tmp_path / "p.key",
        ui_secret_file=tmp_path / "ui.key",
    )


def test_the_warm_up_reaches_the_key_check_on_this_fastapi(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start-up the warm-up's request goes through the route's dependencies to the key
    store, which refuses its never-issued key; nothing is logged as skipped."""
    asked: list[str] = []
    verify = DbKeyStore.verify

    def spied(self: DbKeyStore, token: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(token)
        return verify(self, token, *args, **kwargs)

    monkeypatch.setattr(DbKeyStore, "verify", spied)
    with (
        caplog.at_level(logging.WARNING, "dropout_risk.warmup"),
        TestClient(create_app(_settings(tmp_path))) as client,
    ):
        assert client.get("/healthz").status_code == 200
    assert asked == [UNISSUED_TOKEN]
    assert [r.getMessage() for r in caplog.records if r.name == "dropout_risk.warmup"] == []


def test_a_warm_up_that_fails_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Should a FastAPI release change what its routes expect, the warm-up fails: the
    service starts anyway, and the log says so by the exception's type alone."""

    async def changed(_scope: Any, _receive: Any, _send: Any) -> None:
        raise KeyError("fastapi_middleware_astack")

    app = cast(FastAPI, SimpleNamespace(router=changed))
    with caplog.at_level(logging.WARNING, "dropout_risk.warmup"):
        asyncio.run(warm_routes(app))
    messages = [r.getMessage() for r in caplog.records if r.name == "dropout_risk.warmup"]
    assert messages == ["route warm-up skipped: KeyError (the first request pays for it)"]
