"""The cohort contract: the two CSV tables clinics export to, and their validation.

Every rule lives in the column specs below, so the error messages, the docs and the
checks cannot disagree. Validation never coerces: a value that does not satisfy its
rule is reported (file, line, column, value, rule) and the command stops with exit 2.
Line numbers are file lines, the header being line 1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.errors import ContractError
from training.vocabulary import (
    AGE_RANGE,
    EARLIEST_DATE,
    ID_MAX_LENGTH,
    ID_REGEX,
    ID_RULE,
    ORS_TOTAL_RANGE,
    PHQ9_TOTAL_RANGE,
    SESSION_NUMBER_MAX,
    SRS_TOTAL_RANGE,
    TEXT_MAX_LENGTH,
    TEXT_REGEX,
    TEXT_RULE,
    WAI_ITEM_RANGE,
    WAI_SUBSCALES,
    date_window,
    latest_date,
)

MAX_REPORTED = 20
SHOWN_CHARACTERS = 80  # of a refused cell's text


@dataclass(frozen=True)
class Column:
    """One column of the contract: its name, kind, whether required, and its range."""

    name: str
    kind: str  # "id" | "int" | "float" | "date" | "label" | "text"
    required: bool = False
    low: float | None = None
    high: float | None = None

    @property
    def rule(self) -> str:
        """The human-readable rule, as printed in error messages."""
        if self.kind == "id":
            return ID_RULE
        if self.kind == "date":
            return f"a date YYYY-MM-DD {date_window()}"
        if self.kind == "label":
            return "0/1 or true/false"
        if self.kind == "text":
            return TEXT_RULE
        what = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{what} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{what} >= {self.low:g}"
        return what


CLIENT_COLUMNS: tuple[Column, ...] = (
    Column("client_id", "id", required=True),
    Column("therapist_id", "id"),
    Column("age", "int", low=AGE_RANGE[0], high=AGE_RANGE[1]),
    Column("gender", "text"),
    Column("dropout", "label"),
)

SESSION_COLUMNS: tuple[Column, ...] = (
    Column("client_id", "id", required=True),
    Column("session_number", "int", required=True, low=1, high=SESSION_NUMBER_MAX),
    Column("session_date", "date"),
    *(
        Column(f"wai_{name}", "float", low=WAI_ITEM_RANGE[0], high=WAI_ITEM_RANGE[1])
        for name in WAI_SUBSCALES
    ),
    Column("srs_total", "float", low=SRS_TOTAL_RANGE[0], high=SRS_TOTAL_RANGE[1]),
    Column("ors_total", "float", low=ORS_TOTAL_RANGE[0], high=ORS_TOTAL_RANGE[1]),
    Column("phq9_total", "int", low=PHQ9_TOTAL_RANGE[0], high=PHQ9_TOTAL_RANGE[1]),
)

MEASURE_COLUMNS: tuple[str, ...] = tuple(c.name for c in SESSION_COLUMNS[3:])
_TRUE = {"1", "true", "True", "TRUE"}
_FALSE = {"0", "false", "False", "FALSE"}


@dataclass
class Problems:
    """Collects contract violations; keeps the first MAX_REPORTED and counts the rest."""

    shown: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, message: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_REPORTED:
            self.shown.append(message)

    def add_rows(
        self, file: str, lines: Sequence[int], column: str, values: Sequence[object], rule: str
    ) -> None:
        """Report offending rows of one column, one message per row (a value longer than
        SHOWN_CHARACTERS is cut there: a line of the file can hold a megabyte)."""
        for line, value in zip(lines, values, strict=True):
            shown = _plain(value) if isinstance(value, float) else _cut(value)
            self.add(f"{file}:{line}: column {column}: value {shown} is not {rule}")

    def raise_if_any(self) -> None:
        if self.total:
            raise ContractError(self.shown, self.total)


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: clients (one row per episode) and their sessions."""

    clients: pd.DataFrame
    sessions: pd.DataFrame


