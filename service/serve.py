"""Starting uvicorn: the settings travel to the workers as environment variables, since
each worker process builds its own app from them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import uvicorn


def run_server(host: str, port: int, workers: int, models_dir: Path) -> None:
    os.environ["DROPOUT_RISK_MODELS_DIR"] = str(models_dir.resolve())
    # the bind address is the service's base URL when DROPOUT_RISK_PUBLIC_URL is unset
    os.environ["DROPOUT_RISK_HOST"], os.environ["DROPOUT_RISK_PORT"] = host, str(port)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one worker per core; no thread fights
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dropout-metrics-")
    uvicorn.run(
        "service.app:app",
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # paths are logged by our own middleware metrics, never ids
        log_level=os.environ.get("DROPOUT_RISK_LOG_LEVEL", "info"),
        loop="uvloop",
        http="httptools",
    )
