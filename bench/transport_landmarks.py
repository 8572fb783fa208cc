"""Would a model per landmark transport better than the pooled default? (issue 12)

The shipped default is one sign-constrained logistic model over the rows of every landmark.
This experiment trains, on the same mixture of worlds as the shipped model (its worlds, clients
per world and seed, read from its metadata), one such model per landmark by the same pipeline
(training.train.fit_model with the worlds), and scores both on held-out worlds 1000.. next to
an in-world "oracle": an unconstrained logistic model on every feature fitted at that
landmark on the world's own training split (training.transport.within_world_logistic).
Per world and landmark it prints, on the test split, each model's AUC minus that of
"last SRS < 36" (SRS rows) and of the logistic on mean WAI-SR (WAI rows), and each model's
calibration slope.

Usage: .venv/bin/python bench/transport_landmarks.py [--held-out-clients 8000] [--held-out 8]
(about 10 minutes on the project's 2-core machine). Its output on 2026-12-02 is summarised in
README, "Transport".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transport as bench  # bench/transport.py, the leave-one-world-out bench

from training.baselines import SRS_LAST, WAI_LOGISTIC, at_threshold, fit_baselines
from training.evaluation import auc, calibration_slope_intercept
from training.registry import LoadedModel, Registry
from training.train import TrainConfig, fit_model
from training.transport import within_world_logistic
from training.worlds import simulate_mixture, world_of

REPO = Path(__file__).resolve().parents[1]


def per_landmark_models(shipped: LoadedModel) -> dict[int, object]:
    """One model per landmark on the shipped model's own mixture (`make shipped-model`)."""
    worlds = [int(w["world"]) for w in shipped.metadata["worlds"]]
    per_world = int(shipped.metadata["training_data"]["n_clients"]) // len(worlds)
    clients, sessions, records = simulate_mixture(worlds, per_world, int(shipped.metadata["seed"]))
    sidecar = {"simulated": True, "worlds": records}
    data = bench._labelled(clients, sessions, sidecar)
    owner = data.examples.row_client
    world = world_of(data.client_ids, sidecar)
    assert world is not None
    X, y, mark = data.examples.X, data.y, data.examples.landmark
    out = {}
    for k in TrainConfig().landmarks:
        rows = mark == k
        fitted = fit_model(
            X[rows], y[rows], owner[rows], world[owner][rows], TrainConfig(), bench._quiet
        )
        out[k] = fitted.model
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", type=int, default=8, help="score on worlds 1000..")
    parser.add_argument("--held-out-clients", type=int, default=8000, help="per held-out world")
    args = parser.parse_args()
    shipped = Registry(REPO / "models").load()
    pooled, per = shipped.model, per_landmark_models(shipped)
    print("world k | rule: AUC, then pooled / per-landmark / oracle minus it | slopes")
    for w in range(bench.HELD_OUT_FROM, bench.HELD_OUT_FROM + args.held_out):
        split = bench.held_out_world(w, args.held_out_clients, 1)
        X, y, mark = split.data.examples.X, split.data.y, split.data.examples.landmark
        train, test = split.train, split.test
        rules = fit_baselines(X[train], y[train]).scores(X[test])
        for k in TrainConfig().landmarks:
            at, fit_rows = mark[test] == k, train[mark[train] == k]
            oracle = within_world_logistic().fit(X[fit_rows], y[fit_rows])
            yk, Xk = y[test][at], X[test][at]
            scored = {
                "pooled": pooled.predict_proba(Xk)[:, 1],
                "per-landmark": per[k].predict_proba(Xk)[:, 1],  # type: ignore[attr-defined]
                "oracle": oracle.predict_proba(Xk)[:, 1],
            }
            parts = [f"{w} {k}"]
            for name, label in ((SRS_LAST, "SRS"), (WAI_LOGISTIC, "WAI")):
                score = rules[name][at]
                applies = np.isfinite(score)
                rule = at_threshold(yk, score, 0.0).auc
                gaps = " / ".join(
                    f"{auc(yk[applies], p[applies]) - rule:+.3f}" for p in scored.values()
                )
                parts.append(f"{label} {rule:.3f}: {gaps}")
            slopes = " / ".join(
                f"{calibration_slope_intercept(yk, p)[0]:.2f}" for p in scored.values()
            )
            parts.append(f"slopes {slopes}")
            print(" | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