_NONFINITE_TOKEN = re.compile(rb"(?im)(?:^|,)\s*[+-]?(?:nan|inf|infinity)\s*(?:,|\r?$)")


def _has_nonfinite_text(opener: Callable[[], BinaryIO]) -> bool:
    """True when a cell spells nan/inf: the fast typed reader would take those silently.

    A plain substring search (memchr speed) screens each block; the exact pattern runs only
    on blocks that contain the letters at all.
    """
    with opener() as fh:
        tail = b""
        while block := fh.read(1 << 24):
            window = (tail + block).lower()
            if (b"nan" in window or b"inf" in window) and _NONFINITE_TOKEN.search(window):
                return True
            tail = block[block.rfind(b"\n") + 1 :][-256:]
    return False


def _dtypes(spec: Sequence[Column], typed: bool) -> dict[str, str]:
    numeric = {"int", "float"}
    return {c.name: ("float64" if typed and c.kind in numeric else "str") for c in spec}


def _read_failure(path: Path, exc: Exception) -> str:
    if isinstance(exc, pd.errors.EmptyDataError):
        return f"{path.name}: the file is empty (expected a header line and data rows)"
    return f"{path.name}: not a readable CSV file ({str(exc).splitlines()[0]})"


def _read_raw(path: Path, spec: Sequence[Column], problems: Problems) -> pd.DataFrame | None:
    """Read a whole contract CSV: numeric columns typed when every cell parses, else text.

    Only blank cells are missing. The typed read is the fast path (pandas parses a whole
    file on all cores); a cell that is not a number, or spells nan/inf, sends the file
    through the text path, which reports it with its exact value.
    """
    if not path.is_file():
        problems.add(f"{path}: file not found")
        return None
    typed = not _has_nonfinite_text(lambda: path.open("rb"))
    while True:
        try:
            frame = pd.read_csv(
                path, dtype=_dtypes(spec, typed), keep_default_na=False, na_values=[""]
            )
            break
        except ValueError as exc:
            if typed and not isinstance(exc, pd.errors.EmptyDataError | pd.errors.ParserError):
                typed = False
                continue
            problems.add(_read_failure(path, exc))
            return None
        except UnicodeDecodeError as exc:
            problems.add(_read_failure(path, exc))
            return None
    if frame.empty:
        problems.add(f"{path.name}: the file has a header but no data rows")
        return None
    return frame


def _check_header(
    file: str, frame: pd.DataFrame, spec: Sequence[Column], problems: Problems, warnings: list[str]
) -> bool:
    known = {c.name for c in spec}
    missing = [c.name for c in spec if c.required and c.name not in frame.columns]
    for name in missing:
        problems.add(
            f"{file}: required column {name!r} is missing "
            f"(header has: {', '.join(map(str, frame.columns))})"
        )
    extra = [str(c) for c in frame.columns if c not in known]
    misspelt = {name: _nearest(name, known) for name in extra}
    for name, meant in misspelt.items():
        if meant is not None:
            problems.add(
                f"{file}: column {name!r} is not a contract column; did you mean `{meant}`? "
                "(rename it, or its values would be ignored)"
            )
    unknown = [name for name, meant in misspelt.items() if meant is None]
    if unknown:
        warnings.append(f"warning: {file}: ignoring unknown column(s): {', '.join(unknown)}")
    return not missing and len(unknown) == len(extra)


def _nearest(name: str, known: set[str]) -> str | None:
    """The contract column a header cell is a misspelling of: within edit distance 2 (1 for
    names under 8 characters, so `sex` is not taken for `age`), case ignored; else None."""
    word = name.strip().lower()
    best = min(sorted(known), key=lambda k: _edit_distance(word, k))
    limit = 1 if len(best) < 8 else 2
    return best if _edit_distance(word, best) <= limit else None


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions, one each."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _report(
    file: str,
    col: Column,
    values: pd.Series,
    bad: np.ndarray,
    problems: Problems,
    rule: str | None = None,
) -> None:
    """Report the first flagged rows of a column and count the rest."""
    n_bad = int(bad.sum())
    if not n_bad:
        return
    idx = np.flatnonzero(bad)[:MAX_REPORTED]
    shown = ["" if pd.isna(v) else v for v in values.to_numpy()[idx].tolist()]
    problems.add_rows(file, (idx + 2).tolist(), col.name, shown, rule or col.rule)
    problems.total += n_bad - len(idx)


