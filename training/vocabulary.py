"""The project's vocabulary: ids, plausible dates, the instruments and their ranges, the
WAI-SR and SRS items, the risk levels (and the type of a model's cut-offs between them)
and the landmark limits.

Every door that takes these inputs (the JSON API, stored clients, FHIR, CDS Hooks, the
clinician pages, the CSV contract) reads its rule from here, so a value accepted by one
door is accepted by all of them, and each error message states the same rule. A test
(tests/training/test_vocabulary.py) holds that each of these is written once in the tree.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Literal, get_args

# --- ids (clients, therapists, clinics, model versions) ------------------------------------

ID_MAX_LENGTH = 64
# A-Za-z0-9._- but not only dots: leading dots, one character that is not a dot, then any.
# "." and ".." (which a URL path cannot carry) are refused without lookaround, which
# pydantic-core's regex lacks. The one copy of the pattern: every door builds on this.
ID_REGEX = r"\.*[A-Za-z0-9_-][.A-Za-z0-9_-]*"
ID_PATTERN = rf"^{ID_REGEX}$"  # as pydantic and JSON Schema want it; length: ID_MAX_LENGTH
ID_RULE = f"1-{ID_MAX_LENGTH} characters of A-Za-z0-9._-, not only dots"
_ID = re.compile(ID_REGEX)


def is_id(text: str) -> bool:
    """Whether `text` is a valid id (fullmatch: a trailing newline is not allowed)."""
    return len(text) <= ID_MAX_LENGTH and _ID.fullmatch(text) is not None


# --- dates (sessions, the end of an episode) ------------------------------------------------

# A session or an outcome dated outside this window is a typo or a placeholder (0001-01-01,
# 9999-12-31), and through the gap features it would swing the risk to 0.001 or 0.999.
EARLIEST_DATE = dt.date(1990, 1, 1)
_EARLIEST = EARLIEST_DATE.toordinal()
# Day 0 of the feature grid's day numbers (training.features: days since this date).
DAY_ZERO = dt.date(1970, 1, 1)
_UNIX_DAY_ZERO = DAY_ZERO.toordinal()


def _latest_ordinal() -> int:
    """One day after today (UTC): a clinic east of UTC may already be on tomorrow."""
    return _UNIX_DAY_ZERO + int(time.time() // 86400) + 1


def latest_date() -> dt.date:
    """The last plausible date: one day after the server's today (UTC)."""
    return dt.date.fromordinal(_latest_ordinal())


def in_date_window(day: dt.date) -> bool:
    """Whether `day` is plausible. Cheap (no datetime built, no call but the clock's): it
    runs for every session of every prediction."""
    ordinal = day.toordinal()
    return ordinal >= _EARLIEST and ordinal - _UNIX_DAY_ZERO - 1 <= time.time() // 86400


def date_window() -> str:
    """The window, as error messages and docs state it."""
    return f"from {EARLIEST_DATE.isoformat()} to {latest_date().isoformat()} (today + 1, UTC)"


def outside_date_window(day: dt.date) -> str:
    """The message for a date outside the window: the value and the window."""
    return f"{day.isoformat()} is outside the plausible dates, {date_window()}"


# --- instruments and their ranges ----------------------------------------------------------

# The instruments a session may carry, by the key the API, storage and monitoring use.
INSTRUMENT_NAMES: dict[str, str] = {"wai_sr": "WAI-SR", "srs": "SRS", "ors": "ORS", "phq9": "PHQ-9"}

# (low, high), inclusive. Ints, so that JSON Schema and error messages print 1 and 40, not
# 1.0 and 40.0; a reader wanting floats converts.
WAI_ITEM_RANGE = (1, 5)  # one WAI-SR answer, and a subscale's item mean
SRS_TOTAL_RANGE = (0, 40)  # the Session Rating Scale total
SRS_ITEM_RANGE = (0, 10)  # one of its four visual-analogue items
ORS_TOTAL_RANGE = (0, 40)  # the Outcome Rating Scale total
PHQ9_TOTAL_RANGE = (0, 27)  # the PHQ-9 total (an integer)
AGE_RANGE = (12, 100)  # a client's age in years
SESSION_NUMBER_MAX = 1000  # a session number is 1..this
# Free text (a client's gender as recorded): at most this long, and no control character
# (a NUL cannot be stored in PostgreSQL text, and no recorded word needs one). The one
# copy of the rule: the request schemas and the CSV contract build on it, and the CDS
# client JWT's stored claims take its characters (with their own length).
TEXT_MAX_LENGTH = 64
TEXT_REGEX = r"[^\x00-\x1f\x7f]+"
TEXT_PATTERN = rf"^{TEXT_REGEX}$"
TEXT_RULE = f"1-{TEXT_MAX_LENGTH} characters, none of them a control character"

