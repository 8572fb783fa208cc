"""Batch scoring: one row per client at the latest landmark it reached.

sessions.csv is streamed in chunks, so memory stays flat however long the file is. A
client's rows must be contiguous (exports and the simulator write them grouped): the rows
of the last client in a chunk are carried into the next one, and a client seen again after
it was scored is reported, since its score would have used incomplete sessions.

On a large file the work is split: the file is cut at client boundaries into one byte range
per core, and a forked worker process validates and scores each range into a part file
(threads would share one interpreter lock; the work is mostly Python-level pandas). The
parts are joined in order and renamed into place only when every row was valid: a failed
run leaves no half-written predictions.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.contract import CsvSource, Problems, iter_session_chunks, read_client_lookup
from training.features import SessionGrid, grid_from_tables, latest_landmark_features
from training.input_shift import ShiftTally, shift_warnings, tally
from training.publish import published
from training.registry import LoadedModel

FloatArray = npt.NDArray[np.float64]
HashArray = npt.NDArray[np.uint64]
T = TypeVar("T")
OUTPUT_COLUMNS = ["client_id", "landmark_session", "probability", "risk_level", "model_version"]
PARALLEL_MIN_BYTES = 32 << 20  # below this, forking costs more than it saves


def score_grid(loaded: LoadedModel, grid: SessionGrid) -> tuple[FloatArray, npt.NDArray[Any]]:
    """Calibrated dropout probability and landmark used, per client of the grid."""
    p, landmark, _ = _score_rows(loaded, grid)
    return p, landmark


def _score_rows(
    loaded: LoadedModel, grid: SessionGrid
) -> tuple[FloatArray, npt.NDArray[Any], FloatArray]:
    """score_grid's answer, and the feature rows it scored (NaN rows for no landmark)."""
    landmarks = tuple(loaded.meta.landmarks)
    X, landmark = latest_landmark_features(grid, landmarks)
    p = np.full(grid.n_clients, np.nan)
    scored = landmark > 0
    if scored.any():
        p[scored] = loaded.probability(X[scored])
    return p, landmark, X


@dataclass
class PredictStats:
    clients: int = 0
    rows: int = 0
    not_scored: int = 0  # clients who have not reached the model's first landmark


def _hashes(ids: pd.Series) -> HashArray:
    return np.asarray(pd.util.hash_pandas_object(ids, index=False), dtype=np.uint64)


@dataclass
class _Grouping:
    """Remembers scored clients as sorted 64-bit hashes (8 bytes each) to catch a client
    whose rows are split across the file."""

    seen: HashArray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))

    def check(self, ids: pd.Series, file: str, problems: Problems) -> None:
        hashes = _hashes(ids)
        again = _report_repeats(ids, hashes, self.seen, file, problems)
        if not again:
            self.seen = np.sort(np.concatenate([self.seen, hashes]))


