"""DROPOUT_RISK_PUBLIC_URL: the one base of the service's own URLs (CDS audience, FHIR
implementation.url, card links), validated once, and the start-up line that names it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.core.settings import Settings, announce_base_url
from training.cli import run


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://risk.clinic.example", "https://risk.clinic.example"),
        ("https://risk.clinic.example/", "https://risk.clinic.example"),
        ("http://10.0.0.5:8080/dropout//", "http://10.0.0.5:8080/dropout"),
    ],
)
def test_public_url_is_the_base_without_a_trailing_slash(given: str, base: str) -> None:
    assert Settings(public_url=given).base_url == base


@pytest.mark.parametrize(
    "bad",
    [
        "risk.clinic.example",
        "/cds-services",
        "ftp://risk.clinic.example",
        "https://",
        "https://risk.clinic.example/?x=1",
        "https://risk.clinic.example/#top",
        "https://user:pw@risk.clinic.example",
        "https://risk clinic.example",
        "https://risk.clinic.example/\n",
    ],
)
def test_a_bad_public_url_is_refused_naming_it(
    bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError, match="absolute http"):
        Settings(public_url=bad)
    monkeypatch.setenv("DROPOUT_RISK_PUBLIC_URL", bad)
    assert run(["serve"]) == 2  # before uvicorn starts: no traceback
    assert capsys.readouterr().err == (
        f"error: DROPOUT_RISK_PUBLIC_URL: value {bad!r} must be an absolute http(s) URL of "
        "at most 512 characters, without credentials, query or fragment, e.g. "
        "https://risk.clinic.example\n"
    )


def test_public_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROPOUT_RISK_PUBLIC_URL", "https://risk.clinic.example/")
    assert Settings().base_url == "https://risk.clinic.example"


def test_without_it_the_bind_address_is_used_and_said(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(host="0.0.0.0", port=9001)
    assert settings.base_url == "http://0.0.0.0:9001"
    assert Settings(host="::1", port=8000).base_url == "http://[::1]:8000"
    # Other tests' apps reconfigure the dropout_risk loggers (configure_logging stops their
    # propagation; pytest's handlers may sit on them): capture at this logger alone.
    logger = logging.getLogger("dropout_risk.settings")
    monkeypatch.setattr(logger, "propagate", False)
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="dropout_risk.settings"):
            announce_base_url(settings)
            announce_base_url(Settings(public_url="https://risk.clinic.example"))
    finally:
        logger.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records] == [
        "DROPOUT_RISK_PUBLIC_URL is not set: CDS audiences and FHIR/card links use the bind "
        "address http://0.0.0.0:9001; set it when the service is reached through a proxy",
        "public URL https://risk.clinic.example (DROPOUT_RISK_PUBLIC_URL)",
    ]


def test_serve_hands_the_bind_address_to_the_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each worker builds its settings from the environment: `serve --host/--port` must
    reach it, or the base URL would name the default port."""
    import service.commands.serve

    for name in ("DROPOUT_RISK_HOST", "DROPOUT_RISK_PORT", "DROPOUT_RISK_MODELS_DIR"):
        monkeypatch.setenv(name, "")  # recorded, so what run_server sets is undone after
        monkeypatch.delenv(name)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(service.commands.serve.uvicorn, "run", lambda *a, **k: None)
    service.commands.serve.run_server("127.0.0.2", 9123, 1, tmp_path)
    assert Settings().base_url == "http://127.0.0.2:9123"