# WAI-SR item -> subscale (Hatcher & Gillaspy 2006): which of the 12 answers (1-based) make
# each subscale. The API's episodes and the stored clients both roll the items up with it.
WAI_SR_ITEMS: dict[str, tuple[int, ...]] = {
    "task": (1, 2, 10, 12),
    "bond": (3, 5, 7, 9),
    "goal": (4, 6, 8, 11),
}
WAI_SR_ITEM_COUNT = 12
WAI_SUBSCALES = ("goal", "task", "bond")  # the order of the features and the contract

# The SRS's four 0-10 items, as the API names them; their sum is the total.
SRS_ITEMS = ("relationship", "goals", "approach", "overall")


# The map as 0-based positions in the 12 answers, in WAI_SUBSCALES order: built once, as the
# roll-up runs for every session of every request and of every stored client read.
_WAI_POSITIONS = tuple(tuple(n - 1 for n in WAI_SR_ITEMS[name]) for name in WAI_SUBSCALES)


def wai_subscale_means(items: list[int] | list[float]) -> tuple[float, float, float]:
    """(goal, task, bond) item means of the 12 WAI-SR answers: the one roll-up, so a stored
    client and a request episode with the same answers get the same subscales."""
    goal, task, bond = _WAI_POSITIONS
    return _mean(items, goal), _mean(items, task), _mean(items, bond)


def _mean(items: list[int] | list[float], positions: tuple[int, ...]) -> float:
    return sum(map(items.__getitem__, positions)) / len(positions)


def srs_items_total(items: tuple[float | None, ...] | list[float | None]) -> float | None:
    """The SRS total from its four items, or None unless all four are given."""
    present = [float(i) for i in items if i is not None]
    return sum(present) if len(present) == len(SRS_ITEMS) else None


# --- risk levels ---------------------------------------------------------------------------

RiskLevel = Literal["low", "moderate", "high"]  # the one spelling; lowest first
RISK_LEVELS: tuple[RiskLevel, ...] = get_args(RiskLevel)
# Caseloads, summaries and demos list the most urgent first.
URGENT_FIRST: tuple[RiskLevel, ...] = RISK_LEVELS[::-1]
# The levels that flag a client, each with its probability cut-off (the thresholds).
FLAG_LEVELS: tuple[RiskLevel, ...] = RISK_LEVELS[1:]


def flag_label(level: RiskLevel) -> str:
    """What flagging at `level` flags, for tables: "Moderate or high", "High" (a flag at a
    level takes every level above it too)."""
    return " or ".join(RISK_LEVELS[RISK_LEVELS.index(level) :]).capitalize()


# The one type of a model's cut-offs: training evaluates and publishes with it, a Prediction
# carries it and the API's schema shows it (its docstring is the schema's description); the
# metadata file's validated copy is training.artifact_schema.Thresholds (`cutoffs` gives this).
@dataclass(frozen=True, slots=True)
class Thresholds:
    """A model's two cut-offs on the published probability: from `moderate` the risk is
    moderate, from `high` it is high (a probability equal to a cut-off reaches its level)."""

    moderate: float
    high: float

    def of(self, level: RiskLevel) -> float:
        """The cut-off of a flag level (FLAG_LEVELS: "moderate" or "high"; "low" has none,
        a KeyError)."""
        return {"moderate": self.moderate, "high": self.high}[level]


# --- landmarks -----------------------------------------------------------------------------

# A prediction is made at an early session (the landmark): sessions 1-3 by default, never
# past MAX_LANDMARK (the metadata schema, the settings and the updating refit all stop there).
DEFAULT_LANDMARKS: tuple[int, ...] = (1, 2, 3)
MAX_LANDMARK = 12
MAX_SESSIONS = 50  # sessions one episode may carry in a request
