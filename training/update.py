"""`dropout-risk update`: a registered model updated on a clinic's labelled clients.

The statistics live in training/updating.py (the methods, the support rule, the closed
test, the artifact); this module runs them on a validated cohort and registers the result
as a new version, never promoted: it checks what the sample allows, runs the closed test
(or the method asked, which it refuses with exit status 2 when the sample cannot support
it), fits the update, scores every client out of fold for the honest figures, and writes
the artifact, report and model card as train does (train._write_artifact), with the
lineage (parent, method, fingerprint of the input files) and the test in the metadata.
Everything that can fail on the input fails before anything is staged.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from threadpoolctl import threadpool_limits

from training.artifact_schema import ModelMetadata
from training.baselines import fit_baselines
from training.comparison import evaluate_with_baselines
from training.evaluation import EvalData, evaluate, log_loss
from training.explanation.reference import reference_clients
from training.features import FEATURES
from training.figures import Evaluation
from training.input_shift import range_arrays
from training.model import estimator_kind, grouped_folds, linear_preprocessing
from training.profile_schema import ReferenceProfile
from training.registry import LoadedModel, Registry
from training.sample_size import check_sample_size
from training.specification import card_facts, linear_terms, predictors_record
from training.train import (
    Fitted,
    LabelledExamples,
    TrainConfig,
    TrainInputs,
    TrainResult,
    _instruments,
    _write_artifact,
    choose_thresholds,
    clients_profile,
    created_at,
    feature_range,
    fit_model,
    labelled_examples,
    selection_record,
    training_data_record,
)
from training.updating import (
    ALPHA,
    AUTO,
    EVENTS_PER_PARAMETER,
    FOLDS,
    INTERCEPT,
    INTERCEPT_SUPPORT,
    KEEP,
    METHODS,
    RECALIBRATE,
    REFIT,
    REVISE,
    SLOPE_SUPPORT,
    Candidate,
    ClosedTest,
    Groups,
    UpdatedModel,
    UpdateError,
    _Local,
    _logit,
    _outcome_clients,
    chain_of,
    closed_test,
    landmark_groups,
)
from training.vocabulary import Thresholds

Step = Callable[[str], None]
FloatArray = npt.NDArray[np.float64]

SUPPORT_RULE = (
    f"a landmark group gets its own intercept with at least {INTERCEPT_SUPPORT} clients who "
    f"dropped out and {INTERCEPT_SUPPORT} who completed, its own slope with "
    f"{SLOPE_SUPPORT} of each (landmarks short of it share a group with their neighbours); "
    f"intercept needs the pooled {INTERCEPT_SUPPORT}, recalibrate the pooled {SLOPE_SUPPORT}, "
    f"revise {EVENTS_PER_PARAMETER} clients of the rarer outcome per revision parameter, refit "
    "the Riley et al. 2020 minimum that train uses"
)
EVALUATION = (
    f"out of fold: {FOLDS}-fold cross-validation grouped by client, the chosen method "
    "re-estimated in each fold (refit: the training pipeline's own out-of-fold calibrated "
    "scores), so no figure comes from a client the update was fitted on; the method was "
    "chosen once on all clients"
)


@dataclass(frozen=True)
class LandmarkSample:
    """Clients reaching a landmark (one row each there) and the dropouts among them."""

    landmark: int
    clients: int
    dropouts: int


@dataclass(frozen=True)
class Sample:
    """The local labelled sample, in clients (one outcome each), and per landmark."""

    clients: int  # with at least one landmark row
    dropouts: int
    completers: int
    per_landmark: tuple[LandmarkSample, ...]  # in the model's landmark order


@dataclass(frozen=True)
class Allowance:
    """Whether the sample supports `method`: it needs at least `needed` of what the sample
    has `available` of, as `rule` says with the numbers."""

    method: str
    needed: int
    available: int
    rule: str

    @property
    def allowed(self) -> bool:
        return self.available >= self.needed

    def record(self) -> dict[str, Any]:
        """As metadata.json keeps it (with the verdict)."""
        return {**dataclasses.asdict(self), "allowed": self.allowed}


@dataclass(frozen=True)
class RefitCheck:
    """Refit against revise, when the closed test reached revise and the sample meets the
    sample-size minimum: refit wins only with a lower out-of-fold log loss."""

    revise_log_loss: float
    refit_log_loss: float
    chosen: bool


@dataclass(frozen=True)
class UpdateConfig:
    """What the analyst chose (CLI flags)."""

    method: str = AUTO
    clinic: str | None = None
    seed: int = 0
    n_boot: int = 200
    thresholds: tuple[float, float] | None = None  # (moderate, high); None: the parent's


@dataclass(frozen=True)
class Plan:
    """What the sample allows, what the closed test found, and what was chosen and why."""

    sample: Sample
    intercept_groups: Groups
    slope_groups: Groups
    allowances: tuple[Allowance, ...]
    test: ClosedTest
    method: str
    candidate: Candidate | None  # None: refit
    why: str


@dataclass(frozen=True)
class UpdateResult:
    """The registered version, its metadata (with the figures), the plan, and the parent's
    figures on the same clients (point estimates) for the before/after lines."""

    version: str
    folder: Path
    meta: ModelMetadata  # as written to metadata.json, typed
    plan: Plan
    parent_results: Evaluation
    refit_check: RefitCheck | None

    @property
    def metrics(self) -> Evaluation:
        return self.meta.metrics


@dataclass(frozen=True)
class _Rows:
    """The local landmark rows as the fits read them, with the parent's logit per row."""

    data: LabelledExamples
    X: FloatArray
    y: FloatArray
    client: npt.NDArray[np.int64]
    landmark: npt.NDArray[np.int64]
    y_client: FloatArray  # one outcome per client with a row
    parent_p: FloatArray

    @property
    def local(self) -> _Local:
        return _Local(_logit(self.parent_p), self.landmark, self.y, self.client)

    def eval_data(self, p: FloatArray) -> EvalData:
        """The rows with scores `p`, ordered by client as `dropout-risk evaluate` orders
        them (so the bootstrap draws the same clusters)."""
        order = self.data.examples.row_client.argsort(kind="stable")
        return self.data.eval_data(order, p[order])


