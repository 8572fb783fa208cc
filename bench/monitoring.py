"""How long a clinic's monitoring report takes (run on demand, not part of `make test`).

Target (issue 15): the figures of a window of 50,000 clients in well under 1 s, so that
the later service query (stored predictions of a clinic on PostgreSQL) can answer in
under 1 s with the database's share included. Only the computation of
training.monitoring.monitor is timed here: the window (feature rows, landmarks and
probabilities) is built beforehand, as the service will read it from stored predictions.

The model is the shipped one (models/), with a reference profile computed from 5,000
simulated development clients by the function `train` uses; the window is 50,000 other
clients of the same simulated population. Two cases: no outcomes known yet, and every
episode labelled (its prediction at each landmark it reached: about 140,000 rows), the
most work a report can have. Each is timed REPEATS times; the reference, measured in the
same run because shared machines drift, is `np.sort` of the window's 50,000 scores.

Usage: .venv/bin/python bench/monitoring.py [--clients 50000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.features import (
    FEATURES,
    grid_from_tables,
    landmark_examples,
    latest_landmark_features,
)
from training.model import feature_clip
from training.monitoring import MonitoredModel, Outcomes, Window, monitor
from training.monitoring_profile import build_reference_profile
from training.registry import Registry
from training.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
DEVELOPMENT = 5_000
TARGET_SECONDS = 1.0


def _times(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    loaded = Registry(REPO / "models").load()
    landmarks = tuple(loaded.meta.landmarks)
    print(f"simulating {DEVELOPMENT + args.clients:,} clients ...", flush=True)
    clients, sessions = simulate(DEVELOPMENT + args.clients, seed=1)
    ids, grid = grid_from_tables(sessions, clients, max(landmarks))
    y = clients.set_index("client_id")["dropout"].reindex(ids).to_numpy(dtype=np.float64)
    X, landmark = latest_landmark_features(grid, landmarks)
    p = loaded.probability(X)
    dev, rest = np.arange(DEVELOPMENT), np.arange(DEVELOPMENT, ids.size)

    plain = MonitoredModel.from_metadata(loaded.meta)
    low, high = feature_clip(loaded.model, len(FEATURES))
    thresholds = loaded.meta.thresholds.cutoffs
    profile = build_reference_profile(
        X[dev], landmark[dev], p[dev], thresholds, low, high, plain.parameters
    )
    model = replace(plain, profile=profile)

    examples = landmark_examples(grid, landmarks)
    rows = np.flatnonzero(examples.row_client >= DEVELOPMENT)
    outcomes = Outcomes(
        episode=examples.row_client[rows],
        landmark=examples.landmark[rows],
        p=loaded.probability(examples.X[rows]),
        y=y[examples.row_client[rows]],
    )
    unlabelled = Window(X[rest], landmark[rest], p[rest])
    labelled = replace(unlabelled, outcomes=outcomes)
    report = monitor(model, labelled, "bench")  # warm: imports, first calls
    print(
        f"window: {unlabelled.clients:,} clients; labelled: {outcomes.y.size:,} outcome rows "
        f"of {labelled.labelled:,} episodes; {len(report.figures)} figures"
    )

    scores = unlabelled.p
    cases = {
        "no outcomes": lambda: monitor(model, unlabelled, "bench"),
        "all labelled": lambda: monitor(model, labelled, "bench"),
        "reference: np.sort of the scores": lambda: np.sort(scores),
    }
    results = {name: _times(fn, args.repeats) for name, fn in cases.items()}
    reference = statistics.median(results["reference: np.sort of the scores"])
    print("\n| what | median | min–max | x reference | target |")
    print("|---|---|---|---|---|")
    for name, times in results.items():
        median = statistics.median(times)
        met = "met" if median < TARGET_SECONDS else "NOT met"
        target = "" if name.startswith("reference") else f"< {TARGET_SECONDS:g} s: {met}"
        spread = f"{min(times) * 1000:.1f}–{max(times) * 1000:.1f} ms"
        print(
            f"| {name} | {median * 1000:.1f} ms | {spread} | {median / reference:.0f}x | {target} |"
        )


if __name__ == "__main__":
    main()
