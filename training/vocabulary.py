"""The project's vocabulary: what an id is, and which dates are plausible.

Every door that takes these inputs (the JSON API, stored clients, FHIR, CDS Hooks, the
clinician pages, the CSV contract) reads its rule from here, so a value accepted by one
door is accepted by all of them, and each error message states the same rule.
"""

from __future__ import annotations

import datetime as dt
import re
import time

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
_UNIX_DAY_ZERO = dt.date(1970, 1, 1).toordinal()


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