_IDS_ON_LINES = re.compile(rf"(?:{ID_REGEX}\n)*{ID_REGEX}")
_TEXT = re.compile(TEXT_REGEX)


def _ids_all_valid(text: pd.Series, required: bool, distinct: object = None) -> bool:
    """Fast screen: every id valid (and present if required), one C-level regex pass over
    the distinct values, one a line (no id holds a newline)."""
    missing = text.isna().to_numpy()
    if required and missing.any():
        return False
    values = text[~missing].unique() if distinct is None else distinct
    unique = np.asarray(values, dtype=object)
    lengths = np.fromiter(map(len, unique), dtype=np.int64, count=len(unique))
    if lengths.min(initial=1) < 1 or lengths.max(initial=1) > ID_MAX_LENGTH:
        return False
    return not len(unique) or _IDS_ON_LINES.fullmatch("\n".join(unique)) is not None


def _check_ids(
    file: str, col: Column, text: pd.Series, problems: Problems, distinct: object = None
) -> None:
    """Check an id column; `distinct` (its distinct values, if the caller has them) makes
    the common all-valid case one regex pass."""
    if _ids_all_valid(text, col.required, distinct):
        return
    present = text.notna().to_numpy()
    short = (text.str.len() <= ID_MAX_LENGTH).to_numpy(dtype=bool)
    matches = text.str.fullmatch(ID_REGEX).fillna(False).to_numpy(dtype=bool) & short
    bad = ~matches & (present | col.required)
    rule = col.rule + (" (required)" if col.required else "")
    _report(file, col, text, bad, problems, rule)


def _check_text(file: str, col: Column, text: pd.Series, problems: Problems) -> None:
    """Check a free-text column (vocabulary.TEXT_RULE, as the request schemas do): its
    distinct values once, so a clinic's few gender words cost a few checks."""
    present = text.dropna()
    values = present.unique()
    fine = {v for v in values if len(v) <= TEXT_MAX_LENGTH and _TEXT.fullmatch(v)}
    if len(fine) == len(values):
        return
    bad = (text.notna() & ~text.isin(fine)).to_numpy(dtype=bool)
    _report(file, col, text, bad, problems, col.rule)


def _parse_number(file: str, col: Column, cells: pd.Series, problems: Problems) -> pd.Series:
    """Check a numeric column strictly: non-numeric, non-finite, non-integer or out-of-range
    values are reported, never coerced. `cells` is float64 (fast path) or text."""
    if pd.api.types.is_float_dtype(cells.dtype):
        values = cells.astype("float64")
        present = values.notna().to_numpy()
    else:
        values = pd.to_numeric(cells, errors="coerce").astype("float64")
        present = cells.notna().to_numpy()
    arr = values.to_numpy()
    bad = present & ~np.isfinite(arr)
    if col.required:
        bad |= ~present
    with np.errstate(invalid="ignore"):
        if col.kind == "int":
            bad |= present & np.isfinite(arr) & (arr != np.round(arr))
        if col.low is not None:
            bad |= present & (arr < col.low)
        if col.high is not None:
            bad |= present & (arr > col.high)
    _report(file, col, cells, bad, problems, col.rule + (" (required)" if col.required else ""))
    return values


def _parse_date(file: str, col: Column, text: pd.Series, problems: Problems) -> pd.Series:
    """A date column: YYYY-MM-DD within the plausible window (training.vocabulary)."""
    parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    window = (parsed >= pd.Timestamp(EARLIEST_DATE)) & (parsed <= pd.Timestamp(latest_date()))
    bad = text.notna().to_numpy() & ~window.to_numpy(dtype=bool)
    _report(file, col, text, bad, problems)
    return parsed


