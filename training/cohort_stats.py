"""Cohort statistics that the literature reports, computed from contract tables.

Used to check that the simulator reproduces the published numbers (tests and
`dropout-risk simulate`), and usable on a real clinic export for comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.features import SRS_CUTOFF


def _wai(sessions: pd.DataFrame) -> pd.Series:
    cols = [c for c in ("wai_goal", "wai_task", "wai_bond") if c in sessions.columns]
    return sessions[cols].mean(axis=1, skipna=True)


def alliance_dropout_d(clients: pd.DataFrame, sessions: pd.DataFrame) -> float:
    """Cohen's d of the mean WAI-SR of attended sessions, completers minus dropouts."""
    per_client = _wai(sessions).groupby(sessions["client_id"]).mean().dropna()
    label = clients.set_index("client_id")["dropout"].reindex(per_client.index)
    comp, drop = per_client[label == 0], per_client[label == 1]
    pooled = np.sqrt(
        ((len(comp) - 1) * comp.var() + (len(drop) - 1) * drop.var()) / (len(comp) + len(drop) - 2)
    )
    return float((comp.mean() - drop.mean()) / pooled)


def alliance_outcome_r(sessions: pd.DataFrame) -> float:
    """Pearson r between early alliance (mean WAI-SR, sessions 1-3) and ORS improvement
    from the first to the last attended session, in clients with both measures."""
    s = sessions.assign(wai=_wai(sessions)).sort_values(["client_id", "session_number"])
    early = s[s["session_number"] <= 3].groupby("client_id")["wai"].mean()
    ors = s.dropna(subset=["ors_total"]).groupby("client_id")["ors_total"]
    change = (ors.last() - ors.first())[ors.count() >= 2]
    both = pd.concat([early, change], axis=1, join="inner").dropna()
    return float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1])


def srs_summary(sessions: pd.DataFrame) -> tuple[float, float]:
    """(median SRS total, share of sessions below the 36 cutoff)."""
    srs = sessions["srs_total"].dropna()
    return float(srs.median()), float((srs < SRS_CUTOFF).mean())


def _logit_variance_for(between_var: float, rate: float) -> float:
    """Latent (logit-scale) therapist variance whose rates vary by `between_var`.

    Solves Var_u[expit(mu + u)] = between_var with E[expit(mu + u)] = rate by Gauss-Hermite
    quadrature, rather than the delta method, which understates large effects.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()

    def moments(mu: float, sigma: float) -> tuple[float, float]:
        p = 1 / (1 + np.exp(-(mu + sigma * nodes)))
        mean = float(weights @ p)
        return mean, float(weights @ (p - mean) ** 2)

    def mu_for(sigma: float) -> float:
        low, high = -15.0, 15.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if moments(mid, sigma)[0] < rate else (low, mid)
        return (low + high) / 2

    low, high = 0.0, 5.0
    for _ in range(50):
        sigma = (low + high) / 2
        low, high = (
            (sigma, high) if moments(mu_for(sigma), sigma)[1] < between_var else (low, sigma)
        )
    return ((low + high) / 2) ** 2


def therapist_icc(clients: pd.DataFrame, min_clients: int = 5) -> float:
    """Latent-scale intraclass correlation of dropout between therapists.

    The between-therapist variance of dropout rates comes from a one-way ANOVA on the 0/1
    outcome; it is mapped to the logit scale (variance of a random intercept) and divided
    by that variance plus pi^2/3, the scale used by multilevel logistic models such as
    Saxon et al. 2017.
    """
    known = clients.dropna(subset=["therapist_id"])
    size = known.groupby("therapist_id")["dropout"].transform("size")
    data = known[size >= min_clients]
    groups = data.groupby("therapist_id")["dropout"]
    n_j, mean_j = groups.size().to_numpy(), groups.mean().to_numpy()
    n, k, grand = n_j.sum(), len(n_j), float(data["dropout"].mean())
    msb = float((n_j * (mean_j - grand) ** 2).sum() / (k - 1))
    msw = float(groups.var(ddof=1).fillna(0).to_numpy() @ (n_j - 1) / (n - k))
    n0 = (n - (n_j**2).sum() / n) / (k - 1)
    between = max(0.0, (msb - msw) / n0)
    sigma2 = _logit_variance_for(between, grand)
    return float(sigma2 / (sigma2 + np.pi**2 / 3))


def dropout_by_age(clients: pd.DataFrame) -> tuple[float, float]:
    """(dropout rate under 25, dropout rate 40 and over)."""
    young = clients.loc[clients["age"] < 25, "dropout"].mean()
    older = clients.loc[clients["age"] >= 40, "dropout"].mean()
    return float(young), float(older)


def early_dropout_share(clients: pd.DataFrame, sessions: pd.DataFrame) -> float:
    """Share of dropouts whose last attended session was session 1 or 2."""
    last = sessions.groupby("client_id")["session_number"].max()
    dropped = clients.loc[clients["dropout"] == 1, "client_id"]
    return float((last.reindex(dropped) <= 2).mean())


def rupture_counts(sessions: pd.DataFrame, drop: float = 0.5) -> tuple[int, int]:
    """(repaired, unrepaired) WAI-SR ruptures: a fall of `drop` points or more from one
    session to the next; repaired when the following session is back within 0.25 of the
    level before the fall."""
    s = sessions.assign(wai=_wai(sessions)).sort_values(["client_id", "session_number"])
    g = s.groupby("client_id")["wai"]
    prev, after = g.shift(1), g.shift(-1)
    fell = (prev - s["wai"]) >= drop
    seen_after = fell & after.notna()
    repaired = seen_after & (after >= prev - 0.25)
    return int(repaired.sum()), int((seen_after & ~repaired).sum())


def site_instrument_shares(sessions: pd.DataFrame) -> dict[str, float]:
    """Share of clients whose records hold only WAI-SR, only SRS/ORS, or both."""
    has = sessions.assign(
        wai=_wai(sessions).notna(),
        srs=sessions["srs_total"].notna() | sessions["ors_total"].notna(),
    )
    per = has.groupby("client_id")[["wai", "srs"]].any()
    return {
        "wai_only": float((per["wai"] & ~per["srs"]).mean()),
        "srs_ors_only": float((~per["wai"] & per["srs"]).mean()),
        "both": float((per["wai"] & per["srs"]).mean()),
    }


def summary(clients: pd.DataFrame, sessions: pd.DataFrame) -> dict[str, float]:
    """The published statistics in one dict (names as in docs/simulator.md)."""
    median, below = srs_summary(sessions)
    young, older = dropout_by_age(clients)
    repaired, unrepaired = rupture_counts(sessions)
    shares = site_instrument_shares(sessions)
    return {
        "dropout_rate": float(clients["dropout"].mean()),
        "alliance_dropout_d": alliance_dropout_d(clients, sessions),
        "srs_median": median,
        "srs_below36_share": below,
        "alliance_outcome_r": alliance_outcome_r(sessions),
        "therapist_icc": therapist_icc(clients),
        "dropout_rate_under25": young,
        "dropout_rate_40plus": older,
        "early_dropout_share": early_dropout_share(clients, sessions),
        "ruptures_repaired": float(repaired),
        "ruptures_unrepaired": float(unrepaired),
        **{f"clients_{k}": v for k, v in shares.items()},
    }
