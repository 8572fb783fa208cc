"""Batch scoring: one row per client at the latest landmark it reached.

sessions.csv is read in chunks so memory stays flat however long the file is. A client's
rows must be contiguous (exports and the simulator write them grouped); the rows of the
last client in a chunk are carried into the next one, and a client seen again after it
was scored is reported, since its score would have used incomplete sessions. The output
is written to a temporary file and renamed only when every row was valid: a failed run
leaves no half-written predictions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.contract import Problems, iter_session_chunks, read_clients
from training.errors import ContractError
from training.features import SessionGrid, grid_from_tables, latest_landmark_features
from training.registry import LoadedModel

FloatArray = npt.NDArray[np.float64]
LEVELS = np.array(["low", "moderate", "high"], dtype=object)
OUTPUT_COLUMNS = ["client_id", "landmark_session", "probability", "risk_level", "model_version"]


def risk_levels(p: FloatArray, thresholds: dict[str, Any]) -> npt.NDArray[np.object_]:
    """low / moderate / high from the artifact's thresholds."""
    level = (p >= thresholds["moderate"]).astype(np.int64) + (p >= thresholds["high"])
    out: npt.NDArray[np.object_] = LEVELS[level]
    return out


def score_grid(loaded: LoadedModel, grid: SessionGrid) -> tuple[FloatArray, npt.NDArray[Any]]:
    """Calibrated dropout probability and landmark used, per client of the grid."""
    landmarks = tuple(loaded.metadata["landmarks"])
    X, landmark = latest_landmark_features(grid, landmarks)
    p = np.full(grid.n_clients, np.nan)
    scored = landmark > 0
    if scored.any():
        p[scored] = loaded.model.predict_proba(X[scored])[:, 1]
    return p, landmark


@dataclass
class PredictStats:
    clients: int = 0
    rows: int = 0


class _Grouping:
    """Remembers scored clients as 64-bit hashes (8 bytes each) to catch split clients."""

    def __init__(self) -> None:
        self._seen: list[npt.NDArray[np.uint64]] = []

    def check(self, ids: pd.Series, file: str, problems: Problems) -> None:
        hashes: npt.NDArray[np.uint64] = np.asarray(
            pd.util.hash_pandas_object(ids, index=False), dtype=np.uint64
        )
        if self._seen:
            again = np.isin(hashes, np.concatenate(self._seen))
            for client in ids[again].head(5):
                problems.add(
                    f"{file}: rows of client {client!r} are not contiguous; sort the "
                    "file by client_id (predict reads it in chunks)"
                )
        self._seen.append(hashes)


def _batches(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Regroup chunks so that no client is split between two batches."""
    carry: pd.DataFrame | None = None
    for chunk in chunks:
        frame = chunk if carry is None else pd.concat([carry, chunk], ignore_index=True)
        ids = frame["client_id"]
        tail_start = int(np.flatnonzero((ids != ids.iloc[-1]).to_numpy()).max(initial=-1)) + 1
        carry = frame.iloc[tail_start:]
        if tail_start:
            yield frame.iloc[:tail_start]
    if carry is not None and len(carry):
        yield carry


def _score_batch(
    batch: pd.DataFrame,
    clients: pd.DataFrame | None,
    loaded: LoadedModel,
    out: TextIO,
    header: bool,
) -> int:
    ids, grid = grid_from_tables(batch, clients, max(loaded.metadata["landmarks"]))
    p, landmark = score_grid(loaded, grid)
    p = np.round(p, 4)  # the level is derived from the published number, so rows agree
    frame = pd.DataFrame(
        {
            "client_id": ids,
            "landmark_session": landmark,
            "probability": p,
            "risk_level": risk_levels(p, loaded.metadata["thresholds"]),
            "model_version": loaded.version,
        }
    )
    frame.to_csv(out, header=header, index=False, lineterminator="\n")
    return len(frame)


def predict_file(
    loaded: LoadedModel,
    sessions_path: Path,
    clients_path: Path | None,
    out_path: Path,
    warnings: list[str],
    chunk_rows: int = 500_000,
    progress: Callable[[int], None] | None = None,
) -> PredictStats:
    """Score every client of sessions.csv into out_path (CSV)."""
    problems = Problems()
    clients = None
    if clients_path is not None:
        clients = read_clients(clients_path, problems, warnings, need_labels=False)
        problems.raise_if_any()
    known = None if clients is None else clients["client_id"]
    tmp = out_path.with_name(f".{out_path.name}.partial")
    stats = PredictStats()
    grouping = _Grouping()
    try:
        with tmp.open("w", newline="") as out:
            chunks = iter_session_chunks(sessions_path, chunk_rows, problems, warnings, known)
            for batch in _batches(chunks):
                stats.rows += len(batch)
                grouping.check(batch["client_id"].drop_duplicates(), sessions_path.name, problems)
                if problems.total == 0:
                    stats.clients += _score_batch(
                        batch, clients, loaded, out, header=stats.clients == 0
                    )
                if progress is not None:
                    progress(len(batch))
        problems.raise_if_any()
        os.replace(tmp, out_path)
    except (ContractError, OSError):
        tmp.unlink(missing_ok=True)
        raise
    return stats
