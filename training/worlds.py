"""Plausible worlds: the simulator's uncertainty made explicit.

The default `SimulationParams` is one literature-centred world. Many of its numbers are
not pinned down by research (docs/simulator.md, "Worlds"), and a model trained on one world
learns that world. Each parameter the literature leaves open has a plausible range here;
`draw_world(k)` draws world k from those ranges (magnitudes and structural shapes), the
same world for the same k on every machine. Training on a mixture of worlds (domain
randomisation) and testing on worlds left out (bench/transport.py) is how the shipped
default is checked for transport.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.cohort_stats import alliance_dropout_d
from training.simulate import SHAPES, SimulationParams, simulate, write_tables

WORLD_SALT = 20261201  # fixed: world k is the same world in every run and on every machine
EARLY_SESSIONS = 7  # early_dropout_probs covers sessions 1..7


@dataclass(frozen=True)
class Uniform:
    """A magnitude drawn uniformly from [low, high]; `source` says why the range."""

    low: float
    high: float
    source: str

    def draw(self, rng: np.random.Generator) -> float:
        return round(float(rng.uniform(self.low, self.high)), 4)


@dataclass(frozen=True)
class Choice:
    """A structural assumption drawn from its alternatives with equal probability."""

    options: tuple[str, ...]
    source: str

    def draw(self, rng: np.random.Generator) -> str:
        return str(self.options[int(rng.integers(len(self.options)))])


def _shape(name: str, source: str) -> Choice:
    return Choice(SHAPES[name], source)


# Scalar parameters the literature does not pin down, in draw order (never reorder: world k
# would change). Sources and reasons are in docs/simulator.md, "Worlds".
RANGES: dict[str, Uniform | Choice] = {
    "dropout_rate": Uniform(0.15, 0.47, "15-47% across meta-analyses (Carpallo-Gonzalez 2023)"),
    # drawn as the observable alliance-dropout d; alliance_logit is solved to give it
    "alliance_d": Uniform(0.41, 0.69, "d = 0.55 +- 2 SE on N = 1,301 (Sharf et al. 2010)"),
    "alliance_shape": _shape("alliance_shape", "linear or threshold: not reported"),
    "slope_logit": Uniform(0.0, 0.9, "trajectory effect: direction known, size not"),
    "rupture_logit": Uniform(0.5, 2.0, "rupture effect: direction known (Safran & Muran)"),
    "rupture_rate": Uniform(0.02, 0.10, "rupture rates vary by definition"),
    "repair_prob": Uniform(0.35, 0.75, "repair rates vary by definition"),
    "gap_liability_effect": Uniform(0.0, 0.45, "spacing-dropout link: none to strong"),
    "session_gap_days": Uniform(7.0, 14.0, "weekly to fortnightly services"),
    "gap_pattern": _shape("gap_pattern", "regular weekly or irregular rhythms"),
    "date_recorded_prob": Uniform(0.6, 1.0, "how often exports carry session dates"),
    "phq9_site_share": Uniform(0.2, 0.9, "PHQ-9 use varies by service"),
    "srs_centre": Uniform(36.0, 38.5, "SRS ceiling (Duncan et al. 2003): most 36-40"),
    "srs_sd": Uniform(2.0, 4.0, "SRS spread below the ceiling"),
    "therapist_icc": Uniform(0.03, 0.25, "12.6% (Saxon et al. 2017); services differ"),
    "therapist_effect": _shape("therapist_effect", "normal or a few outlying therapists"),
    "age_logit_per_decade": Uniform(-0.4, 0.0, "younger clients drop out more; size varies"),
    "missing_measure_prob": Uniform(0.0, 0.15, "form completion varies by service"),
    "improved_dropout_share": Uniform(0.0, 0.3, "'improvement dropouts': label noise"),
    "wai_growth": Uniform(0.0, 0.12, "alliance usually rises early; size not pinned down"),
}
SITE_MIX_CONCENTRATION = (2.0, 1.0, 1.0)  # Dirichlet: both, WAI-SR only, SRS/ORS only
FIRST_SESSION_SHARE = Uniform(0.2, 0.5, "share of early dropouts leaving after session 1")
EARLY_DECAY = Uniform(0.5, 0.8, "ratio of leavers at each next session")


def _early_dropout_probs(rng: np.random.Generator) -> tuple[float, ...]:
    """Last-session distribution of early dropouts: a first-session share, then decay."""
    first, decay = FIRST_SESSION_SHARE.draw(rng), EARLY_DECAY.draw(rng)
    raw = first * decay ** np.arange(EARLY_SESSIONS)
    rest = (1 - first) / raw[1:].sum()
    probs = np.concatenate([[first], raw[1:] * rest])
    return tuple(round(float(q), 4) for q in probs / probs.sum())


def _site_mix(rng: np.random.Generator) -> tuple[float, float, float]:
    a, b, _ = (round(float(q), 4) for q in rng.dirichlet(SITE_MIX_CONCENTRATION))
    return a, b, round(1.0 - a - b, 4)


# Solving alliance_logit for a world's d: a pilot cohort in which every session records
# WAI-SR (the d is a property of the world, not of its sites' instrument choice), with the
# same seed at every step (common random numbers make d increase smoothly with the logit).
PILOT_CLIENTS, PILOT_SEED, PILOT_STEPS = 10_000, 99, 12
LOGIT_BRACKET = (0.0, 6.0)  # a threshold-shaped world needs a large latent effect for its d


D_SESSIONS = 3  # the d is of early alliance: sessions 1-3, as in training.cohort_stats


def pilot_d(params: SimulationParams) -> float:
    """The early-alliance-dropout d a world produces (mean WAI-SR of sessions 1-3, all
    sites on WAI-SR). Early, because the mean of every attended session mixes alliance
    with session count: completers' later sessions carry the early rise of the alliance,
    so that d grows with `wai_growth` while the alliance predicts nothing more."""
    everyone = dataclasses.replace(
        params, site_mix=(1.0, 0.0, 0.0), missing_measure_prob=0.0, date_recorded_prob=1.0
    )
    clients, sessions = simulate(PILOT_CLIENTS, PILOT_SEED, everyone)
    return alliance_dropout_d(clients, sessions[sessions["session_number"] <= D_SESSIONS])


def solve_alliance_logit(params: SimulationParams, target_d: float) -> float:
    """The latent alliance effect at which the world shows the observable d `target_d`.

    What research pins down is the separation of completers and dropouts on the alliance
    they report (d = 0.55), not a latent coefficient: the same coefficient gives d = 0.15 in
    a world with a threshold shape, many improvement dropouts and strong therapist effects,
    and d = 0.7 in another. Solving for d keeps every world at a published separation.
    """
    low, high = LOGIT_BRACKET
    for _ in range(PILOT_STEPS):
        mid = (low + high) / 2
        if pilot_d(dataclasses.replace(params, alliance_logit=mid)) < target_d:
            low = mid
        else:
            high = mid
    return round((low + high) / 2, 4)


@functools.lru_cache(maxsize=256)
def draw_world(k: int) -> SimulationParams:
    """World k: every open parameter drawn from its range (the same world for the same k)."""
    if k < 0:
        raise ValueError(f"world must be 0 or more, not {k}")
    rng = np.random.default_rng([WORLD_SALT, k])
    values: dict[str, Any] = {name: spec.draw(rng) for name, spec in RANGES.items()}
    target_d = values.pop("alliance_d")
    values["site_mix"] = _site_mix(rng)
    values["early_dropout_probs"] = _early_dropout_probs(rng)
    drafted = SimulationParams(**values)
    return dataclasses.replace(drafted, alliance_logit=solve_alliance_logit(drafted, target_d))


def world_seed(seed: int, k: int) -> int:
    """The simulation seed of world k inside a mixture seeded `seed`."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def drawn(params: SimulationParams) -> dict[str, Any]:
    """A world's parameters as recorded (all of them, JSON-ready)."""
    return dataclasses.asdict(params)


