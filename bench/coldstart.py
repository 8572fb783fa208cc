"""Cold start (issue 11): how soon a new server answers a prediction at full speed.

`dropout-risk serve --workers 2` is started with numba's cache pointed at an empty temporary
folder (a new container without a baked cache), then again on the cache the first start
filled (a restart, or an image with the cache baked in: the Dockerfile bakes it). For each
start it measures, on loopback:
- seconds until /readyz first answers 200 (polled every 20 ms);
- the first prediction sent right after that, and four concurrent first predictions on
  fresh connections (target: <= 50 ms each);
- the reference: the median of 50 predictions on one connection once the server has
  settled, in the same run.

Usage: .venv/bin/python bench/coldstart.py [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx

from service.core.examples import EXAMPLE_EPISODE as EXAMPLE
from service.security.key_store import DbKeyStore
from service.storage.database import Storage

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
BOUND_SECONDS = 300  # a start that takes longer is reported as a failure


@dataclass
class Start:
    ready_s: float
    first_ms: float
    concurrent_ms: list[float]
    settled_ms: float


def _serve(root: Path, cache: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(cache),
        "DROPOUT_RISK_DATABASE_URL": f"sqlite:///{root / 'service.db'}",
        "DROPOUT_RISK_PSEUDONYM_KEY_FILE": str(root / "pseudonym.key"),
        "DROPOUT_RISK_LOG_LEVEL": "warning",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-c", "from training.cli import main; main()", "serve"]
    args = ["--port", str(port), "--workers", "2", "--models-dir", str(REPO / "models")]
    log = (root / "server.log").open("ab")  # read when a start fails
    return subprocess.Popen([*command, *args], env=env, stdout=log, stderr=log)


def _ready_after(url: str, proc: subprocess.Popen[bytes], started: float) -> float:
    while time.monotonic() - started < BOUND_SECONDS:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} (see server.log)")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"not ready within {BOUND_SECONDS} s (see server.log)")


def _client(url: str, token: str) -> httpx.Client:
    """A client made before the clock starts (making one costs milliseconds of TLS set-up,
    on the client's side); its first request opens a new connection."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _predict_ms(client: httpx.Client) -> float:
    """One prediction, in milliseconds (connecting included on a new client)."""
    started = time.perf_counter()
    response = client.post("/v1/predictions", json=EXAMPLE)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def _start(root: Path, cache: Path, token: str) -> Start:
    with socket.socket() as sock:  # a free loopback port
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = _serve(root, cache, port)
    clients = [_client(url, token) for _ in range(6)]
    try:
        ready = _ready_after(url, proc, started)
        first = _predict_ms(clients[0])
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(_predict_ms, clients[1:5]))
        time.sleep(1.0)
        settled = median(_predict_ms(clients[5]) for _ in range(50))
    finally:
        for client in clients:
            client.close()
        proc.terminate()
        proc.wait(timeout=30)
    return Start(ready, first, concurrent, settled)


def _report(name: str, run: Start) -> bool:
    worst = max([run.first_ms, *run.concurrent_ms])
    met = worst <= TARGET_MS
    print(
        f"{name:<11} ready after {run.ready_s:5.2f} s | first prediction {run.first_ms:6.1f} ms, "
        f"4 concurrent {min(run.concurrent_ms):.1f}-{max(run.concurrent_ms):.1f} ms | "
        f"settled median {run.settled_ms:.1f} ms "
        f"(first/settled {run.first_ms / run.settled_ms:.1f}x) | "
        f"target <= {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="cold/warm pairs to measure")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dropout-coldstart-"))
    storage = Storage(f"sqlite:///{root / 'service.db'}")
    storage.ensure_migrated()
    token = DbKeyStore(storage.factory).create("bench", "bench", ["predict"])[1]
    storage.close()
    met = True
    for _ in range(options.runs):
        cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=root))
        met &= _report("empty cache", _start(root, cache, token))
        met &= _report("warm cache", _start(root, cache, token))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
