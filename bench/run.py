"""Benchmarks for the training pipeline (run on demand: `make bench`, not part of `make test`).

Targets from issue 2, each measured next to a reference taken in the same run, because
absolute timings on shared machines drift:

- train on 100,000 simulated clients, everything included: under 60 s
  (reference: pandas reading the same two CSVs);
- predict on 1,000,000 clients (about 3 million session rows): under 2x the time pandas
  needs to read those CSVs and write the output;
- model load: under 200 ms (reference: reading the artifact's bytes).

Usage: .venv/bin/python bench/run.py [--only train|predict|load] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from training.cli import run
from training.registry import Registry
from training.simulate import write_cohort

REPO = Path(__file__).resolve().parents[1]


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _cohort(workdir: Path, n: int, max_sessions: int | None) -> Path:
    folder = workdir / f"cohort-{n}-{max_sessions}"
    if not (folder / "sessions.csv").exists():
        print(f"simulating {n:,} clients ...", flush=True)
        write_cohort(folder, n, seed=1, max_sessions=max_sessions)
    return folder


def _predict_args(folder: Path, out: Path) -> list[str]:
    """`dropout-risk predict` with the shipped champion on a cohort folder."""
    return [
        "predict",
        "--model",
        "champion",
        "--models-dir",
        str(REPO / "models"),
        "--sessions",
        str(folder / "sessions.csv"),
        "--out",
        str(out),
    ]


def _read_both(folder: Path) -> None:
    pd.read_csv(folder / "sessions.csv")
    pd.read_csv(folder / "clients.csv")


def bench_train(workdir: Path, n: int) -> dict[str, float]:
    folder = _cohort(workdir, n, None)
    reference = _seconds(lambda: _read_both(folder))
    models = workdir / "train-models"
    shutil.rmtree(models, ignore_errors=True)
    args = [
        "train",
        "--sessions",
        str(folder / "sessions.csv"),
        "--clients",
        str(folder / "clients.csv"),
        "--models-dir",
        str(models),
    ]
    took = _seconds(lambda: run(args))
    return {
        "train_clients": n,
        "train_seconds": took,
        "train_reference_read_seconds": reference,
        "train_target_seconds": 60.0,
    }


def bench_predict(workdir: Path, n: int) -> dict[str, float]:
    folder = _cohort(workdir, n, 3)
    out = workdir / "preds.csv"

    def reference() -> None:
        sessions = pd.read_csv(folder / "sessions.csv")
        pd.read_csv(folder / "clients.csv")
        first = sessions.drop_duplicates("client_id")
        pd.DataFrame(
            {
                "client_id": first["client_id"],
                "landmark_session": first["session_number"],
                "probability": first["srs_total"],
                "risk_level": "low",
                "model_version": "v",
            }
        ).to_csv(workdir / "reference.csv", index=False)

    ref = _seconds(reference)
    args = [*_predict_args(folder, out), "--clients", str(folder / "clients.csv")]
    took = _seconds(lambda: run(args))
    rows = sum(1 for _ in (folder / "sessions.csv").open()) - 1
    return {
        "predict_clients": n,
        "predict_session_rows": rows,
        "predict_seconds": took,
        "predict_reference_pandas_io_seconds": ref,
        "predict_ratio": took / ref,
        "predict_target_ratio": 2.0,
    }


def _peak_rss_mb(args: list[str]) -> float:
    """Peak RSS of `dropout-risk ARGS` in a fresh process. VmHWM is read inside the child,
    since Linux carries ru_maxrss across fork and exec from this (large) process."""
    script = (
        f"from training.cli import run; run({args!r}); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1]) / 1024


def bench_memory(
    workdir: Path, sizes: tuple[int, int] = (1_000_000, 2_000_000)
) -> dict[str, float]:
    """Flat memory: `predict --workers 1` on sessions files of 1M and 2M clients (both many
    chunks long) should peak alike; the clients.csv lookup is measured on its own."""
    out: dict[str, float] = {}
    for n in sizes:
        folder = _cohort(workdir, n, 3)
        base = [*_predict_args(folder, workdir / "mem.csv"), "--workers", "1"]
        out[f"predict_peak_rss_mb_{n}_clients_sessions_only"] = _peak_rss_mb(base)
        out[f"predict_peak_rss_mb_{n}_clients_with_clients_csv"] = _peak_rss_mb(
            [*base, "--clients", str(folder / "clients.csv")]
        )
    return out


def bench_load(repeats: int = 20) -> dict[str, float]:
    registry = Registry(REPO / "models")
    folder = REPO / "models" / registry.read()["champion"]
    loads = [_seconds(registry.load) for _ in range(repeats)]
    reads = [_seconds((folder / "model.joblib").read_bytes) for _ in range(repeats)]
    return {
        "load_ms_median": 1000 * statistics.median(loads),
        "load_reference_read_ms_median": 1000 * statistics.median(reads),
        "load_target_ms": 200.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["train", "predict", "load", "memory"])
    parser.add_argument("--workdir", type=Path, help="keep simulated cohorts here")
    parser.add_argument("--train-clients", type=int, default=100_000)
    parser.add_argument("--predict-clients", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dropout-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, float] = {}
    if args.only in (None, "load"):
        results |= bench_load()
    if args.only in (None, "train"):
        results |= bench_train(workdir, args.train_clients)
    if args.only in (None, "predict"):
        results |= bench_predict(workdir, args.predict_clients)
    if args.only in (None, "memory"):
        results |= bench_memory(workdir)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