def _rows(data: LabelledExamples, model: Any) -> _Rows:
    if data.y.size == 0:
        raise UpdateError("update: no client of the cohort reached the model's first landmark")
    X = data.examples.X
    client = data.examples.row_client.astype(np.int64)
    y = data.y.astype(np.float64)
    outcome = np.zeros(data.client_ids.size)
    outcome[client] = y
    return _Rows(
        data,
        X,
        y,
        client,
        data.examples.landmark.astype(np.int64),
        outcome[np.unique(client)],
        np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64),
    )


def _sample(rows: _Rows, landmarks: tuple[int, ...]) -> Sample:
    dropouts, completers = _outcome_clients(np.ones(rows.y.size, bool), rows.y, rows.client)
    per = tuple(
        LandmarkSample(k, int((rows.landmark == k).sum()), int(rows.y[rows.landmark == k].sum()))
        for k in landmarks
    )
    return Sample(dropouts + completers, dropouts, completers, per)


def _allowances(
    rows: _Rows, sample: Sample, groups: tuple[Groups, Groups], z: FloatArray
) -> tuple[Allowance, ...]:
    """What the sample supports; the revision's parameters are its landmark groups'
    intercepts and slopes and every design column that varies in the local data (a measure
    the clinic never collects adds none)."""
    rarer = min(sample.dropouts, sample.completers)
    counts = f"{sample.dropouts:,} dropouts and {sample.completers:,} completers"
    revision = len(groups[0]) + len(groups[1]) + int((np.ptp(z, axis=0) > 0).sum())
    size = check_sample_size(rows.X, rows.y_client, allow_small=True)
    return (
        Allowance(KEEP, 0, 0, "nothing is estimated"),
        Allowance(
            INTERCEPT,
            INTERCEPT_SUPPORT,
            rarer,
            f"at least {INTERCEPT_SUPPORT} clients of each outcome: {counts}",
        ),
        Allowance(
            RECALIBRATE,
            SLOPE_SUPPORT,
            rarer,
            f"at least {SLOPE_SUPPORT} clients of each outcome: {counts}",
        ),
        Allowance(
            REVISE,
            EVENTS_PER_PARAMETER * revision,
            rarer,
            f"{EVENTS_PER_PARAMETER} clients of the rarer outcome per parameter, "
            f"{EVENTS_PER_PARAMETER * revision:,} for {revision} parameters: {rarer:,}",
        ),
        Allowance(
            REFIT,
            size.minimum,
            size.development_clients,
            f"the sample-size minimum train uses (Riley et al. 2020): {size.minimum:,} clients "
            f"for {size.parameters} parameters at prevalence {size.prevalence:.3f}: "
            f"{size.development_clients:,}",
        ),
    )


