"""`dropout-risk retrain --clinic C` on a clinic of 20,000 stored episodes within 2 minutes
on 2 cores (issue 14).

The clinic is the worked example of docs/updating.md (a 35% dropout rate, an SRS-only
site), 20,000 simulated clients with every session and their outcomes, stored through the
stored API's repository calls (service.commands.demo.store_episodes) in a fresh database:
SQLite by default, or the PostgreSQL server of --database-url (a database of its own is
created and dropped). The seeding is not timed. Each round runs retrain as a fresh process
of the real CLI (start-up included) on a copy of models/: the export, `update --method auto`
(at this size the closed test may go up to revise and a refit is weighed against it) and
`compare`. The reference, measured in the same rounds, is pandas reading the exported CSVs;
rounds alternate its order (the machine is shared) and the summary takes medians.

Usage: .venv/bin/python bench/retrain.py [--rounds 2] [--clients 20000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median

import pandas as pd
from sqlalchemy import create_engine, make_url, text

from service.commands.demo import contract_episodes, store_episodes
from service.storage.database import Storage
from training.simulate import SimulationParams, simulate

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 120.0
CLINIC = "site-a"
WORLD = SimulationParams(dropout_rate=0.35, site_mix=(0.0, 0.0, 1.0))
CHUNK = 1000  # clients per seeding transaction


@contextmanager
def _database(url: str | None, work: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in `work`, or one created on the server of `url`."""
    if url is None:
        yield f"sqlite:///{work / 'bench.db'}"
        return
    server = make_url(url).set(database="postgres")
    name = "bench_retrain"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(url: str, n: int) -> tuple[int, float]:
    """n clients of the world stored with their outcomes; (sessions stored, seconds)."""
    started = time.perf_counter()
    clients, sessions = simulate(n, 14, WORLD)
    episodes = contract_episodes(clients, sessions)
    storage = Storage(url)
    try:
        for i in range(0, len(episodes), CHUNK):
            with storage.session() as s:
                store_episodes(s, CLINIC, episodes[i : i + CHUNK], None)
    finally:
        storage.close()
    return len(sessions), time.perf_counter() - started


def _retrain(url: str, models: Path, out: Path) -> tuple[float, str]:
    """One fresh `dropout-risk retrain` process; (seconds, the challenger's version)."""
    args = ["retrain", "--clinic", CLINIC, "--database-url", url, "--models-dir", str(models)]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from training.cli import main; main()", *args, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return time.perf_counter() - started, done.stdout.strip().splitlines()[-1]


def _reference(out: Path) -> float:
    started = time.perf_counter()
    for name in ("sessions.csv", "clients.csv"):
        pd.read_csv(out / name)
    return time.perf_counter() - started


def _round(work: Path, number: int, url: str) -> dict[str, float | str]:
    models, out = work / f"models-{number}", work / f"retrain-{number}"
    shutil.copytree(REPO / "models", models)
    result: dict[str, float | str] = {}
    if number % 2 == 1 and (work / "retrain-0").is_dir():
        result["reference"] = _reference(work / "retrain-0")
    seconds, version = _retrain(url, models, out)
    result["retrain"] = seconds
    if "reference" not in result:
        result["reference"] = _reference(out)
    lineage = json.loads((models / version / "metadata.json").read_text())["lineage"]
    result["method"] = lineage["method"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (optional)")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    try:
        with _database(options.database_url, work) as url:
            sessions, seeding = _seed(url, options.clients)
            rounds = [_round(work, number, url) for number in range(options.rounds)]
        reference = median(float(r["reference"]) for r in rounds)
        values = [float(r["retrain"]) for r in rounds]
        value = median(values)
        verdict = "ok" if value < TARGET_SECONDS else "SLOW"
        methods = ", ".join(sorted({str(r["method"]) for r in rounds}))
        print(
            f"{options.clients:,} stored episodes ({sessions:,} sessions, seeded in "
            f"{seeding:.0f} s) on {make_url(url).get_backend_name()}; update chose {methods}; "
            f"reference: pandas reading the export, median {reference:.2f} s"
        )
        spread = ", ".join(f"{v:.1f}" for v in values)
        print(
            f"retrain: median {value:.1f} s (rounds {spread}), {value / reference:.0f}x the "
            f"reference; target < {TARGET_SECONDS:.0f} s: {verdict}"
        )
        return 0 if verdict == "ok" else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