def _parse_label(file: str, col: Column, text: pd.Series, problems: Problems) -> pd.Series:
    is_true = text.isin(_TRUE).to_numpy()
    is_false = text.isin(_FALSE).to_numpy()
    bad = text.notna().to_numpy() & ~is_true & ~is_false
    _report(file, col, text, bad, problems)
    out = np.where(is_true, 1.0, np.where(is_false, 0.0, np.nan))
    return pd.Series(out, index=text.index, name=col.name)


def _parse_table(
    file: str,
    raw: pd.DataFrame,
    spec: Sequence[Column],
    problems: Problems,
    distinct: dict[str, object] | None = None,
) -> pd.DataFrame:
    """Turn the read table into typed columns, reporting every violation."""
    out: dict[str, pd.Series] = {}
    for col in spec:
        if col.name not in raw.columns:
            continue
        cells = raw[col.name]
        if col.kind == "id":
            _check_ids(file, col, cells, problems, (distinct or {}).get(col.name))
            out[col.name] = cells
        elif col.kind in ("int", "float"):
            out[col.name] = _parse_number(file, col, cells, problems)
        elif col.kind == "date":
            out[col.name] = _parse_date(file, col, cells, problems)
        elif col.kind == "label":
            out[col.name] = _parse_label(file, col, cells, problems)
        else:
            _check_text(file, col, cells, problems)
            out[col.name] = cells
    return pd.DataFrame(out, index=raw.index)


def _check_unique(
    file: str,
    frame: pd.DataFrame,
    keys: list[str],
    what: str,
    problems: Problems,
    hashed: pd.DataFrame | None = None,
) -> None:
    """Report repeated key values; `hashed` is an equivalent, cheaper key frame if given."""
    dup = (frame[keys] if hashed is None else hashed).duplicated(keep="first").to_numpy()
    for i in np.flatnonzero(dup)[:MAX_REPORTED]:
        value = ", ".join(_plain(frame[k].iat[i]) for k in keys)
        problems.add(
            f"{file}:{i + 2}: column {keys[-1]}: value {value!r} is a duplicate "
            f"({what} must be unique)"
        )
    problems.total += max(0, int(dup.sum()) - MAX_REPORTED)


def _cut(value: object) -> str:
    """repr of a cell, cut after SHOWN_CHARACTERS characters of its text."""
    if isinstance(value, str) and len(value) > SHOWN_CHARACTERS:
        return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value):,} characters)"
    return repr(value)