def plan_update(rows: _Rows, landmarks: tuple[int, ...], method: str) -> Plan:
    """The sample, its groups and what it allows, the closed test over the allowed chain,
    and the method: the closed test's choice for auto, else the method asked (UpdateError
    when the sample cannot support it)."""
    if method not in (AUTO, *METHODS):
        raise UpdateError(
            f"--method: value {method!r} is not one of: {', '.join((AUTO, *METHODS))}"
        )
    sample = _sample(rows, landmarks)
    intercept_groups = landmark_groups(
        rows.landmark, rows.y, rows.client, landmarks, INTERCEPT_SUPPORT
    )
    slope_groups = landmark_groups(rows.landmark, rows.y, rows.client, landmarks, SLOPE_SUPPORT)
    z = linear_preprocessing().fit_transform(rows.X)
    allowances = _allowances(rows, sample, (intercept_groups, slope_groups), z)
    allowed = {a.method: a for a in allowances}
    if method != AUTO and not allowed[method].allowed:
        raise UpdateError(
            f"--method {method}: the local sample is too small for it: {allowed[method].rule}"
        )
    if method == AUTO and not allowed[INTERCEPT].allowed:
        raise UpdateError(
            "update: too few labelled clients to update anything: the least extensive update "
            f"needs {allowed[INTERCEPT].rule}"
        )
    top = [m for m in (KEEP, INTERCEPT, RECALIBRATE, REVISE) if allowed[m].allowed][-1]
    test = closed_test(rows.local, z, chain_of(intercept_groups, slope_groups, top))
    candidate: Candidate | None = test.chosen
    why = f"closed test (alpha {ALPHA}): {test.reason}"
    if method == REFIT:
        candidate = None
        why = f"refit asked for (the closed test would choose {test.chosen.label})"
    elif method != AUTO:
        candidate = chain_of(intercept_groups, slope_groups, method)[-1]
        why = f"{method} asked for (the closed test would choose {test.chosen.label})"
    chosen = REFIT if candidate is None else candidate.method
    return Plan(sample, intercept_groups, slope_groups, allowances, test, chosen, candidate, why)


def _refit(
    rows: _Rows, landmarks: tuple[int, ...], thresholds: Any, seed: int, step: Step
) -> Fitted:
    """The full training pipeline on the local data alone (every candidate, folds by
    client), with the parent's thresholds."""
    config = TrainConfig(landmarks=landmarks, seed=seed, thresholds=thresholds)
    return fit_model(rows.X, rows.y.astype(np.int8), rows.client, None, config, step)


