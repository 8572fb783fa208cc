"""Local updating and comparison (issue 14): `dropout-risk update` and `dropout-risk
compare` on 5,000 clients each within 30 s on 2 cores.

The clinic is the worked example of docs/updating.md (a 35% dropout rate, an SRS-only
site): at 5,000 clients the sample meets the sample-size minimum, so `update --method auto`
runs the longest path (the closed test up to revise, revise out of fold, then a full refit
to weigh against it). `compare` scores the shipped champion and the update on a later
cohort of 5,000 clients of the same world, with every interval. Each command runs as a
fresh subprocess of the real CLI (start-up included) on a copy of models/; the reference,
measured in the same rounds, is pandas reading the same two CSVs. Rounds alternate the
order (the machine is shared) and the summary takes medians.

Usage: .venv/bin/python bench/lifecycle.py [--rounds 3] [--clients 5000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import pandas as pd

from training.simulate import SimulationParams, write_cohort

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30.0
CLINIC = SimulationParams(dropout_rate=0.35, site_mix=(0.0, 0.0, 1.0))


def _cli(*args: str) -> str:
    """Run `dropout-risk ARGS` in a fresh process; its last line of output."""
    done = subprocess.run(
        [sys.executable, "-c", "from training.cli import main; main()", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.stdout.strip().splitlines()[-1]


def _files(folder: Path) -> list[str]:
    return ["--sessions", str(folder / "sessions.csv"), "--clients", str(folder / "clients.csv")]


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _reference(folder: Path) -> float:
    """pandas reading the cohort's two CSVs."""
    return _seconds(lambda: [pd.read_csv(folder / n) for n in ("sessions.csv", "clients.csv")])


def _round(work: Path, number: int, clinic: Path, later: Path) -> dict[str, float | str]:
    """One round on a fresh copy of models/: update, then compare its result (the
    reference runs first in even rounds and last in odd ones: load drifts)."""
    models = work / f"models-{number}"
    shutil.copytree(REPO / "models", models)
    out: dict[str, float | str] = {}
    if number % 2 == 0:
        out["reference"] = _reference(clinic)
    found: list[str] = []
    update = ["update", "--model", "champion", "--clinic", "site-a", *_files(clinic)]
    out["update"] = _seconds(lambda: found.append(_cli(*update, "--models-dir", str(models))))
    version = found[0]
    compare = ["compare", "--champion", "champion", "--clinic", "site-a", "--challenger", version]
    page = ["--out", str(work / "compare.html"), "--models-dir", str(models)]
    out["compare"] = _seconds(lambda: _cli(*compare, *_files(later), *page))
    if number % 2 == 1:
        out["reference"] = _reference(clinic)
    out["method"] = json.loads((models / version / "metadata.json").read_text())["lineage"][
        "method"
    ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=5000)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    try:
        clinic, later = work / "clinic", work / "later"
        write_cohort(clinic, options.clients, seed=14, params=CLINIC)
        write_cohort(later, options.clients, seed=15, params=CLINIC)
        rounds = [_round(work, number, clinic, later) for number in range(options.rounds)]
        reference = median(float(r["reference"]) for r in rounds)
        methods = sorted({str(r["method"]) for r in rounds})
        print(
            f"{options.clients:,} clients per cohort, {options.rounds} rounds; update chose "
            f"{', '.join(methods)}; reference: pandas reading both CSVs, median {reference:.2f} s"
        )
        failed = False
        for name in ("update", "compare"):
            values = [float(r[name]) for r in rounds]
            value = median(values)
            verdict = "ok" if value < TARGET_SECONDS else "SLOW"
            failed |= verdict != "ok"
            spread = ", ".join(f"{v:.1f}" for v in values)
            print(
                f"{name}: median {value:.1f} s (rounds {spread}), {value / reference:.0f}x the "
                f"reference; target < {TARGET_SECONDS:.0f} s: {verdict}"
            )
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
