"""`dropout-risk serve`, starting uvicorn: the settings travel to the workers as environment
variables, since each worker process builds its own app from them."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated, TypedDict

import typer
import uvicorn

from service.core.http_protocol import HeadLimitedHttpToolsProtocol
from service.core.settings import Settings, load_settings


class UvicornOptions(TypedDict):
    """What `run_server` hands uvicorn (uvicorn.run's keyword arguments)."""

    host: str
    port: int
    workers: int
    access_log: bool
    log_level: str
    loop: str
    http: type[asyncio.Protocol]
    timeout_worker_healthcheck: int


def uvicorn_options(host: str, port: int, workers: int, settings: Settings) -> UvicornOptions:
    return UvicornOptions(
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # paths are logged by our own middleware metrics, never ids
        log_level=settings.log_level,
        loop="uvloop",
        http=HeadLimitedHttpToolsProtocol,  # httptools with a cap on the request head
        # a starting worker may be seconds late to answer (warming its model): not hung
        timeout_worker_healthcheck=settings.worker_healthcheck_seconds,
    )


def run_server(host: str, port: int, workers: int, models_dir: Path) -> None:
    os.environ["DROPOUT_RISK_MODELS_DIR"] = str(models_dir.resolve())
    # the bind address is the service's base URL when DROPOUT_RISK_PUBLIC_URL is unset
    os.environ["DROPOUT_RISK_HOST"], os.environ["DROPOUT_RISK_PORT"] = host, str(port)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one worker per core; no thread fights
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dropout-metrics-")
    uvicorn.run("service.app:app", **uvicorn_options(host, port, workers, Settings()))


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Interface (default: DROPOUT_RISK_HOST or 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port (default: DROPOUT_RISK_PORT or 8000)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes (default: DROPOUT_RISK_WORKERS or 1).",
        ),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir", help="Model registry (default: DROPOUT_RISK_MODELS_DIR or models)."
        ),
    ] = None,
) -> None:
    """Run the prediction API (service.app:app) with uvicorn; options override settings."""
    settings = load_settings()  # a bad DROPOUT_RISK_* variable: exit 2 naming it
    run_server(
        host or settings.host,
        port or settings.port,
        workers or settings.workers,
        models_dir or settings.models_dir,
    )
