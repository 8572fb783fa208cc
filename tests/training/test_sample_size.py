"""The Riley et al. 2020 minimum sample size, and train's refusal below it."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from training.cli import run
from training.sample_size import max_r2_cox_snell, required_sample_size
from training.simulate import write_cohort


def test_worked_example_of_riley_et_al_2020() -> None:
    """BMJ 2020;368:m441, binary outcome: 24 parameters, prevalence 0.174, R2cs 0.288."""
    size = required_sample_size(24, 0.174, 0.288)
    assert size.max_r2_cox_snell == pytest.approx(0.603, abs=5e-4)
    assert size.criteria[:3] == (623, 662, 221)
    assert size.minimum == max(size.criteria)


def test_mape_criterion_is_the_smallest_n_meeting_van_smeden_2019() -> None:
    size = required_sample_size(24, 0.174, 0.288)
    n = size.criteria[3]

    def mape(n: int) -> float:
        log_mape = -0.508 + 0.259 * math.log(0.174) + 0.504 * math.log(24) - 0.544 * math.log(n)
        return math.exp(log_mape)

    assert mape(n) <= 0.05 < mape(n - 1)


def test_default_r2_is_a_nagelkerke_of_015() -> None:
    size = required_sample_size(10, 0.2)
    assert size.r2_cox_snell == pytest.approx(0.15 * max_r2_cox_snell(0.2))
    assert max_r2_cox_snell(0.5) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("args", "message"),
    [((10, 0.0), "prevalence"), ((0, 0.2), "parameters"), ((10, 0.2, 0.9), "R-squared")],
)
def test_undefined_inputs_are_refused(args: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        required_sample_size(*args)  # type: ignore[arg-type]


def _train(cohort: Path, models: Path, *extra: str) -> int:
    sessions, clients = str(cohort / "sessions.csv"), str(cohort / "clients.csv")
    args = ["train", "--sessions", sessions, "--clients", clients, "--models-dir", str(models)]
    return run([*args, *extra])


def test_train_refuses_a_200_client_cohort_with_the_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cohort(tmp_path, 200, seed=5)
    assert _train(tmp_path, tmp_path / "models") == 2
    err = capsys.readouterr().err
    assert "development part of the cohort has 160 clients" in err
    needed = re.search(r"needs at least ([\d,]+) clients for (\d+) predictor parameters", err)
    assert needed is not None
    assert int(needed.group(1).replace(",", "")) > 160
    assert int(needed.group(2)) > 29
    assert re.search(r"shrinkage 0.9: [\d,]+, optimism in R-squared <= 0.05: [\d,]+", err)
    assert "--allow-small" in err
    assert not (tmp_path / "models").exists()


def test_allow_small_trains_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cohort(tmp_path, 200, seed=5)
    assert _train(tmp_path, tmp_path / "models", "--allow-small") == 0
    out = capsys.readouterr().out
    version = out.strip().splitlines()[-1]
    assert "sample size BELOW the minimum: 160 development clients" in out
    meta = json.loads((tmp_path / "models" / version / "metadata.json").read_text())
    size = meta["sample_size"]
    assert (size["development_clients"], size["allow_small"], size["met"]) == (160, True, False)
    assert size["minimum"] == max(size["criteria"].values()) > 160
    assert size["parameters"] > 29  # every feature plus missingness indicators
    card = (tmp_path / "models" / version / "model_card.md").read_text()
    assert f"{size['minimum']:,} development clients" in card
    assert "160 available: **NOT met: trained with --allow-small" in card
    assert "about 300 cases" not in card
