"""Service benchmark (issue 3): the prediction API against GET /healthz of the same server,
measured in one run, 2 workers, loopback only, with wrk (Debian package `wrk`).

Targets:
- one request at a time: prediction p50 <= 2x and p99 <= 3x the healthz p50/p99;
- 32 connections: prediction throughput >= 50% of healthz throughput;
- batch endpoint: >= 20,000 clients/s with 1,000 clients per request.

Usage: .venv/bin/python bench/api.py [--seconds 2] [--rounds 9]

Each round measures healthz and the prediction routes back to back, so a burst of load from
elsewhere on a shared machine hits the reference and the measured route alike; the figure
for each target is its median over the rounds, printed with the range over rounds. Short,
many rounds are steadier on a noisy machine than a few long ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from service.core.examples import EXAMPLE_EPISODE as EXAMPLE
from service.security.key_store import DbKeyStore
from service.storage.database import Storage

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(root: Path, port: int, log_level: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DROPOUT_RISK_DATABASE_URL": f"sqlite:///{root / 'service.db'}",
        "DROPOUT_RISK_PSEUDONYM_KEY_FILE": str(root / "pseudonym.key"),
        "DROPOUT_RISK_LOG_LEVEL": log_level,
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from training.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--models-dir",
            str(REPO / "models"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become ready")


def _lua(root: Path, name: str, body: object | None, token: str) -> Path:
    path = root / f"{name}.lua"
    if body is None:
        path.write_text("wrk.method = 'GET'\n")
    else:
        (root / f"{name}.json").write_text(json.dumps(body))
        path.write_text(
            "wrk.method = 'POST'\n"
            f"wrk.body = io.open('{root / f'{name}.json'}'):read('*a')\n"
            "wrk.headers['Content-Type'] = 'application/json'\n"
            f"wrk.headers['Authorization'] = 'Bearer {token}'\n"
        )
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1" if connections == 1 else "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {k: re.search(rf"^\s+{k}%\s+(\S+)", out, re.M) for k in ("50", "99")}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} failed responses\n{out}")
    return {
        "p50_ms": _ms(found["50"].group(1)),
        "p99_ms": _ms(found["99"].group(1)),  # type: ignore[union-attr]
        "rps": float(rps.group(1)),
    }  # type: ignore[union-attr]


TARGETS = {
    "p50_ratio": 2.0,
    "p99_ratio": 3.0,
    "throughput_share": 0.5,
    "batch_clients_per_s": 20_000,
}


def _round(base: str, health: Path, one: Path, batch: Path, seconds: int) -> dict[str, Any]:
    h1 = _wrk(base + "/healthz", health, 1, seconds)
    p1 = _wrk(base + "/v1/predictions", one, 1, seconds)
    h32 = _wrk(base + "/healthz", health, 32, seconds)
    p32 = _wrk(base + "/v1/predictions", one, 32, seconds)
    b = _wrk(base + "/v1/predictions/batch", batch, 2, seconds)
    return {
        "healthz_1conn": h1,
        "predict_1conn": p1,
        "p50_ratio": p1["p50_ms"] / h1["p50_ms"],
        "p99_ratio": p1["p99_ms"] / h1["p99_ms"],
        "healthz_32conn_rps": h32["rps"],
        "predict_32conn_rps": p32["rps"],
        "throughput_share": p32["rps"] / h32["rps"],
        "batch_clients_per_s": b["rps"] * 1000,
        "batch_request_p50_ms": b["p50_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=2, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of all measurements")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["warning", "info", "debug"],
        help="the server's (info is its default); at debug every prediction also writes its "
        "pseudonymised log line",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="dropout-service-bench-"))
    storage = Storage(f"sqlite:///{root / 'service.db'}")
    storage.ensure_migrated()
    token = DbKeyStore(storage.factory).create("bench", "bench", ["predict"])[1]
    storage.close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(root, port, args.log_level)
    try:
        health = _lua(root, "health", None, token)
        one = _lua(root, "one", EXAMPLE, token)
        batch = _lua(
            root,
            "batch",
            {"clients": [{**EXAMPLE, "client_id": f"C{i}"} for i in range(1000)]},
            token,
        )
        for script, path in ((health, "/healthz"), (one, "/v1/predictions")):
            _wrk(base + path, script, 4, 2)  # warm-up
        # Rounds alternate the reference and the measured route, so a burst of load from
        # elsewhere on a shared machine hits both; the ratios are medians over the rounds.
        rounds = [_round(base, health, one, batch, args.seconds) for _ in range(args.rounds)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {
        "rounds": rounds,
        **{key: median(r[key] for r in rounds) for key in TARGETS},
        "targets": TARGETS,
    }
    print(json.dumps(result, indent=2))
    _summary(rounds, result)


def _summary(rounds: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """One line per target on stderr: median, range over rounds, and whether it is met."""
    for key, target in TARGETS.items():
        values = sorted(r[key] for r in rounds)
        at_most = key.endswith("_ratio")
        met = result[key] <= target if at_most else result[key] >= target
        print(
            f"{key:20s} median {result[key]:9.2f}  range {values[0]:9.2f} - {values[-1]:9.2f}"
            f"  target {'<=' if at_most else '>='} {target:g}  {'met' if met else 'NOT met'}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
