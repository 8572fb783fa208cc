"""Model selection, calibration, thresholds and the artifact, from a validated cohort.

Clients are split once into a development part and a held-out test part that selection
never sees. On the development part every candidate gets out-of-fold scores from 5-fold
cross-validation grouped by client (all landmarks of a client in one fold); each
calibration method is fitted and scored on those scores by cross-fitting over the same
folds; the pair with the lowest Brier score wins (log loss breaks ties, AUC is reported).
Thresholds come from the calibrated out-of-fold probabilities. The held-out test part
gives the reported metrics with cluster-bootstrap intervals. No resampling: class balance
is left as it is, so probabilities stay calibrated (Bennemann et al. 2022; docs/literature.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from training.artifact_schema import ModelMetadata
from training.baselines import fit_baselines
from training.comparison import evaluate_with_baselines
from training.contract import MEASURE_COLUMNS, Cohort
from training.evaluation import EvalData, auc, brier, level_stats, log_loss
from training.explanation.reference import reference_clients
from training.features import (
    FEATURES,
    GENDER_FEMALE,
    GENDER_MALE,
    GENDER_OTHER,
    Examples,
    SessionGrid,
    grid_from_tables,
    landmark_examples,
    latest_landmark_features,
)
from training.figures import Evaluation
from training.model import (
    CALIBRATION_METHODS,
    CalibratedModel,
    apply_calibrator,
    candidates,
    estimator_kind,
    feature_clip,
    fit_calibrator,
    grouped_folds,
    transport_candidates,
)
from training.model_card import render_model_card
from training.monitoring_profile import build_reference_profile
from training.profile_schema import ReferenceProfile
from training.registry import METADATA_FILE, MODEL_FILE, PromotionNote, Registry, sha256_of
from training.report import render_report
from training.sample_size import check_sample_size
from training.specification import card_facts
from training.strict_json import dumps, to_strict
from training.transport import KNOWN_SIGNS, SIGNS, STRENGTHS, unstable_features, world_coefficients
from training.vocabulary import DEFAULT_LANDMARKS, Thresholds
from training.worlds import world_of

Step = Callable[[str], None]
_GENDER_NAMES = {GENDER_FEMALE: "female", GENDER_MALE: "male", GENDER_OTHER: "other"}


@dataclass(frozen=True)
class TrainConfig:
    """Choices an analyst can make at train time (CLI flags)."""

    landmarks: tuple[int, ...] = DEFAULT_LANDMARKS
    seed: int = 0
    test_fraction: float = 0.2
    folds: int = 5
    flag_rates: tuple[float, float] = (0.40, 0.15)  # share flagged moderate-or-high, high
    thresholds: tuple[float, float] | None = None  # fixed (moderate, high) instead
    n_boot: int = 200
    allow_small: bool = False  # train below the sample-size minimum (recorded in metadata)


@dataclass
class LabelledExamples:
    """Landmark examples of a labelled cohort with what evaluation needs per row."""

    examples: Examples
    y: npt.NDArray[np.int8]
    client_ids: npt.NDArray[np.object_]
    grid: SessionGrid
    therapist_volume: npt.NDArray[np.int64]
    therapist: npt.NDArray[np.object_] | None = None  # per client, "" when unknown

    def eval_data(self, rows: npt.NDArray[np.int64], p: npt.NDArray[np.float64]) -> EvalData:
        owner = self.examples.row_client[rows]
        gender = np.array(
            [_GENDER_NAMES.get(int(g), "unknown") for g in self.grid.gender], dtype=object
        )
        return EvalData(
            y=self.y[rows],
            p=p,
            client=self.client_ids[owner],
            landmark=self.examples.landmark[rows],
            gender=gender[owner],
            age=self.grid.age[owner],
            therapist_volume=self.therapist_volume[owner],
            therapist=None if self.therapist is None else self.therapist[owner],
            features=self.examples.X[rows],
        )


def labelled_examples(cohort: Cohort, landmarks: tuple[int, ...]) -> LabelledExamples:
    """Build landmark examples labelled with each client's episode outcome."""
    ids, grid = grid_from_tables(cohort.sessions, cohort.clients, max(landmarks))
    clients = cohort.clients.set_index("client_id").reindex(ids)
    label = clients["dropout"].to_numpy(dtype=np.float64)
    examples = landmark_examples(grid, landmarks)
    volume = np.zeros(len(ids), dtype=np.int64)
    therapist = None
    if "therapist_id" in clients.columns:
        ther = cohort.clients["therapist_id"]
        counts = ther.map(ther.value_counts())
        per_client = pd.Series(counts.to_numpy(), index=cohort.clients["client_id"])
        volume = per_client.reindex(ids).fillna(0).to_numpy(dtype=np.int64)
        therapist = clients["therapist_id"].astype("string").fillna("").to_numpy(dtype=object)
    y = label[examples.row_client].astype(np.int8)
    return LabelledExamples(examples, y, ids, grid, volume, therapist)


