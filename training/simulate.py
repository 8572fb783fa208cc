"""A literature-calibrated simulator of early-phase psychotherapy cohorts.

Nobody has real patient data in this repository, so the shipped model and the tests use
simulated clinics. The generative story, per client:

1. Therapists work at sites; a site collects WAI-SR and SRS/ORS, only WAI-SR, or only
   SRS/ORS, and some collect PHQ-9. Each therapist has a random effect on dropout.
2. The client has a latent early alliance level and an early alliance slope. Alliance
   usually rises over the first sessions; ruptures (sudden drops) happen more often in
   weak alliances and are repaired (alliance recovers the next session) or not.
3. Dropout liability rises with a weaker and falling alliance, an unrepaired rupture,
   younger age and the therapist effect. Liability also lengthens the gaps between
   sessions (late cancellations, no-shows). The intercept is solved so the expected
   dropout rate is `dropout_rate`.
4. A share of dropouts leave because they improved (noisy label), independent of alliance.
5. Dropouts leave early (most after session 1 or 2, or right after an unrepaired rupture);
   completers attend 4 or more sessions. Symptoms improve with sessions attended and with
   alliance.

Every number and its source is listed in docs/simulator.md; the test suite checks the
published ones on 20,000 simulated clients. Same parameters and seed give the same files,
byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.vocabulary import ORS_TOTAL_RANGE, PHQ9_TOTAL_RANGE, SRS_TOTAL_RANGE, WAI_ITEM_RANGE

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SIDECAR = "simulation.json"
SHAPES: dict[str, tuple[str, ...]] = {
    "alliance_shape": ("linear", "threshold"),
    "gap_pattern": ("weekly", "irregular"),
    "therapist_effect": ("normal", "heavy"),
}
THRESHOLD_Z = -0.5  # "threshold" alliance shape: latent alliance below this adds risk
THRESHOLD_GAIN = 1.8  # ... this much more steeply than the linear shape


@dataclass(frozen=True)
class SimulationParams:
    """Every tunable number of the simulator (sources in docs/simulator.md)."""

    dropout_rate: float = 0.20  # Swift & Greenberg 2012: 19.7%
    improved_dropout_share: float = 0.15  # dropouts who leave because they improved
    alliance_logit: float = 0.42  # log-odds of dropout per SD weaker latent alliance
    slope_logit: float = 0.6  # per SD flatter/falling early alliance slope
    rupture_logit: float = 1.5  # unrepaired rupture
    age_logit_per_decade: float = -0.22  # younger clients drop out more
    therapist_icc: float = 0.126  # Saxon et al. 2017: 12.6% between therapists
    clients_per_therapist: float = 40.0
    therapists_per_site: int = 8
    site_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)  # both, WAI-SR only, SRS/ORS only
    phq9_site_share: float = 0.6
    age_mean: float = 35.0
    age_sd: float = 12.0
    gender_probs: tuple[float, float, float] = (0.62, 0.35, 0.03)  # female, male, nonbinary
    wai_mean: float = 3.75  # WAI-SR item mean at session 1 (skews high)
    wai_client_sd: float = 0.55
    wai_session_sd: float = 0.15
    wai_growth: float = 0.07  # mean rise per session over sessions 1-5
    wai_growth_sd: float = 0.15
    wai_subscale_offsets: tuple[float, float, float] = (-0.12, -0.05, 0.17)  # goal, task, bond
    wai_subscale_sd: float = 0.25
    srs_centre: float = 37.6  # PCOMS: most sessions score 36-40 (ceiling)
    srs_sd: float = 2.8
    srs_wai_correlation: float = 0.6  # SRS correlates about .6 with the WAI
    rupture_rate: float = 0.05  # chance of a rupture per session from session 2
    repair_prob: float = 0.55
    rupture_size: float = 0.65  # WAI-SR item-mean points lost in a rupture
    rupture_window: int = 6  # unrepaired ruptures up to this session drive dropout
    ors_intake_mean: float = 17.5  # typical ORS intake 16-19
    ors_intake_sd: float = 6.0
    phq9_intake_mean: float = 14.0
    phq9_intake_sd: float = 5.0
    improvement_mean: float = 7.0  # ORS points gained over a full course
    improvement_sd: float = 5.0
    improvement_alliance: float = 1.9  # ORS points per SD of latent alliance
    improvement_time_constant: float = 4.0  # sessions
    early_dropout_probs: tuple[float, ...] = (0.36, 0.24, 0.14, 0.1, 0.08, 0.05, 0.03)
    completer_min_sessions: int = 4
    completer_extra_sessions_mean: float = 7.0
    max_sessions_cap: int = 30
    session_gap_days: float = 7.0
    gap_liability_effect: float = 0.18  # log gap length per SD of dropout liability
    missing_measure_prob: float = 0.05
    missing_age_prob: float = 0.03
    missing_gender_prob: float = 0.02
    missing_therapist_prob: float = 0.02
    # Structural assumptions the literature is silent on (docs/simulator.md, "Worlds"); the
    # defaults are the shapes of the literature-centred world.
    alliance_shape: str = "linear"  # or "threshold": only alliance below -0.5 SD adds risk
    gap_pattern: str = "weekly"  # or "irregular": per-client rhythm, noisier gaps, breaks
    therapist_effect: str = "normal"  # or "heavy": Student t (3 df), a few outlying therapists
    date_recorded_prob: float = 1.0  # chance that a session's date is recorded

    def __post_init__(self) -> None:
        if not 0 < self.dropout_rate < 1:
            raise ValueError("dropout_rate must be between 0 and 1")
        for name, allowed in SHAPES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if not 0 <= self.date_recorded_prob <= 1:
            raise ValueError("date_recorded_prob must be in [0, 1]")
        if not 0 <= self.therapist_icc < 1:
            raise ValueError("therapist_icc must be in [0, 1)")
        if abs(sum(self.site_mix) - 1) > 1e-9 or abs(sum(self.gender_probs) - 1) > 1e-9:
            raise ValueError("site_mix and gender_probs must each sum to 1")


@dataclass
class _Clients:
    """Client-level latent and observed variables (internal)."""

    therapist: IntArray
    site_kind: IntArray
    phq9_site: BoolArray
    age: FloatArray
    gender: npt.NDArray[np.object_]
    alliance: FloatArray
    slope: FloatArray
    dropout: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    improved_dropout: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    last_session: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    liability_z: FloatArray = field(default_factory=lambda: np.zeros(0))


def _normal(
    rng: np.random.Generator, loc: float, scale: float, shape: int | tuple[int, int]
) -> FloatArray:
    out: FloatArray = np.asarray(rng.normal(loc, scale, shape), dtype=np.float64)
    return out


def _expit(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def _solve_intercept(linear: FloatArray, target: float) -> float:
    """Intercept b with mean(expit(b + linear)) == target, by bisection."""
    low, high = -20.0, 20.0
    for _ in range(80):
        mid = (low + high) / 2
        if _expit(mid + linear).mean() < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _draw_clients(n: int, p: SimulationParams, rng: np.random.Generator) -> _Clients:
    n_ther = max(1, round(n / p.clients_per_therapist))
    weights = rng.lognormal(0.0, 0.6, n_ther)
    therapist = rng.choice(n_ther, size=n, p=weights / weights.sum())
    n_sites = n_ther // p.therapists_per_site + 1
    site_kind_of_site = rng.choice(3, size=n_sites, p=np.asarray(p.site_mix))
    phq9_of_site = rng.random(n_sites) < p.phq9_site_share
    site = therapist // p.therapists_per_site
    age = np.clip(np.round(rng.normal(p.age_mean, p.age_sd, n)), 18, 80)
    gender = rng.choice(
        np.array(["female", "male", "nonbinary"], dtype=object),
        size=n,
        p=np.asarray(p.gender_probs),
    )
    return _Clients(
        therapist=therapist.astype(np.int64),
        site_kind=site_kind_of_site[site].astype(np.int64),
        phq9_site=phq9_of_site[site],
        age=age,
        gender=gender,
        alliance=rng.standard_normal(n),
        slope=rng.standard_normal(n),
    )


def _ruptures(
    c: _Clients, p: SimulationParams, t_max: int, rng: np.random.Generator
) -> tuple[BoolArray, BoolArray]:
    """Rupture and repair indicators per session (n, t_max); none at session 1."""
    n = c.alliance.shape[0]
    rate = p.rupture_rate * np.exp(-0.45 * c.alliance)[:, None]
    rupture = rng.random((n, t_max)) < rate
    rupture[:, 0] = False
    repaired = rupture & (rng.random((n, t_max)) < p.repair_prob)
    return rupture, repaired


def _decide_dropout(
    c: _Clients, p: SimulationParams, unrepaired_at: IntArray, rng: np.random.Generator
) -> None:
    n = c.alliance.shape[0]
    alliance_part = (
        -p.alliance_logit * c.alliance
        if p.alliance_shape == "linear"
        else -p.alliance_logit * THRESHOLD_GAIN * np.minimum(c.alliance - THRESHOLD_Z, 0.0)
    )
    client_part = (
        alliance_part
        - p.slope_logit * c.slope
        + p.rupture_logit * (unrepaired_at > 0)
        + p.age_logit_per_decade * (c.age - p.age_mean) / 10
    )
    # The ICC is taken against all client-level latent variance, not pi^2/3 alone, so the
    # share observed between therapists (what Saxon et al. report) matches the parameter;
    # improved dropouts, drawn regardless of therapist, dilute it and are made up for.
    within = np.pi**2 / 3 + client_part.var()
    sigma_u = np.sqrt(p.therapist_icc / (1 - p.therapist_icc) * within)
    sigma_u /= 1 - p.improved_dropout_share
    n_ther = int(c.therapist.max()) + 1
    u = (
        rng.normal(0.0, sigma_u, n_ther)
        if p.therapist_effect == "normal"
        else sigma_u * rng.standard_t(3, n_ther) / np.sqrt(3.0)  # t(3) has variance 3
    )[c.therapist]
    linear = client_part + u
    alliance_rate = p.dropout_rate * (1 - p.improved_dropout_share)
    b0 = _solve_intercept(linear, alliance_rate)
    liability = b0 + linear
    dropout = rng.random(n) < _expit(liability)
    improved_rate = p.dropout_rate * p.improved_dropout_share / (1 - alliance_rate)
    improved = ~dropout & (rng.random(n) < improved_rate)
    c.dropout = dropout | improved
    c.improved_dropout = improved
    c.liability_z = (liability - liability.mean()) / liability.std()


def _last_sessions(
    c: _Clients, p: SimulationParams, unrepaired_at: IntArray, rng: np.random.Generator
) -> None:
    n = c.alliance.shape[0]
    probs = np.asarray(p.early_dropout_probs)
    early = rng.choice(np.arange(1, probs.size + 1), size=n, p=probs / probs.sum())
    after_rupture = unrepaired_at + (rng.random(n) < 0.3)
    leave_at_rupture = (unrepaired_at > 0) & (rng.random(n) < 0.7)
    dropout_last = np.where(leave_at_rupture, after_rupture, early)
    improved_last = rng.integers(3, 9, n)
    completer_last = np.minimum(
        p.completer_min_sessions + rng.poisson(p.completer_extra_sessions_mean, n),
        p.max_sessions_cap,
    )
    last = np.where(c.dropout, dropout_last, completer_last)
    c.last_session = np.where(c.improved_dropout, improved_last, last).astype(np.int64)


def _alliance_paths(
    c: _Clients,
    p: SimulationParams,
    rupture: BoolArray,
    repaired: BoolArray,
    rng: np.random.Generator,
) -> FloatArray:
    """Latent WAI-SR level per session (n, t_max), before subscale split and rounding."""
    n, t_max = rupture.shape
    t = np.minimum(np.arange(t_max), 4)[None, :]
    slope = p.wai_growth + p.wai_growth_sd * c.slope
    level = p.wai_mean + p.wai_client_sd * c.alliance
    path = level[:, None] + slope[:, None] * t
    hit = np.where(rupture, p.rupture_size, 0.0)
    lasting = np.cumsum(np.where(rupture & ~repaired, 0.8 * p.rupture_size, 0.0), axis=1)
    lasting = lasting - np.where(rupture & ~repaired, 0.8 * p.rupture_size, 0.0)
    path = path - hit - lasting
    noisy: FloatArray = path + _normal(rng, 0.0, p.wai_session_sd, (n, t_max))
    return noisy


def _quarter(x: FloatArray) -> FloatArray:
    """Round to a 4-item mean (steps of 0.25) within 1-5."""
    out: FloatArray = np.clip(np.round(x * 4) / 4, *WAI_ITEM_RANGE)
    return out


def _measures(
    c: _Clients, p: SimulationParams, wai: FloatArray, rng: np.random.Generator
) -> dict[str, FloatArray]:
    n, t_max = wai.shape
    out: dict[str, FloatArray] = {}
    for name, offset in zip(
        ("wai_goal", "wai_task", "wai_bond"), p.wai_subscale_offsets, strict=True
    ):
        client_dev = _normal(rng, 0.0, p.wai_subscale_sd, n)[:, None]
        out[name] = _quarter(wai + offset + client_dev + rng.normal(0.0, 0.15, (n, t_max)))
    z = (wai - p.wai_mean) / np.sqrt(p.wai_client_sd**2 + p.wai_session_sd**2)
    rho = p.srs_wai_correlation
    srs = p.srs_centre + p.srs_sd * (rho * z + np.sqrt(1 - rho**2) * rng.standard_normal(z.shape))
    out["srs_total"] = np.clip(np.round(srs, 1), *SRS_TOTAL_RANGE)
    gain = (
        p.improvement_mean
        + p.improvement_alliance * c.alliance
        + _normal(rng, 0.0, p.improvement_sd, n)
        + 8.0 * c.improved_dropout
    )
    dose = 1 - np.exp(-np.arange(t_max) / p.improvement_time_constant)
    ors0 = _normal(rng, p.ors_intake_mean, p.ors_intake_sd, n)
    ors = ors0[:, None] + gain[:, None] * dose[None, :] + _normal(rng, 0, 2.0, (n, t_max))
    out["ors_total"] = np.clip(np.round(ors, 1), *ORS_TOTAL_RANGE)
    phq0 = _normal(rng, p.phq9_intake_mean, p.phq9_intake_sd, n)
    phq = phq0[:, None] - 0.7 * gain[:, None] * dose[None, :] + _normal(rng, 0, 1.8, (n, t_max))
    out["phq9_total"] = np.clip(np.round(phq), *PHQ9_TOTAL_RANGE)
    return out


def _blank_unmeasured(
    c: _Clients, p: SimulationParams, m: dict[str, FloatArray], rng: np.random.Generator
) -> None:
    """Apply site instrument choices and random per-session missingness."""
    no_wai = (c.site_kind == 2)[:, None]
    no_srs = (c.site_kind == 1)[:, None]
    site_missing = {
        "wai_goal": no_wai,
        "wai_task": no_wai,
        "wai_bond": no_wai,
        "srs_total": no_srs,
        "ors_total": no_srs,
        "phq9_total": ~c.phq9_site[:, None],
    }
    shape = m["srs_total"].shape
    wai_skip = rng.random(shape) < p.missing_measure_prob
    for name, values in m.items():
        skip = wai_skip if name.startswith("wai") else rng.random(shape) < p.missing_measure_prob
        values[site_missing[name] | skip] = np.nan


def _session_days(
    c: _Clients, p: SimulationParams, t_max: int, rng: np.random.Generator
) -> IntArray:
    n = c.alliance.shape[0]
    offset = np.asarray(rng.integers(0, 700, size=n), dtype=np.int64)
    start = np.datetime64("2024-01-08", "D").astype(np.int64) + offset
    scale = p.session_gap_days * np.exp(p.gap_liability_effect * c.liability_z)
    if p.gap_pattern == "weekly":
        noise: FloatArray = np.asarray(rng.lognormal(0.0, 0.3, (n, t_max)), dtype=np.float64)
    else:  # each client their own rhythm, noisier gaps, and now and then a long break
        rhythm = np.asarray(rng.lognormal(0.0, 0.4, n), dtype=np.float64)[:, None]
        breaks = np.where(rng.random((n, t_max)) < 0.1, 3.0, 1.0)
        noise = rhythm * breaks * rng.lognormal(0.0, 0.6, (n, t_max))
    gaps = np.maximum(1, np.round(scale[:, None] * noise))
    gaps[:, 0] = 0
    days: IntArray = (start[:, None] + np.cumsum(gaps, axis=1)).astype(np.int64)
    return days


def simulate(
    n_clients: int,
    seed: int,
    params: SimulationParams | None = None,
    max_sessions: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a cohort; returns (clients, sessions) in the cohort contract.

    `max_sessions` keeps only each client's first sessions, as an early-phase export does.
    """
    if n_clients < 1:
        raise ValueError("n_clients must be at least 1")
    p = params or SimulationParams()
    rng = np.random.default_rng(seed)
    c = _draw_clients(n_clients, p, rng)
    t_max = p.max_sessions_cap
    rupture, repaired = _ruptures(c, p, t_max, rng)
    unrepaired = rupture & ~repaired
    early = unrepaired[:, : p.rupture_window]
    first_unrepaired = np.where(early.any(axis=1), early.argmax(axis=1) + 1, 0)
    _decide_dropout(c, p, first_unrepaired, rng)
    _last_sessions(c, p, first_unrepaired, rng)
    measures = _measures(c, p, _alliance_paths(c, p, rupture, repaired, rng), rng)
    _blank_unmeasured(c, p, measures, rng)
    days = _session_days(c, p, t_max, rng)
    clients = _clients_table(c, p, rng)
    sessions = _sessions_table(c, measures, days, max_sessions)
    if p.date_recorded_prob < 1:  # drawn only then: the default world's stream is unchanged
        blank = rng.random(len(sessions)) >= p.date_recorded_prob
        sessions["session_date"] = sessions["session_date"].mask(blank)
    return clients, sessions


