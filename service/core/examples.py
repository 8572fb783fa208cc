"""The example episode of the API documentation (OpenAPI example, README, tests, bench)."""

from __future__ import annotations

from typing import Any

EXAMPLE_EPISODE: dict[str, Any] = {
    "client_id": "A-1001",
    "age": 27,
    "gender": "female",
    "therapist_id": "T-7",
    "sessions": [
        {
            "number": 1,
            "date": "2026-03-02",
            "wai": {"goal": 3.25, "task": 3.5, "bond": 4.0},
            "srs": {"total": 35.5},
            "ors": {"total": 18.2},
            "phq9": {"total": 14},
        },
        {
            "number": 2,
            "date": "2026-03-09",
            "wai": {"items": [4, 3, 4, 3, 4, 4, 3, 4, 5, 3, 4, 3]},
            "srs": {"relationship": 9.1, "goals": 8.7, "approach": 8.9, "overall": 9.0},
        },
    ],
}
