"""Which candidate model selection picks: the order of `training.train.selection_key`."""

from __future__ import annotations

import json
from typing import Any

from tests.support.helpers import REPO
from training.train import selection_key


def _winner(rows: list[dict[str, Any]]) -> tuple[str, str]:
    best = min(rows, key=lambda r: selection_key(r["brier"], r["log_loss"], r["calibration"]))
    return best["estimator"], best["calibration"]


def test_sigmoid_wins_a_log_loss_tie_within_noise() -> None:
    rows: list[dict[str, Any]] = [
        {"estimator": "a", "calibration": "isotonic", "brier": 0.18161, "log_loss": 0.54570},
        {"estimator": "a", "calibration": "sigmoid", "brier": 0.18162, "log_loss": 0.54589},
    ]
    assert _winner(rows) == ("a", "sigmoid")


def test_isotonic_wins_when_clearly_better() -> None:
    rows: list[dict[str, Any]] = [
        {"estimator": "a", "calibration": "isotonic", "brier": 0.18161, "log_loss": 0.5430},
        {"estimator": "a", "calibration": "sigmoid", "brier": 0.18162, "log_loss": 0.5459},
    ]
    assert _winner(rows) == ("a", "isotonic")
    rows[0]["brier"] = 0.1790  # a lower Brier beyond 1e-4 wins before log loss is read
    rows[0]["log_loss"] = 0.5500
    assert _winner(rows) == ("a", "isotonic")


def test_the_shipped_models_choice_is_what_the_rule_gives() -> None:
    registry = json.loads((REPO / "models" / "registry.json").read_text())
    meta = json.loads((REPO / "models" / registry["champion"] / "metadata.json").read_text())
    selection = meta["selection"]
    chosen = selection["chosen"]
    assert _winner(selection["candidates"]) == (chosen["estimator"], chosen["calibration"])
    assert chosen["calibration"] == "sigmoid"