def _member(values: HashArray, sorted_set: HashArray) -> npt.NDArray[np.bool_]:
    """Which values are in a sorted array (binary search; np.isin rehashes the whole set)."""
    if not sorted_set.size:
        return np.zeros(values.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    found: npt.NDArray[np.bool_] = sorted_set[pos] == values
    return found


def _report_repeats(
    ids: pd.Series, hashes: HashArray, seen: HashArray, file: str, problems: Problems
) -> bool:
    repeated = _member(hashes, seen)
    for client in ids[repeated].head(5):
        problems.add(
            f"{file}: rows of client {client!r} are not contiguous; sort the file by "
            "client_id (predict reads it in chunks)"
        )
    return bool(repeated.any())


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


_DONE = object()


def _prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run `items` in a background thread, `depth` batches ahead.

    Parsing the next chunk overlaps with scoring and writing this one (the CSV tokenizer
    and numpy release the interpreter lock); the bounded queue keeps memory flat.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put(exc)
        buffer.put(_DONE)

    worker = threading.Thread(target=produce, name="predict-reader", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stop.set()
        worker.join()


def _write_scores(
    batch: pd.DataFrame,
    loaded: LoadedModel,
    max_session: int,
    clients: pd.DataFrame | None,
    out: TextIO,
) -> tuple[npt.NDArray[np.object_], int, int, ShiftTally]:
    """Append one CSV line per scored client; returns (scored, not yet at a landmark, the
    counts the input-shift warnings need), after the ids of the batch's clients.

    Lines are formatted directly (about 3x faster than DataFrame.to_csv on a million rows);
    the level is derived from the published, rounded probability so each line agrees.
    """
    ids, grid = grid_from_tables(batch, clients, max_session)
    p, landmark, X = _score_rows(loaded, grid)
    scored = landmark > 0
    p, levels = published(p[scored], loaded.meta.thresholds.cutoffs)
    line = f"{{}},{{}},{{:.4f}},{{}},{loaded.version}\n".format
    out.writelines(map(line, ids[scored], landmark[scored].tolist(), p.tolist(), levels))
    counts = tally(loaded.meta, batch, X[scored], levels)
    return ids, int(scored.sum()), int((~scored).sum()), counts


@dataclass
class _PartResult:
    """What one worker hands back: its counts, problems and the clients it scored."""

    stats: PredictStats
    shown: list[str]
    total: int
    warnings: list[str]
    hashes: HashArray
    shift: ShiftTally


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs; inherited through fork, never pickled."""

    loaded: LoadedModel
    clients: pd.DataFrame | None
    chunk_rows: int
    progress: Any  # a multiprocessing queue of row counts, or a callable in-process
    threaded: bool = True


def _score_part(job: _Job, source: CsvSource, out_path: Path) -> _PartResult:
    """Validate and score one source (a whole file or a byte range) into out_path."""
    problems, stats, grouping, shift = Problems(), PredictStats(), _Grouping(), ShiftTally()
    warnings: list[str] = []
    known = None if job.clients is None else job.clients.index
    max_session = max(job.loaded.meta.landmarks)
    chunks = iter_session_chunks(source, job.chunk_rows, problems, warnings, known)
    with out_path.open("w", newline="") as out:
        # A reader thread pays off only when this is the one process: with one worker per
        # core, an extra thread per worker just competes for the same cores.
        batches = _batches(chunks)
        for batch in _prefetch(batches) if job.threaded else batches:
            stats.rows += len(batch)
            if not problems.total:
                ids, scored, early, counts = _write_scores(
                    batch, job.loaded, max_session, job.clients, out
                )
                grouping.check(pd.Series(ids), source.name, problems)
                stats.clients += scored
                stats.not_scored += early
                shift.add(counts)
            if callable(job.progress):
                job.progress(len(batch))
            else:
                job.progress.put(len(batch))
    return _PartResult(stats, problems.shown, problems.total, warnings, grouping.seen, shift)


_JOB: _Job | None = None  # set in the parent just before forking the workers


def _worker(source: CsvSource, out_path: Path) -> _PartResult:
    assert _JOB is not None
    return _score_part(_JOB, source, out_path)


def split_sessions(path: Path, parts: int) -> list[CsvSource]:
    """Cut sessions.csv into up to `parts` byte ranges, each starting at a new client.

    Files with a quote character are not cut: a quoted field could hide a comma or a line
    break, and the contract's session columns never need quoting.
    """
    size = path.stat().st_size
    if parts < 2 or size < PARALLEL_MIN_BYTES:
        return [CsvSource(path)]
    with path.open("rb") as fh:
        header = fh.readline()
        names = header.rstrip(b"\r\n").split(b",")
        if b'"' in header or b"client_id" not in names or _has_quote(fh):
            return [CsvSource(path)]
        column = names.index(b"client_id")
        data_start = len(header)
        cuts = [data_start]
        for i in range(1, parts):
            cut = _client_boundary(fh, data_start + (size - data_start) * i // parts, column)
            if cut is not None and cut > cuts[-1]:
                cuts.append(cut)
        cuts.append(size)
        rows_before = _rows_before(fh, cuts)
    return [
        CsvSource(path, start, end, rows)
        for start, end, rows in zip(cuts[:-1], cuts[1:], rows_before, strict=True)
    ]


def _has_quote(fh: Any) -> bool:
    while block := fh.read(1 << 24):
        if b'"' in block:
            return True
    return False


def _client_boundary(fh: Any, position: int, column: int) -> int | None:
    """Byte offset of the first line at or after `position` whose client differs from the
    line before it (None if the file ends first)."""
    fh.seek(position)
    fh.readline()  # finish the line we landed in
    previous = None
    while True:
        start = fh.tell()
        line = fh.readline()
        if not line:
            return None
        client = line.split(b",")[column] if line.count(b",") >= column else b""
        if previous is not None and client != previous:
            return int(start)
        previous = client


def _rows_before(fh: Any, cuts: list[int]) -> list[int]:
    """Data rows before each cut, so every part reports true file line numbers."""
    counts, rows = [0], 0
    for start, end in itertools.pairwise(cuts[:-1]):
        fh.seek(start)
        left = end - start
        while left > 0:
            block = fh.read(min(1 << 24, left))
            rows += block.count(b"\n")
            left -= len(block)
        counts.append(rows)
    return counts


def _run_parts(
    job: _Job, sources: list[CsvSource], out_path: Path, progress: Callable[[int], None] | None
) -> list[_PartResult]:
    part_paths = [out_path.with_name(f".{out_path.name}.part{i}") for i in range(len(sources))]
    if len(sources) == 1:
        in_process = _Job(job.loaded, job.clients, job.chunk_rows, progress or (lambda n: None))
        return [_score_part(in_process, sources[0], part_paths[0])]
    global _JOB
    context = multiprocessing.get_context("fork")
    rows: Any = context.SimpleQueue()
    _JOB = _Job(job.loaded, job.clients, job.chunk_rows, rows, threaded=False)
    try:
        with ProcessPoolExecutor(len(sources), mp_context=context) as pool:
            futures = [pool.submit(_worker, s, p) for s, p in zip(sources, part_paths, strict=True)]
            _follow(futures, rows, progress)
            return [f.result() for f in futures]
    finally:
        _JOB = None


def _follow(
    futures: list[Future[_PartResult]], rows: Any, progress: Callable[[int], None] | None
) -> None:
    """Relay the workers' row counts to the progress display until they finish."""
    while not all(f.done() for f in futures) or not rows.empty():
        if rows.empty():
            threading.Event().wait(0.05)
        elif progress is not None:
            progress(rows.get())
        else:
            rows.get()


def _cross_part_repeats(
    results: list[_PartResult], parts: list[Path], file: str, problems: Problems
) -> None:
    """A client scored in two parts had its rows split across the file; name it."""
    seen: HashArray = np.zeros(0, dtype=np.uint64)
    repeated: list[HashArray] = []
    for result in results:
        repeated.append(result.hashes[_member(result.hashes, seen)])
        seen = np.sort(np.concatenate([seen, result.hashes]))
    wanted = np.concatenate(repeated)[:5]
    if not wanted.size:
        return
    for part in parts:  # the error path only: find the names behind the hashes
        ids = pd.read_csv(part, header=None, usecols=[0], dtype=str).iloc[:, 0]
        _report_repeats(ids, _hashes(ids), np.sort(wanted), file, problems)
        wanted = wanted[~_member(wanted, np.sort(_hashes(ids)))]


def _join(parts: list[Path], out_path: Path) -> None:
    tmp = out_path.with_name(f".{out_path.name}.partial")
    with tmp.open("wb") as out:
        out.write((",".join(OUTPUT_COLUMNS) + "\n").encode())
        for part in parts:
            with part.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    os.replace(tmp, out_path)


def predict_file(
    loaded: LoadedModel,
    sessions_path: Path,
    clients_path: Path | None,
    out_path: Path,
    warnings: list[str],
    chunk_rows: int = 500_000,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> PredictStats:
    """Score every client of sessions.csv into out_path (CSV)."""
    problems = Problems()
    clients = None
    if clients_path is not None:
        clients = read_client_lookup(clients_path, problems, warnings, chunk_rows)
        problems.raise_if_any()
    parallel = workers or min(2, os.cpu_count() or 1)
    if not sessions_path.is_file():
        problems.add(f"{sessions_path}: file not found")
        problems.raise_if_any()
    sources = split_sessions(sessions_path, parallel if sys.platform == "linux" else 1)
    job = _Job(loaded, clients, chunk_rows, None)
    part_paths = [out_path.with_name(f".{out_path.name}.part{i}") for i in range(len(sources))]
    try:
        results = _run_parts(job, sources, out_path, progress)
        for result in results:
            problems.shown.extend(result.shown[: max(0, 20 - len(problems.shown))])
            problems.total += result.total
            warnings.extend(w for w in result.warnings if w not in warnings)
        if not problems.total:
            _cross_part_repeats(results, part_paths, sessions_path.name, problems)
        problems.raise_if_any()
        _join(part_paths, out_path)
    finally:
        for leftover in [*part_paths, out_path.with_name(f".{out_path.name}.partial")]:
            leftover.unlink(missing_ok=True)
    stats, shift = PredictStats(), ShiftTally()
    for result in results:
        stats.clients += result.stats.clients
        stats.rows += result.stats.rows
        stats.not_scored += result.stats.not_scored
        shift.add(result.shift)
    warnings.extend(shift_warnings(loaded.meta, shift, sessions_path.name, every_landmark=False))
    return stats