def _plain(value: object) -> str:
    """A cell as the user wrote it: 3.0 read as a float is shown as 3."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_known_clients(
    file: str,
    sessions: pd.DataFrame,
    codes: npt.NDArray[np.intp],
    distinct: pd.Index,
    known: pd.Index,
    problems: Problems,
) -> None:
    """Sessions must belong to a listed client; looked up once per distinct id, in an Index
    whose hash table is built once for all chunks."""
    listed = known.get_indexer(distinct) >= 0 if known.is_unique else distinct.isin(known)
    unknown = (codes >= 0) & ~np.append(listed, True)[codes]
    ids = sessions["client_id"]
    _report(file, SESSION_COLUMNS[0], ids, unknown, problems, "a client_id listed in clients.csv")


def _check_labels(
    file: str, clients: pd.DataFrame, raw_labels: pd.Series, problems: Problems
) -> None:
    """Every episode needs its label for training; invalid labels are reported already."""
    if "dropout" not in clients.columns:
        problems.add(
            f"{file}: column 'dropout' is missing (training and evaluation need "
            "the outcome label: 1 = dropped out, 0 = completed)"
        )
        return
    missing = clients["dropout"].isna().to_numpy() & raw_labels.isna().to_numpy()
    _report(
        file,
        CLIENT_COLUMNS[4],
        clients["dropout"],
        missing,
        problems,
        "present (0/1 or true/false; training needs every label)",
    )


def read_clients(
    path: Path, problems: Problems, warnings: list[str], need_labels: bool
) -> pd.DataFrame | None:
    """Read and validate clients.csv."""
    raw = _read_raw(path, CLIENT_COLUMNS, problems)
    if raw is None or not _check_header(path.name, raw, CLIENT_COLUMNS, problems, warnings):
        return None
    _, uniques = pd.factorize(raw["client_id"])
    clients = _parse_table(path.name, raw, CLIENT_COLUMNS, problems, {"client_id": uniques})
    if len(uniques) < len(raw):  # some id repeats (or is blank): find which rows
        _check_unique_index(path.name, pd.Index(clients["client_id"]), problems)
    if need_labels:
        labels = raw["dropout"] if "dropout" in raw.columns else pd.Series(dtype="str")
        _check_labels(path.name, clients, labels, problems)
    return clients


def validate_sessions(
    file: str,
    raw: pd.DataFrame,
    problems: Problems,
    known_clients: pd.Index | None = None,
    line_offset: int = 0,
) -> pd.DataFrame:
    """Validate one sessions table (or chunk of one, `line_offset` rows into the file)."""
    first_new = len(problems.shown)
    raw = raw.reset_index(drop=True)
    # Client ids are hashed once; the id, duplicate and known-client checks then work on
    # integer codes and on the distinct ids, which matters on files of millions of rows.
    codes, uniques = pd.factorize(raw["client_id"])
    sessions = _parse_table(file, raw, SESSION_COLUMNS, problems, {"client_id": uniques})
    keys = pd.DataFrame({"client": codes, "number": sessions["session_number"].to_numpy()})
    _check_unique(
        file, sessions, ["client_id", "session_number"], "session_number per client", problems, keys
    )
    if known_clients is not None:
        _check_known_clients(file, sessions, codes, pd.Index(uniques), known_clients, problems)
    if line_offset:
        problems.shown[first_new:] = [
            _shift_line(m, file, line_offset) for m in problems.shown[first_new:]
        ]
    return sessions


def _shift_line(message: str, file: str, offset: int) -> str:
    number, sep, tail = message.removeprefix(f"{file}:").partition(":")
    return f"{file}:{int(number) + offset}{sep}{tail}" if number.isdigit() else message


def read_sessions(
    path: Path, problems: Problems, warnings: list[str], known_clients: pd.Index | None
) -> pd.DataFrame | None:
    """Read and validate sessions.csv whole (see `iter_session_chunks` for streaming)."""
    raw = _read_raw(path, SESSION_COLUMNS, problems)
    if raw is None or not _check_header(path.name, raw, SESSION_COLUMNS, problems, warnings):
        return None
    return validate_sessions(path.name, raw, problems, known_clients)


def load_cohort(
    sessions_path: Path, clients_path: Path, need_labels: bool, warnings: list[str]
) -> Cohort:
    """Read both tables, check every rule, and raise ContractError listing the violations."""
    problems = Problems()
    clients = read_clients(clients_path, problems, warnings, need_labels)
    known = None if clients is None else pd.Index(clients["client_id"])
    sessions = read_sessions(sessions_path, problems, warnings, known)
    problems.raise_if_any()
    assert clients is not None
    assert sessions is not None
    return Cohort(clients=clients, sessions=sessions)


class _ByteRange(io.RawIOBase):
    """The header line of a file followed by one byte range of its data lines."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._fh = path.open("rb")
        self._pending = self._fh.readline()
        self._fh.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        data = self._fh.read(min(len(view), self._left))
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


@dataclass(frozen=True)
class CsvSource:
    """A contract CSV, or one byte range of its data lines (read with the header line), so
    that several processes can each stream a part of one large sessions.csv."""

    path: Path
    start: int = 0
    end: int | None = None
    rows_before: int = 0  # data rows before the range, so messages keep true line numbers

    @property
    def name(self) -> str:
        return self.path.name

    def open(self) -> BinaryIO:
        if self.end is None:
            return self.path.open("rb")
        return io.BufferedReader(_ByteRange(self.path, self.start, self.end), 1 << 20)