def out_of_fold(model: UpdatedModel, rows: _Rows, seed: int) -> FloatArray:
    """Every row scored by the update re-estimated without its client (FOLDS folds grouped
    by client; keep estimates nothing, so it is the parent)."""
    if model.method == KEEP:
        return np.asarray(model.predict_proba(rows.X)[:, 1], dtype=np.float64)
    p = np.empty(rows.y.size)
    labels = rows.y.astype(np.int8)
    for train, test in grouped_folds(rows.X, labels, rows.client, FOLDS, seed):
        fold = clone(model).fit(rows.X[train], rows.y[train], rows.client[train])
        p[test] = fold.predict_proba(rows.X[test])[:, 1]
    return p


@dataclass(frozen=True)
class _Fitted:
    model: Any
    oof: FloatArray
    refit: Fitted | None
    refit_check: RefitCheck | None
    plan: Plan


def _fit(loaded: LoadedModel, rows: _Rows, plan: Plan, config: UpdateConfig, step: Step) -> _Fitted:
    landmarks = tuple(loaded.meta.landmarks)
    th = loaded.meta.thresholds
    if plan.candidate is None:
        fitted = _refit(rows, landmarks, (th.moderate, th.high), config.seed, step)
        return _Fitted(fitted.model, fitted.selection.calibrated_oof, fitted, None, plan)
    step(f"fitting: {plan.candidate.label}")
    model = UpdatedModel(
        FrozenEstimator(loaded.model),
        plan.candidate.method,
        plan.candidate.intercept_groups or None,
        plan.candidate.slope_groups or None,
    ).fit(rows.X, rows.y, rows.client)
    step(f"scoring every client out of fold ({FOLDS} folds)")
    oof = out_of_fold(model, rows, config.seed)
    refit_allowed = next(a.allowed for a in plan.allowances if a.method == REFIT)
    if config.method != AUTO or plan.method != REVISE or not refit_allowed:
        return _Fitted(model, oof, None, None, plan)
    fitted = _refit(rows, landmarks, (th.moderate, th.high), config.seed, step)
    check = RefitCheck(
        log_loss(rows.y, oof),
        log_loss(rows.y, fitted.selection.calibrated_oof),
        log_loss(rows.y, fitted.selection.calibrated_oof) < log_loss(rows.y, oof),
    )
    if not check.chosen:
        why = (
            f"{plan.why}; refit's out-of-fold log loss {check.refit_log_loss:.4f} is not "
            f"below revise's {check.revise_log_loss:.4f}"
        )
        return _Fitted(model, oof, None, check, dataclasses.replace(plan, why=why))
    why = (
        f"{plan.why}; the sample meets the sample-size minimum and refit's out-of-fold log "
        f"loss {check.refit_log_loss:.4f} is below revise's {check.revise_log_loss:.4f}"
    )
    refit_plan = dataclasses.replace(plan, method=REFIT, candidate=None, why=why)
    return _Fitted(fitted.model, fitted.selection.calibrated_oof, fitted, check, refit_plan)


def _point(results: Evaluation) -> dict[str, Any]:
    """Point estimates of the headline figures (the parent on the local clients)."""
    return {
        "auc": results.overall.auc.estimate,
        "brier": results.overall.brier.estimate,
        "per_landmark": [
            {
                "landmark": row.landmark,
                "auc": row.auc.estimate,
                "calibration_intercept": row.calibration_intercept.estimate,
                "calibration_slope": row.calibration_slope.estimate,
            }
            for row in results.per_landmark
        ],
    }


def _parameters(model: Any, landmarks: tuple[int, ...]) -> dict[str, Any]:
    """The update as estimated: per landmark logit p = intercept + slope x parent logit
    (+ the revision's linear form, listed term by term on the raw features)."""
    if not isinstance(model, UpdatedModel):
        return {}
    form = model.revision_form()
    revision = None
    if form is not None:
        terms = [t.model_dump() for t in linear_terms(form) if t.weight != 0.0]
        revision = {"intercept": form.offset, "terms": terms}
    return {
        "per_landmark": [
            {
                "landmark": k,
                "intercept": float(model.intercept_[k]),
                "slope": float(model.slope_[k]),
            }
            for k in landmarks
        ],
        "shrinkage": model.shrinkage_,
        "revision": revision,
    }


