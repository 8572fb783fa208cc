"""Plausible worlds: drawn from documented ranges, reproducible, recorded, and mixable."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training import cohort_stats
from training.cli import run
from training.simulate import SHAPES, SimulationParams, simulate
from training.worlds import (
    RANGES,
    Choice,
    Uniform,
    draw_world,
    pilot_d,
    simulate_mixture,
    world_of,
)


def test_worlds_are_reproducible_distinct_and_within_their_ranges() -> None:
    worlds = [draw_world(k) for k in range(24)]
    assert draw_world(3) == worlds[3]
    assert len({w.dropout_rate for w in worlds}) == 24
    for w in worlds:
        for name, spec in RANGES.items():
            # alliance_d is drawn, then alliance_logit solved to give it (to 0.005)
            value = pilot_d(w) if name == "alliance_d" else getattr(w, name)
            slack = 0.005 if name == "alliance_d" else 0.0
            if isinstance(spec, Uniform):
                assert spec.low - slack <= value <= spec.high + slack, name
            else:
                assert isinstance(spec, Choice), name
                assert value in spec.options, name
        assert abs(sum(w.site_mix) - 1) < 1e-9
        assert abs(sum(w.early_dropout_probs) - 1) < 1e-3
    for name, options in SHAPES.items():  # structure varies, not only magnitudes
        assert {getattr(w, name) for w in worlds} == set(options), name
    assert SimulationParams() not in worlds


def test_simulate_world_records_every_drawn_parameter(tmp_path: Path) -> None:
    out = tmp_path / "w"
    args = ["simulate", "--clients", "400", "--seed", "2", "--out", str(out), "--world", "7"]
    assert run(args) == 0
    sidecar = json.loads((out / "simulation.json").read_text())
    assert sidecar["world"] == 7
    expected = json.loads(json.dumps(dataclasses.asdict(draw_world(7))))
    assert sidecar["params"] == expected
    clients = pd.read_csv(out / "clients.csv")
    assert clients["client_id"].iloc[0] == "C000001"


def test_world_shapes_change_the_cohort() -> None:
    base = SimulationParams()
    dated = simulate(3000, 4, dataclasses.replace(base, date_recorded_prob=0.5))[1]
    assert 0.45 < dated["session_date"].isna().mean() < 0.55
    assert simulate(3000, 4, base)[1]["session_date"].notna().all()
    linear = _upper_half_d(simulate(20_000, 4, base))
    threshold = _upper_half_d(
        simulate(20_000, 4, dataclasses.replace(base, alliance_shape="threshold"))
    )
    assert threshold < linear - 0.1  # above the threshold, alliance adds no risk of its own


def _upper_half_d(pair: tuple[pd.DataFrame, pd.DataFrame]) -> float:
    """Alliance-dropout d among clients whose mean WAI-SR is above the median."""
    clients, sessions = pair
    wai = sessions[["wai_goal", "wai_task", "wai_bond"]].mean(axis=1)
    per_client = wai.groupby(sessions["client_id"]).mean().dropna()
    upper = per_client.index[per_client > per_client.median()]
    return cohort_stats.alliance_dropout_d(
        clients[clients["client_id"].isin(upper)], sessions[sessions["client_id"].isin(upper)]
    )


def _gap_by_outcome(params: SimulationParams) -> float:
    clients, sessions = simulate(6000, 8, params)
    days = pd.to_datetime(sessions["session_date"])
    first3 = sessions.assign(day=days)[sessions["session_number"] <= 3]
    span = first3.groupby("client_id")["day"].agg(["min", "max", "size"])
    gap = (span["max"] - span["min"]).dt.days[span["size"] == 3] / 2  # clients at session 3
    label = clients.set_index("client_id")["dropout"].reindex(gap.index)
    return float(gap[label == 1].mean() - gap[label == 0].mean())


def test_gap_link_can_be_switched_off() -> None:
    base = SimulationParams()
    assert _gap_by_outcome(base) > 1.0  # the default world builds the link in
    none = dataclasses.replace(base, gap_liability_effect=0.0, gap_pattern="irregular")
    assert abs(_gap_by_outcome(none)) < 1.0


def test_mixture_ids_name_their_world() -> None:
    clients, sessions, records = simulate_mixture([4, 9], 200, seed=1)
    assert len(clients) == 400
    assert [r["world"] for r in records] == [4, 9]
    assert sessions["client_id"].str[:6].isin(["W0004-", "W0009-"]).all()
    worlds = world_of(clients["client_id"], {"worlds": records})
    assert worlds is not None
    assert np.bincount(worlds)[[4, 9]].tolist() == [200, 200]
    assert world_of(clients["client_id"], {"worlds": records[:1]}) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--world", "1", "--set", "dropout_rate=0.3"], "cannot be combined with --world"),
        (["--world", "1", "--world", "1"], "each world may be given once"),
    ],
)
def test_bad_world_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["simulate", "--clients", "50", "--seed", "1", "--out", str(tmp_path), *extra]
    assert run(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "clients.csv").exists()


def test_every_world_passes_the_contract_s_date_window() -> None:
    """Long-gap worlds would run past today; their clients are moved back whole (gaps
    kept), so a simulated cohort is never refused by the plausible-date rule."""
    late = SimulationParams(session_gap_days=60.0)
    for params in [late, *(draw_world(k) for k in range(6))]:
        _, sessions = simulate(600, 3, params)
        dates = pd.to_datetime(sessions["session_date"].dropna())
        assert dates.max() <= pd.Timestamp("2026-06-30")
        assert dates.min() >= pd.Timestamp("1990-01-01")
    _, spread = simulate(600, 3, late)
    days = pd.to_datetime(spread["session_date"]).groupby(spread["client_id"]).diff().dt.days
    assert days.dropna().median() > 30  # moved back, not squeezed: the gaps are kept
