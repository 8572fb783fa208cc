"""Metrics and privacy-preserving logs.

Prometheus labels are low-cardinality only (route template, method, status, model version,
risk level). With several workers, prometheus_client's multiprocess mode is used: `serve`
sets PROMETHEUS_MULTIPROC_DIR before the workers start. Logs name a client only by a keyed
pseudonym (HMAC-SHA256 with a per-installation secret), never by id, and never carry
scores, keys or questionnaire answers.
"""

from __future__ import annotations

import hmac
import logging
import os
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic_core import to_json

from service.core.secret_files import load_or_create_secret

REQUESTS = Counter(
    "dropout_risk_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "dropout_risk_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PREDICTIONS = Counter(
    "dropout_risk_predictions_total", "Risks computed", ["model_version", "risk_level"]
)
# Monitoring (GET /v1/monitoring): set when a clinic's report is computed, one series per
# figure. Labels: the clinic, the model version and the figure's name (built from feature,
# instrument and level names and landmarks only: bounded, no client data). The status is
# coded 0 too few or no reference profile, 1 ok, 2 watch, 3 alert; a figure without a
# value keeps no value series.
MONITORING_LABELS = ["clinic", "model_version", "figure"]
MONITORING_VALUE = Gauge(
    "dropout_risk_monitoring_figure_value",
    "A monitoring figure's value at its last report",
    MONITORING_LABELS,
    multiprocess_mode="mostrecent",
)
MONITORING_STATUS = Gauge(
    "dropout_risk_monitoring_figure_status",
    "A monitoring figure's status at its last report (0 unrated, 1 ok, 2 watch, 3 alert)",
    MONITORING_LABELS,
    multiprocess_mode="mostrecent",
)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def record_monitoring(
    clinic: str, model_version: str, figures: list[tuple[str, float | None, int]]
) -> None:
    """Set the monitoring gauges of one report: (figure name, value, status code) each."""
    for name, value, status in figures:
        MONITORING_STATUS.labels(clinic, model_version, name).set(status)
        if value is None or value != value:
            with suppress(KeyError):  # no value now: no stale one from an earlier report
                MONITORING_VALUE.remove(clinic, model_version, name)
        else:
            MONITORING_VALUE.labels(clinic, model_version, name).set(value)


@lru_cache(maxsize=64)
def predictions_counter(model_version: str, risk_level: str) -> Counter:
    """The counter of one (model version, risk level): looked up once, since labels() takes
    a lock and checks its arguments on every call (a batch counts 1,000 predictions)."""
    return PREDICTIONS.labels(model_version, risk_level)


def metrics_text() -> bytes:
    """The exposition, merged across workers when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


class Pseudonymizer:
    """Keyed pseudonyms for client ids; the key file is created once, readable by owner."""

    def __init__(self, key_file: Path) -> None:
        self._key = load_or_create_secret(key_file)

    def __call__(self, client_id: str) -> str:
        # hmac.digest is the one-shot C path: the same HMAC-SHA256 as hmac.new, a few times
        # faster (a batch pseudonymises 1,000 ids); stored audit pseudonyms stay valid.
        return hmac.digest(self._key, client_id.encode(), "sha256").hex()[:16]


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed as `extra={"event": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "event", {}),
        }
        return to_json(body).decode()  # pydantic-core's: compact, UTF-8, 6x json.dumps


def configure_logging(level: str) -> None:
    """JSON lines on stderr from the service's loggers (dropout_risk.*).

    Written synchronously: a writer thread was tried (QueueHandler) and made one-client
    predictions slower, since handing the GIL back and forth costs more than the write."""
    # What our lines never show need not be collected for every record (the logging
    # HOWTO's "Optimization": a fifth of the cost of creating one).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("dropout_risk")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