def _split_clients(
    y_client: npt.NDArray[np.float64], fraction: float, seed: int
) -> npt.NDArray[np.bool_]:
    """Stratified random choice of held-out test clients."""
    rng = np.random.default_rng(seed)
    test = np.zeros(y_client.shape[0], dtype=bool)
    for value in (0.0, 1.0):
        idx = np.flatnonzero(y_client == value)
        test[rng.choice(idx, size=round(fraction * idx.size), replace=False)] = True
    return test


@dataclass
class Selection:
    """What model selection compared and chose."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    best: tuple[str, str] = ("", "")
    oof: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    calibrated_oof: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


def _cross_fit_calibration(
    method: str, oof: npt.NDArray[np.float64], y: npt.NDArray[np.int8], folds: list[tuple[Any, Any]]
) -> npt.NDArray[np.float64]:
    out = np.empty_like(oof)
    for train_idx, test_idx in folds:
        calibrator = fit_calibrator(method, oof[train_idx], y[train_idx])
        out[test_idx] = apply_calibrator(calibrator, oof[test_idx])
    return out


def selection_key(brier_score: float, loss: float, method: str) -> tuple[float, float, int, float]:
    """The order in which candidates win: lower is better.

    Brier differences under 1e-4 and log-loss differences under 1e-3 are noise at these
    sample sizes, so within them the simpler calibration wins (sigmoid, two parameters, before
    isotonic, a step function with as many steps as the data allow): it carries over to a
    world the model was not trained on, where isotonic steps fitted to the mixture do not
    (bench/transport.py). Only then does the unrounded log loss decide."""
    return (round(brier_score, 4), round(loss, 3), CALIBRATION_METHODS.index(method), loss)


def select_model(
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.int8],
    groups: npt.NDArray[np.int64],
    pool: dict[str, Any],
    config: TrainConfig,
    step: Step,
) -> Selection:
    """Grouped CV of every candidate x calibration method; lowest Brier score wins."""
    folds = grouped_folds(X, y, groups, config.folds, config.seed)
    sel = Selection()
    best_key: tuple[float, float, int, float] = (np.inf, np.inf, 0, np.inf)
    for name, estimator in pool.items():
        step(f"cross-validating {name}")
        oof = cross_val_predict(clone(estimator), X, y, cv=folds, method="predict_proba")[:, 1]
        sel.oof[name] = oof
        for method in CALIBRATION_METHODS:
            p = _cross_fit_calibration(method, oof, y, folds)
            row: dict[str, Any] = {
                "estimator": name,
                "calibration": method,
                "brier": brier(y, p),
                "log_loss": log_loss(y, p),
                "auc": auc(y, p),
            }
            sel.rows.append(row)
            key = selection_key(row["brier"], row["log_loss"], method)
            if key < best_key:
                best_key, sel.best, sel.calibrated_oof = key, (name, method), p
    return sel


def choose_thresholds(
    p: npt.NDArray[np.float64], y: npt.NDArray[np.int8], config: TrainConfig
) -> dict[str, Any]:
    """Risk-level cut-offs from validation probabilities, with what they flag."""
    if config.thresholds is not None:
        moderate, high = config.thresholds
        rule = "fixed at train time"
    else:
        mod_rate, high_rate = config.flag_rates
        moderate = float(np.quantile(p, 1 - mod_rate))
        high = float(np.quantile(p, 1 - high_rate))
        rule = (
            f"quantiles flagging {mod_rate:.0%} (moderate or high) and {high_rate:.0%} "
            "(high) of validation examples"
        )
    moderate, high = round(moderate, 3), round(high, 3)
    return {
        "moderate": moderate,
        "high": high,
        "rule": rule,
        "validation": {"moderate": level_stats(y, p, moderate), "high": level_stats(y, p, high)},
    }


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def _instruments(sessions: pd.DataFrame) -> list[str]:
    seen = [c for c in MEASURE_COLUMNS if c in sessions.columns and sessions[c].notna().any()]
    names = {"wai": "wai_sr", "srs": "srs", "ors": "ors", "phq9": "phq9"}
    return sorted({names[c.split("_")[0]] for c in seen})


@dataclass(frozen=True)
class Fitted:
    """A calibrated model, how it was chosen, its thresholds and the features it left out."""

    model: CalibratedModel
    selection: Selection
    thresholds: dict[str, Any]
    excluded: tuple[str, ...]  # left out because their effect flips between worlds
    folds_hold_out: str  # what a cross-validation fold holds out: "clients" or "worlds"


def fit_model(
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.int8],
    clients: npt.NDArray[np.int64],
    worlds: npt.NDArray[np.int64] | None,
    config: TrainConfig,
    step: Step,
) -> Fitted:
    """Select, fit and calibrate a model on development rows and choose its thresholds.

    One cohort: every candidate, folds grouped by client. A mixture of worlds (`worlds`
    gives each row's world): sign-constrained logistic models without the features whose
    effect flips between worlds, folds holding out whole worlds (training/transport.py).
    """
    excluded: tuple[int, ...] = ()
    if worlds is None:
        pool, groups = candidates(config.seed), clients
    else:
        step("measuring every feature's effect within each world")
        excluded = unstable_features(world_coefficients(X, y, worlds))
        pool, groups = transport_candidates(SIGNS, excluded, STRENGTHS), worlds
    sel = select_model(X, y, groups, pool, config, step)
    name, method = sel.best
    step(f"fitting {name} with {method} calibration on all development clients")
    base = clone(pool[name]).fit(X, y)
    calibrator = fit_calibrator(method, sel.oof[name], y)
    model = CalibratedModel(pool[name], method, config.folds, config.seed)
    model.with_parts(base, calibrator)
    return Fitted(
        model=model,
        selection=sel,
        thresholds=choose_thresholds(sel.calibrated_oof, y, config),
        excluded=tuple(FEATURES[j] for j in excluded),
        folds_hold_out="clients" if worlds is None else "worlds",
    )


def feature_range(model: CalibratedModel) -> dict[str, list[float] | None]:
    """The clip the model applies to each feature, as recorded in metadata.json."""
    low, high = feature_clip(model, len(FEATURES))
    return {
        name: [float(lo), float(hi)] if np.isfinite(lo) and np.isfinite(hi) else None
        for name, lo, hi in zip(FEATURES, low, high, strict=True)
    }


def worlds_trained_on(simulator: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The simulated worlds of the training cohort, parameters as drawn (none if real)."""
    if simulator is None:
        return []
    records = simulator.get("worlds")
    if isinstance(records, list):
        return records
    return [{"world": simulator.get("world"), "params": simulator.get("params")}]


def created_at() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible builds: `make shipped-model`)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class TrainInputs:
    """A validated cohort and where it came from."""

    cohort: Cohort
    sessions_path: Path
    clients_path: Path
    simulator: dict[str, Any] | None