def _ids(prefix: str, idx: IntArray, width: int) -> npt.NDArray[np.str_]:
    return np.char.add(prefix, np.char.zfill(idx.astype(str), width))


def _clients_table(c: _Clients, p: SimulationParams, rng: np.random.Generator) -> pd.DataFrame:
    n = c.alliance.shape[0]
    width = max(6, len(str(n)))
    ther = pd.Series(_ids("T", c.therapist + 1, 4), dtype="string")
    ther[rng.random(n) < p.missing_therapist_prob] = pd.NA
    age = pd.Series(c.age, dtype="Int64")
    age[rng.random(n) < p.missing_age_prob] = pd.NA
    gender = pd.Series(c.gender, dtype="string")
    gender[rng.random(n) < p.missing_gender_prob] = pd.NA
    return pd.DataFrame(
        {
            "client_id": _ids("C", np.arange(1, n + 1), width),
            "therapist_id": ther,
            "age": age,
            "gender": gender,
            "dropout": c.dropout.astype(np.int64),
        }
    )


# The last day a simulated session may fall on: in the past, so every simulated date
# stays inside the plausible window whenever the code runs.
_SIMULATED_UNTIL = int(np.datetime64("2026-06-30", "D").astype(np.int64))


def _sessions_table(
    c: _Clients, measures: dict[str, FloatArray], days: IntArray, max_sessions: int | None
) -> pd.DataFrame:
    n, t_max = days.shape
    width = max(6, len(str(n)))
    last = c.last_session if max_sessions is None else np.minimum(c.last_session, max_sessions)
    attended = np.arange(1, t_max + 1)[None, :] <= last[:, None]
    # A simulated date must be a plausible one (training.vocabulary's window ends at
    # today + 1): a client whose last session would fall after SIMULATED_UNTIL is moved
    # back whole, gaps kept. The default world ends before it, so its cohorts are unchanged.
    last_day = days[np.arange(n), np.maximum(last, 1) - 1]
    days = days - np.maximum(last_day - _SIMULATED_UNTIL, 0)[:, None]
    rows, cols = np.nonzero(attended)
    frame = pd.DataFrame(
        {
            "client_id": _ids("C", rows + 1, width),
            "session_number": cols + 1,
            "session_date": days[rows, cols].astype("datetime64[D]").astype(str),
        }
    )
    for name, values in measures.items():
        kept = values[rows, cols]
        frame[name] = pd.Series(kept).astype("Int64") if name == "phq9_total" else kept
    return frame