def _prefixed(frame: Any, column: str, prefix: str) -> Any:
    return frame.assign(**{column: prefix + frame[column].astype("string")})


def world_prefix(k: int) -> str:
    """Client and therapist ids of world k in a mixture start with this."""
    return f"W{k:04d}-"


def simulate_mixture(
    worlds: list[int], n_per_world: int, seed: int, max_sessions: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """One cohort of `n_per_world` clients from each world, ids prefixed by world; returns
    (clients, sessions, the record of each world)."""
    if len(set(worlds)) != len(worlds):
        raise ValueError("each world may appear only once in a mixture")
    frames, records = [], []
    for k in worlds:
        params, s = draw_world(k), world_seed(seed, k)
        clients, sessions = simulate(n_per_world, s, params, max_sessions)
        prefix = world_prefix(k)
        clients = _prefixed(_prefixed(clients, "client_id", prefix), "therapist_id", prefix)
        frames.append((clients, _prefixed(sessions, "client_id", prefix)))
        records.append({"world": k, "client_prefix": prefix, "seed": s, "params": drawn(params)})
    clients = pd.concat([c for c, _ in frames], ignore_index=True)
    sessions = pd.concat([t for _, t in frames], ignore_index=True)
    return clients, sessions, records


def write_mixture(
    out_dir: Path, worlds: list[int], n_per_world: int, seed: int, max_sessions: int | None
) -> tuple[Path, Path]:
    """Write a mixture of worlds as one cohort; the sidecar lists every world as drawn."""
    clients, sessions, records = simulate_mixture(worlds, n_per_world, seed, max_sessions)
    sidecar = {
        "simulated": True,
        "n_clients": len(clients),
        "seed": seed,
        "max_sessions": max_sessions,
        "worlds": records,
    }
    return write_tables(out_dir, clients, sessions, sidecar)


def world_of(client_ids: Any, sidecar: dict[str, Any] | None) -> npt.NDArray[np.int64] | None:
    """The world of each client of a mixture cohort (by id prefix), None for one world."""
    records = (sidecar or {}).get("worlds")
    if not isinstance(records, list) or len(records) < 2:
        return None
    ids = pd.Series(np.asarray(client_ids, dtype=object), dtype="string")
    out = np.full(len(ids), -1, dtype=np.int64)
    for record in records:
        out[ids.str.startswith(str(record["client_prefix"])).to_numpy(dtype=bool)] = int(
            record["world"]
        )
    return out