def _metadata(
    loaded: LoadedModel,
    inputs: TrainInputs,
    rows: _Rows,
    fitted: _Fitted,
    results: Evaluation,
    parent_results: Evaluation,
    thresholds: dict[str, Any],
    config: UpdateConfig,
) -> dict[str, Any]:
    parent, written = loaded.meta, loaded.metadata  # typed; the document as written
    plan, model = fitted.plan, fitted.model
    landmarks = tuple(loaded.meta.landmarks)
    everyone = np.arange(rows.y.size)
    meta: dict[str, Any] = {
        "created_at": created_at(),
        "sklearn_version": sklearn.__version__,
        "estimator": parent.estimator,
        "calibration": f"{parent.calibration}, then {plan.candidate.label} on local data"
        if plan.candidate is not None
        else "",
        "landmarks": list(landmarks),
        "features": list(FEATURES),
        "instruments": list(parent.instruments),
        "worlds": [],
        "training_data": training_data_record(inputs, rows.data, everyone, everyone[:0]),
        "selection": {"cv": EVALUATION, "candidates": []},
        "metrics": results.to_json(),
        "thresholds": thresholds,
        "reference": reference_clients(rows.X, rows.landmark, landmarks),
        "seed": config.seed,
    }
    if parent.feature_range is not None:  # the parent's ranges, copied as written
        meta["feature_range"] = written["feature_range"]
    if fitted.refit is not None:
        meta |= {
            "estimator": estimator_kind(model.base_),
            "calibration": fitted.refit.selection.best[1],
            "instruments": _instruments(inputs.cohort.sessions),
            "feature_range": feature_range(model),
            "selection": selection_record(fitted.refit, TrainConfig().folds, "all local clients"),
            "sample_size": (
                check_sample_size(rows.X, rows.y_client, allow_small=False).model_dump()
            ),
        }
        meta |= card_facts(model, rows.X, rows.X)
    else:
        if parent.specification is not None:  # the parent's, copied as written
            meta["specification"] = written["specification"]
        meta["predictors"] = predictors_record(rows.X, rows.X)
    meta["lineage"] = {
        "parent": loaded.version,
        "parent_sha256": loaded.meta.sha256,
        "method": plan.method,
        "clinic": config.clinic,
        "fingerprint": meta["training_data"]["fingerprint"],
    }
    meta["update"] = {
        "asked": config.method,
        "method": plan.method,
        "candidate": "refit" if plan.candidate is None else plan.candidate.label,
        "clinic": config.clinic,
        "sample": dataclasses.asdict(plan.sample),
        "support_rule": SUPPORT_RULE,
        "groups": {"intercept": plan.intercept_groups, "slope": plan.slope_groups},
        "allowed": [a.record() for a in plan.allowances],
        "closed_test": {
            "alpha": plan.test.alpha,
            "tests": [dataclasses.asdict(t) for t in plan.test.tests],
            "chosen": plan.test.chosen.label,
            "reason": plan.test.reason,
            "correction": "Rao-Scott (second order), clusters: clients",
        },
        "refit_check": None
        if fitted.refit_check is None
        else dataclasses.asdict(fitted.refit_check),
        "why": plan.why,
        "parameters": _parameters(model, landmarks),
        "evaluation": EVALUATION,
        "folds": FOLDS,
        "seed": config.seed,
        "parent_on_local_data": _point(parent_results),
    }
    return meta


F = TypeVar("F", bound=Callable[..., Any])


def one_thread(function: F) -> F:
    """`function` with BLAS and OpenMP on one thread: update and compare make thousands of
    small matrix products (Newton steps on a few dozen columns, bootstrap replicates), and
    threaded BLAS spins when the cores are busy: on the shared 2-core machine `update` on
    5,000 clients took 85 s with two threads and 7 s with one (training.evaluation._dot
    avoids BLAS for the same reason)."""

    @functools.wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1):
            return function(*args, **kwargs)

    return cast(F, limited)