def write_cohort(
    out_dir: Path,
    n_clients: int,
    seed: int,
    max_sessions: int | None = None,
    params: SimulationParams | None = None,
    world: int | None = None,
) -> tuple[Path, Path]:
    """Simulate and write clients.csv, sessions.csv and a provenance sidecar.

    `max_sessions` keeps only each client's first sessions, as an early-phase export does;
    `world` (recorded in the sidecar) says which drawn world `params` is.
    """
    p = params or SimulationParams()
    clients, sessions = simulate(n_clients, seed, p, max_sessions)
    sidecar = {
        "simulated": True,
        "n_clients": n_clients,
        "seed": seed,
        "max_sessions": max_sessions,
        **({} if world is None else {"world": world}),
        "params": asdict(p),
    }
    return write_tables(out_dir, clients, sessions, sidecar)


def write_tables(
    out_dir: Path, clients: pd.DataFrame, sessions: pd.DataFrame, sidecar: dict[str, Any]
) -> tuple[Path, Path]:
    """Write a simulated cohort's CSVs and its provenance sidecar into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clients_path, sessions_path = out_dir / "clients.csv", out_dir / "sessions.csv"
    _write_atomic(clients_path, clients)
    _write_atomic(sessions_path, sessions)
    (out_dir / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
    return clients_path, sessions_path


def _write_atomic(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


def read_sidecar(data_dir: Path) -> dict[str, object] | None:
    """The simulator's provenance record beside a cohort, if the cohort was simulated."""
    path = data_dir / SIDECAR
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("simulated") is True else None
