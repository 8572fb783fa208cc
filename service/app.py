"""The FastAPI application. `service.app:app` is what uvicorn serves.

It assembles the rooms (docs/architecture.md, which also follows a prediction through
them): the routers of service.api and service.ui, the scoring room (the
verified champion, the micro-batcher), storage, keys and the CDS issuers. Nothing heavy
happens at import; the model and keys are loaded in the lifespan.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from service.api import cds, clients, errors, fhir, health, models, monitoring, predictions
from service.core.body import install_openapi
from service.core.middleware import BodyLimit, Metrics, Unexpected
from service.core.observability import Pseudonymizer, configure_logging
from service.core.settings import Settings, announce_base_url, get_settings
from service.interop.cds.issuers import load_issuers
from service.scoring.batcher import MicroBatcher
from service.scoring.model_store import ModelStore
from service.scoring.monitoring_window import ReportCache
from service.scoring.records import Auditor
from service.scoring.rescoring import RescoreLimits, Rescorer
from service.security.key_store import DbKeyStore
from service.storage.database import Storage
from service.storage.engine import normalise_url
from service.ui import routes as ui_routes
from service.warmup import warm_routes, warm_up
from training.registry import Registry

GC_THRESHOLDS = (50_000, 20, 100)  # gen0 allocations, then gen0 and gen1 collections


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        announce_base_url(settings)
        app.state.settings = settings
        # The champion is verified and warmed before this worker accepts a connection (the
        # server listens only once the lifespan has started): a worker that is not warm is
        # never asked. A registry that cannot be trusted does not stop the start: the worker
        # comes up not-ready (503) and loads the model once the file is fixed.
        app.state.models = ModelStore(
            Registry(settings.models_dir),
            settings.reload_seconds,
            warm=partial(warm_up, max_landmark=settings.max_landmark),
        )
        app.state.models.refresh(force=True)
        url = normalise_url(settings.database_url)
        app.state.storage = Storage(url, settings.migrate_on_start, settings)
        app.state.storage.start()
        app.state.keys = DbKeyStore(
            app.state.storage.factory,
            settings.key_cache_seconds,
            prepare=app.state.storage.ensure_migrated,
        )
        app.state.pseudonym = Pseudonymizer(settings.pseudonym_key_file)
        app.state.auditor = Auditor(app.state.pseudonym)
        app.state.cds_issuers = load_issuers(settings.cds_issuers_file)
        app.state.batcher = MicroBatcher(settings.max_landmark)
        rescorer = Rescorer(
            app.state.storage,
            app.state.models,
            app.state.auditor,
            settings.max_landmark,
            RescoreLimits(batch=settings.rescore_batch, idle=settings.rescore_idle_seconds),
        )
        if settings.rescore_idle_seconds > 0:
            rescorer.start()
        app.state.rescorer = rescorer
        app.state.reports = ReportCache()  # GET /v1/monitoring's; no prediction reads it
        await warm_routes(app)
        # Everything loaded so far (libraries, the model) lives as long as the process:
        # freezing it keeps the garbage collector from re-scanning it on every collection a
        # request triggers, which halved the time of a 1,000-client batch (bench/api.py).
        # A batch still allocates some 50,000 objects, almost none of them in cycles; at
        # the default threshold (700) that is ~70 collections a request, a quarter of its
        # time. Collecting every 50,000 allocations instead bounds the garbage that
        # cycles can hold while it waits to a few MB.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        yield
        rescorer.stop()
        app.state.storage.close()

    app = FastAPI(
        title="dropout-risk",
        version="1",
        summary="Calibrated, explained psychotherapy dropout risk after sessions 1-3.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        # Metrics go to Prometheus (/metrics); nothing here exports OpenTelemetry, whose
        # per-request spans and instruments FastAPI would otherwise run on every call.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    errors.install(app)
    install_openapi(app)
    routers = (predictions, models, clients, fhir, cds, health, monitoring)
    for router in (r.router for r in routers):
        app.include_router(router)
    app.include_router(ui_routes.router)  # the clinician view (server-rendered, /ui)
    app.add_middleware(BodyLimit, limit=settings.body_limit_bytes)
    app.add_middleware(Metrics)
    app.add_middleware(Unexpected)  # outermost: what no handler answered, Metrics counts as 500
    return app


app = create_app()