@one_thread
def _local_profile(
    parent: LoadedModel, rows: _Rows, model: Any, cut: Thresholds, meta: dict[str, Any]
) -> ReferenceProfile:
    """The updated model's reference profile: the local clients it was updated on, each at
    its latest landmark, so monitoring at this clinic compares the clinic with itself at
    the time of the update (not with the parent's development data, which the update
    corrected for). The training range is the one the new metadata records."""
    low, high = range_arrays(meta.get("feature_range"))
    parameters = check_sample_size(rows.X, rows.y_client, allow_small=True).parameters
    everyone = np.ones(len(rows.data.client_ids), dtype=bool)
    landmarks = tuple(parent.meta.landmarks)
    return clients_profile(rows.data, everyone, model, cut, landmarks, (low, high), parameters)


def update(
    registry: Registry, parent: str, inputs: TrainInputs, config: UpdateConfig, step: Step
) -> UpdateResult:
    """Update `parent` ("champion": of config.clinic, else the network default) on the
    cohort and register the result as a new version (never promoted)."""
    loaded = registry.load(parent, config.clinic)
    landmarks = tuple(loaded.meta.landmarks)
    step("building landmark features")
    rows = _rows(labelled_examples(inputs.cohort, landmarks), loaded.model)
    step("testing the updates the sample allows (closed test)")
    plan = plan_update(rows, landmarks, config.method)
    fitted = _fit(loaded, rows, plan, config, step)
    th = loaded.meta.thresholds
    moderate, high = config.thresholds or (th.moderate, th.high)
    thresholds = choose_thresholds(
        fitted.oof, rows.y.astype(np.int8), TrainConfig(thresholds=(moderate, high))
    )
    rule = loaded.meta.thresholds.rule or "its rule"
    thresholds["rule"] = (
        "fixed at update time (--thresholds)"
        if config.thresholds
        else f"kept from the parent {loaded.version} ({rule})"
    )
    step("evaluating out of fold")
    cut = Thresholds(moderate, high)
    eval_data = rows.eval_data(fitted.oof)
    results = evaluate_with_baselines(
        eval_data, cut, fit_baselines(rows.X, rows.y), n_boot=config.n_boot, seed=config.seed
    )
    parent_results = evaluate(rows.eval_data(rows.parent_p), cut, n_boot=0)
    step("writing the artifact, report and model card")
    meta = _metadata(loaded, inputs, rows, fitted, results, parent_results, thresholds, config)
    meta["reference_profile"] = _local_profile(loaded, rows, fitted.model, cut, meta).model_dump(
        mode="json"
    )
    written: TrainResult = _write_artifact(
        registry,
        fitted.model,
        meta,
        eval_data,
        results,
        lambda staged, done: registry.register(staged, done, promote=False, first_champion=False),
    )
    return UpdateResult(
        written.version,
        written.folder,
        written.meta,
        fitted.plan,
        parent_results,
        fitted.refit_check,
    )


def cross_validated(loaded: LoadedModel, data: LabelledExamples, step: Step) -> FloatArray:
    """The scores `update` reported for `loaded` on the clients it was updated on: each
    from the update re-estimated without the client (compare uses them when a model's
    lineage fingerprint is the compared data's, so it never scores its own fit)."""
    update_meta = loaded.meta.update
    if update_meta is None:
        raise ValueError(f"model {loaded.version} is not a local update: it has no update record")
    rows = _rows(data, loaded.model)
    if isinstance(loaded.model, UpdatedModel):
        return out_of_fold(loaded.model, rows, update_meta.seed)
    th = loaded.meta.thresholds
    step(f"refitting {loaded.version} in folds (it was refitted on these data)")
    fitted = _refit(
        rows, tuple(loaded.meta.landmarks), (th.moderate, th.high), update_meta.seed, step
    )
    return fitted.selection.calibrated_oof
