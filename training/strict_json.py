"""Strict JSON for artifacts: NaN and infinities become null, never the non-standard `NaN`.

Python's json module writes NaN as a bare `NaN` token by default, which is not JSON: browsers,
jq and PostgreSQL's json type refuse it. Metrics that are undefined on a sample are NaN in
numpy, so everything written to metadata.json goes through `dumps`, which also refuses
(allow_nan=False) anything `to_strict` missed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def to_strict(value: Any) -> Any:
    """A copy of a JSON-like value with non-finite floats (and numpy scalars) made plain."""
    if isinstance(value, dict):
        return {key: to_strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_strict(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of value (non-finite floats as null)."""
    return json.dumps(to_strict(value), indent=indent, allow_nan=False)
