"""The real server (`dropout-risk serve`) on a free loopback port, for tests that need real
worker processes, HTTP and a browser. One place for starting it, waiting until it is
ready (bounded) and stopping it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(
    root: Path, database_url: str, models_dir: Path, workers: int, **env: str
) -> Iterator[str]:
    """The base URL of a server using `database_url`; its pseudonym key, UI secret and
    metrics files live under `root` (metrics in their own folder: the multiprocess collector
    reads every *.db file in it). `env` adds DROPOUT_RISK_* settings."""
    metrics = root / "metrics"
    metrics.mkdir(exist_ok=True)
    port = free_port()
    environment = {
        **os.environ,
        "DROPOUT_RISK_DATABASE_URL": database_url,
        "DROPOUT_RISK_PSEUDONYM_KEY_FILE": str(root / "pseudonym.key"),
        "DROPOUT_RISK_UI_SECRET_FILE": str(root / "ui-session.key"),
        "DROPOUT_RISK_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        **env,
    }
    command = [sys.executable, "-c", "from training.cli import main; main()", "serve"]
    args = ["--port", str(port), "--workers", str(workers), "--models-dir", str(models_dir)]
    proc = subprocess.Popen(
        [*command, *args], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready in {seconds:.0f} s")