def _iter_raw_chunks(
    source: CsvSource,
    spec: Sequence[Column],
    chunk_rows: int,
    problems: Problems,
    warnings: list[str],
) -> Iterator[tuple[pd.DataFrame, int]]:
    """Yield (raw chunk, data rows before it in the file) after checking the header.

    A chunk the typed reader cannot parse is read again as text from where it started, so
    the problem is reported with its exact value.
    """
    if not source.path.is_file():
        problems.add(f"{source.path}: file not found")
        return
    typed = not _has_nonfinite_text(source.open)
    offset, header_checked = 0, False
    while True:
        with source.open() as fh:
            try:
                reader = pd.read_csv(
                    fh,
                    dtype=_dtypes(spec, typed),
                    keep_default_na=False,
                    na_values=[""],
                    chunksize=chunk_rows,
                    skiprows=range(1, offset + 1) if offset else None,
                )
                for raw in reader:
                    if not header_checked:
                        header_checked = True
                        if not _check_header(source.name, raw, spec, problems, warnings):
                            return
                    if raw.empty:  # a header and no rows: reported below, nothing to score
                        continue
                    yield raw, source.rows_before + offset
                    offset += len(raw)
                break
            except ValueError as exc:
                if typed and not isinstance(exc, pd.errors.EmptyDataError | pd.errors.ParserError):
                    typed = False  # read again as text from the chunk that failed
                    continue
                problems.add(_read_failure(source.path, exc))
                return
            except UnicodeDecodeError as exc:
                problems.add(_read_failure(source.path, exc))
                return
    if offset == 0 and problems.total == 0:
        problems.add(f"{source.name}: the file has a header but no data rows")


def iter_session_chunks(
    source: CsvSource,
    chunk_rows: int,
    problems: Problems,
    warnings: list[str],
    known_clients: pd.Index | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield validated chunks of sessions.csv, so large files are scored in flat memory.

    Duplicates across chunks are the caller's to find (it regroups rows by client).
    """
    for raw, offset in _iter_raw_chunks(source, SESSION_COLUMNS, chunk_rows, problems, warnings):
        yield validate_sessions(source.name, raw, problems, known_clients, offset)


def read_client_lookup(
    path: Path, problems: Problems, warnings: list[str], chunk_rows: int
) -> pd.DataFrame | None:
    """clients.csv for scoring: validated chunk by chunk and kept as a compact lookup indexed
    by client_id (age as float32, gender as a category), about 100 bytes per client instead
    of the whole text table."""
    ids, ages, genders = [], [], []
    source = CsvSource(path)
    for raw, offset in _iter_raw_chunks(source, CLIENT_COLUMNS, chunk_rows, problems, warnings):
        first_new = len(problems.shown)
        chunk = _parse_table(path.name, raw.reset_index(drop=True), CLIENT_COLUMNS, problems)
        problems.shown[first_new:] = [
            _shift_line(m, path.name, offset) for m in problems.shown[first_new:]
        ]
        ids.append(chunk["client_id"].to_numpy(dtype=object))
        ages.append(chunk["age"].to_numpy(np.float32) if "age" in chunk else None)
        genders.append(chunk["gender"].astype("category") if "gender" in chunk else None)
    if not ids:
        return None
    index = pd.Index(np.concatenate(ids), name="client_id")
    _check_unique_index(path.name, index, problems)
    lookup = pd.DataFrame(index=index)
    if all(a is not None for a in ages):
        lookup["age"] = np.concatenate([a for a in ages if a is not None])
    if all(g is not None for g in genders):
        lookup["gender"] = pd.api.types.union_categoricals([g for g in genders if g is not None])
    return lookup


def _check_unique_index(file: str, index: pd.Index, problems: Problems) -> None:
    if index.is_unique:
        return
    dup = index.duplicated(keep="first") & index.notna()
    for i in np.flatnonzero(dup)[:MAX_REPORTED]:
        problems.add(
            f"{file}:{i + 2}: column client_id: value {index[i]!r} is a duplicate "
            "(client_id must be unique)"
        )
    problems.total += max(0, int(dup.sum()) - MAX_REPORTED)
