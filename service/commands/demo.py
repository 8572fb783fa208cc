"""A demo clinic: a simulated caseload stored through the same path as the EHR API, so a
new user sees a populated clinician view within a minute of `make run`.

Clients come from the literature-calibrated simulator (training.simulate), early phase only
(sessions 1-3, as an EHR would have pushed them so far), chosen so that every risk level is
present: the highest-risk clients first, then moderate and low ones, in equal thirds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from service.core.prediction import NotAtLandmark
from service.core.schemas import EpisodeIn
from service.scoring.records import recompute, require_client
from service.scoring.score import score
from service.storage import repository as repo
from service.storage.database import Storage
from training.registry import LoadedModel
from training.simulate import simulate
from training.vocabulary import URGENT_FIRST

EARLY_SESSIONS = 3
POOL = 30  # clients simulated per client kept, to find enough of each level


@dataclass(frozen=True)
class Seeded:
    clinic: str
    clients: int
    sessions: int
    by_level: dict[str, int]
    already_there: bool


def _value(row: Any, column: str) -> float | None:
    value = row[column]
    return None if value is None or pd.isna(value) else float(value)


def _session(row: Any) -> dict[str, Any]:
    """A contract session row as the API's session body."""
    out: dict[str, Any] = {"date": row["session_date"]}
    wai = {k: _value(row, f"wai_{k}") for k in ("goal", "task", "bond")}
    if any(v is not None for v in wai.values()):
        out["wai"] = {k: v for k, v in wai.items() if v is not None}
    for measure in ("srs", "ors"):
        total = _value(row, f"{measure}_total")
        if total is not None:
            out[measure] = {"total": total}
    phq9 = _value(row, "phq9_total")
    if phq9 is not None:
        out["phq9"] = {"total": int(phq9)}
    return out


def contract_episodes(clients: pd.DataFrame, sessions: pd.DataFrame) -> list[dict[str, Any]]:
    """Each client of a cohort in the contract's columns as the API's episode body (its
    sessions in number order), with its outcome when the cohort has labels: `outcome`
    {dropout, ended_on: the last session's date}."""
    by_client = dict(list(sessions.groupby("client_id", sort=False)))
    out = []
    for c in clients.to_dict("records"):
        rows = by_client.get(c["client_id"])
        if rows is None:
            continue
        rows = rows.sort_values("session_number")
        body: dict[str, Any] = {
            "client_id": c["client_id"],
            "age": None if pd.isna(c["age"]) else int(c["age"]),
            "gender": None if pd.isna(c["gender"]) else c["gender"],
            "therapist_id": None if pd.isna(c["therapist_id"]) else c["therapist_id"],
            "sessions": [
                {"number": int(r["session_number"]), **_session(r)} for _, r in rows.iterrows()
            ],
        }
        if "dropout" in c and not pd.isna(c["dropout"]):
            last = str(rows["session_date"].iloc[-1])[:10]
            body["outcome"] = {"dropout": bool(c["dropout"]), "ended_on": last}
        out.append(body)
    return out


def _episodes(n: int, seed: int) -> list[dict[str, Any]]:
    clients, sessions = simulate(n * POOL, seed)
    early = sessions[sessions["session_number"] <= EARLY_SESSIONS]
    out = []
    for e in contract_episodes(clients.drop(columns="dropout"), early):
        e["sessions"] = [b for b in e["sessions"] if len(b) > 2]  # a session needs a measure
        if e["sessions"]:
            out.append(e)
    return out


def _choose(model: LoadedModel, episodes: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """n episodes, a third of each level (highest risks first), as far as the pool allows."""
    bodies = [EpisodeIn.model_validate(e) for e in episodes]
    results = score(model, bodies)
    scored = [
        (r.probability, r.risk_level, e)
        for r, e in zip(results, episodes, strict=True)
        if not isinstance(r, NotAtLandmark)
    ]
    scored.sort(key=lambda item: -item[0])
    share = math.ceil(n / 3)
    chosen: list[dict[str, Any]] = []
    for level in URGENT_FIRST:
        chosen += [e for _, lv, e in scored if lv == level][:share]
    return chosen[:n]


def seed_demo(storage: Storage, model: LoadedModel, clinic: str, n: int, seed: int) -> Seeded:
    """Store a demo caseload of n clients for `clinic`, unless it already has clients."""
    with storage.session() as s:
        existing = repo.caseload(s, clinic, None, None, None, 1, 0).rows
    if existing:
        return Seeded(clinic, 0, 0, {}, True)
    chosen = _choose(model, _episodes(n, seed), n)
    with storage.session() as s:
        levels = store_episodes(s, clinic, chosen, model)
    sessions = sum(len(e["sessions"]) for e in chosen)
    return Seeded(clinic, len(chosen), sessions, levels, False)


def store_episodes(
    s: Session, clinic: str, episodes: list[dict[str, Any]], model: LoadedModel | None
) -> dict[str, int]:
    """Store episode bodies (contract_episodes) by the stored API's repository calls: the
    client, each session, the outcome if given, and, with a model, the risk; returns how
    many clients were stored at each level."""
    levels: dict[str, int] = {}
    for e in episodes:
        repo.upsert_client(s, clinic, e["client_id"], e["age"], e["gender"], e["therapist_id"])
        for body in e["sessions"]:
            payload = {k: v for k, v in body.items() if k != "number"}
            day = pd.Timestamp(payload["date"]).date() if "date" in payload else None
            repo.upsert_session(s, clinic, e["client_id"], body["number"], day, payload)
        if "outcome" in e:
            ended = pd.Timestamp(e["outcome"]["ended_on"]).date()
            repo.set_outcome(s, clinic, e["client_id"], e["outcome"]["dropout"], ended)
        if model is not None:
            client = require_client(s, clinic, e["client_id"])
            record = recompute(s, clinic, client, model, None)
            if record is not None:
                levels[record.risk_level] = levels.get(record.risk_level, 0) + 1
    return levels