@dataclass(frozen=True)
class TrainResult:
    version: str
    folder: Path
    champion: bool
    meta: ModelMetadata  # as written to metadata.json, typed

    @property
    def metrics(self) -> Evaluation:
        return self.meta.metrics


def train(
    inputs: TrainInputs,
    registry: Registry,
    config: TrainConfig,
    promote: bool,
    step: Step,
    actor: str = "unrecorded",
) -> TrainResult:
    """Select, fit, evaluate and register a model; returns the new version.

    `promote` makes it the network default without a comparison: train --promote is the
    network-scope bootstrap path (docs/updating.md), recorded in the registry's history
    under `actor` when it replaces another champion. A clinic's champion changes only by
    `models promote --clinic`, under the promotion rule (training/promotion.py)."""
    step("building landmark features")
    data = labelled_examples(inputs.cohort, config.landmarks)
    owners = data.examples.row_client
    y_client = (
        inputs.cohort.clients.set_index("client_id")
        .reindex(data.client_ids)["dropout"]
        .to_numpy(dtype=np.float64)
    )
    test_client = _split_clients(y_client, config.test_fraction, config.seed)
    dev = np.flatnonzero(~test_client[owners])
    test = np.flatnonzero(test_client[owners])
    X = data.examples.X
    size = check_sample_size(X[dev], y_client[np.unique(owners[dev])], config.allow_small)
    world_client = world_of(data.client_ids, inputs.simulator)
    worlds = None if world_client is None else world_client[owners[dev]]
    fitted = fit_model(X[dev], data.y[dev], owners[dev], worlds, config, step)
    model, thresholds = fitted.model, fitted.thresholds
    step("evaluating on held-out clients")
    p_test = model.predict_proba(X[test])[:, 1]
    eval_data = data.eval_data(test, p_test)
    results = evaluate_with_baselines(
        eval_data,
        Thresholds(thresholds["moderate"], thresholds["high"]),
        fit_baselines(X[dev], data.y[dev]),
        n_boot=config.n_boot,
        seed=config.seed,
    )
    step("writing the artifact, report and model card")
    meta = _metadata(inputs, data, dev, test, fitted, results, config)
    meta["sample_size"] = size.model_dump()
    meta["reference_profile"] = development_profile(
        data, ~test_client, fitted, config, size.parameters
    ).model_dump(mode="json")
    meta |= card_facts(model, X[dev], X[test])
    note = PromotionNote(actor=actor, path="train --promote (network bootstrap)")
    return _write_artifact(
        registry,
        model,
        meta,
        eval_data,
        results,
        lambda staged, written: registry.register(staged, written, promote, note),
    )


def development_profile(
    data: LabelledExamples,
    development: npt.NDArray[np.bool_],
    fitted: Fitted,
    config: TrainConfig,
    parameters: int,
) -> ReferenceProfile:
    """The reference profile monitoring compares clinics with (training/monitoring.py):
    the development clients (`development`, per client of the grid), each once at the
    latest landmark it reached, scored by the fitted model."""
    cut = Thresholds(fitted.thresholds["moderate"], fitted.thresholds["high"])
    training_range = feature_clip(fitted.model, len(FEATURES))
    return clients_profile(
        data, development, fitted.model, cut, config.landmarks, training_range, parameters
    )


def clients_profile(
    data: LabelledExamples,
    chosen: npt.NDArray[np.bool_],
    model: Any,
    thresholds: Thresholds,
    landmarks: tuple[int, ...],
    training_range: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    parameters: int,
) -> ReferenceProfile:
    """A reference profile of the `chosen` clients of the grid, each once at the latest
    landmark it reached, scored by `model` (anything with predict_proba): a training run's
    development clients, or the local clients a model was updated on (training.update)."""
    X, landmark = latest_landmark_features(data.grid, landmarks)
    rows = np.flatnonzero(chosen & (landmark > 0))
    return build_reference_profile(
        X[rows],
        landmark[rows],
        model.predict_proba(X[rows])[:, 1],
        thresholds,
        *training_range,
        parameters,
    )


_grouping = {"clients": "client", "worlds": "world (folds hold out whole worlds)"}


def training_data_record(
    inputs: TrainInputs,
    data: LabelledExamples,
    dev: npt.NDArray[np.int64],
    test: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """metadata["training_data"]: the input files, their fingerprint and the sample's size
    (train, and update on a clinic's data, where `test` is empty: figures are out of fold)."""
    cohort = inputs.cohort
    return {
        "sessions_file": inputs.sessions_path.name,
        "clients_file": inputs.clients_path.name,
        "fingerprint": _fingerprint([inputs.sessions_path, inputs.clients_path]),
        "n_clients": len(cohort.clients),
        "n_sessions": len(cohort.sessions),
        "n_examples": int(data.y.shape[0]),
        "dropout_rate": float(cohort.clients["dropout"].mean()),
        "development_clients": int(np.unique(data.examples.row_client[dev]).size),
        "test_clients": int(np.unique(data.examples.row_client[test]).size),
        "simulated": inputs.simulator is not None,
        "simulator": inputs.simulator,
    }


def selection_record(fitted: Fitted, folds: int, on: str = "development clients") -> dict[str, Any]:
    """metadata["selection"]: what fit_model compared and chose, and how."""
    sel = fitted.selection
    name, method = sel.best
    return {
        "cv": f"{folds}-fold cross-validation grouped by "
        f"{_grouping[fitted.folds_hold_out]} on {on}; calibration "
        "cross-fitted on out-of-fold scores; "
        "lowest Brier wins",
        "folds_hold_out": fitted.folds_hold_out,
        "excluded_features": list(fitted.excluded),
        "known_signs": KNOWN_SIGNS if fitted.folds_hold_out == "worlds" else {},
        "candidates": sel.rows,
        "chosen": {"estimator": name, "calibration": method},
    }


def _metadata(
    inputs: TrainInputs,
    data: LabelledExamples,
    dev: npt.NDArray[np.int64],
    test: npt.NDArray[np.int64],
    fitted: Fitted,
    results: Evaluation,
    config: TrainConfig,
) -> dict[str, Any]:
    return {
        "created_at": created_at(),
        "sklearn_version": sklearn.__version__,
        "estimator": estimator_kind(fitted.model.base_),
        "calibration": fitted.selection.best[1],
        "landmarks": list(config.landmarks),
        "features": list(FEATURES),
        "instruments": _instruments(inputs.cohort.sessions),
        "feature_range": feature_range(fitted.model),
        "worlds": worlds_trained_on(inputs.simulator),
        "training_data": training_data_record(inputs, data, dev, test),
        "selection": selection_record(fitted, config.folds),
        "metrics": results.to_json(),
        "thresholds": fitted.thresholds,
        "reference": reference_clients(
            data.examples.X[dev], data.examples.landmark[dev], config.landmarks
        ),
        "seed": config.seed,
    }


# Registers a complete staged folder with its metadata; True if it became the champion.
Register = Callable[[Path, dict[str, Any]], bool]


def _write_artifact(
    registry: Registry,
    model: Any,
    meta: dict[str, Any],
    eval_data: EvalData,
    results: Evaluation,
    register: Register,
) -> TrainResult:
    """Stage the model, metadata, report and card, then hand the complete folder to
    `register` (a call of Registry.register: train --promote names the champion, update
    never does); the version is the date and the model file's hash."""
    registry.root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=registry.root))
    try:
        model_path = staged / MODEL_FILE
        joblib.dump(model, model_path, compress=3)
        sha = sha256_of(model_path)
        version = f"{meta['created_at'][:10].replace('-', '')}-{sha[:8]}"
        meta = {"version": version, "created_at": meta.pop("created_at"), "sha256": sha, **meta}
        meta = to_strict(meta)
        text = dumps(meta) + "\n"
        typed = ModelMetadata.model_validate_json(text)  # as every reader will load it
        (staged / METADATA_FILE).write_text(text)
        (staged / "report.html").write_text(render_report(eval_data, results, typed))
        (staged / "model_card.md").write_text(render_model_card(typed))
        champion = register(staged, meta)
    finally:
        if staged.exists():
            shutil.rmtree(staged)
    return TrainResult(version, registry.root / version, champion, typed)
