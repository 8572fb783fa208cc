"""`dropout-risk compare`: a challenger against the champion on the same labelled clients.

Both models score the same landmark rows, so every difference is paired, and a client's
landmark rows (one outcome) form one cluster. The paired statistics cluster by client, not
by therapist: the question is which model serves this clinic's clients better, its
therapists included, as in the closed test of training.update. Each model's own figures
(calibration per landmark, levels, subgroups) come from training.evaluation as in every
report, with its intervals by therapist where the cohort names them: they say how a figure
would move at other therapists.

- Discrimination: the difference in AUC (challenger minus champion) with DeLong, DeLong &
  Clarke-Pearson's (1988) variance for paired ROC curves, extended to clustered rows as
  Obuchowski (1997) did: the placement values (the share of the other outcome's rows each
  row outranks) are summed per cluster before their covariance is taken. With one row per
  cluster it is DeLong's own estimator; with a client's landmark rows as one cluster, three
  copies of a row count as one (tests/training/test_compare.py holds both, and a
  hand-computed case).
- Brier score and log loss: the mean per-row difference, with a cluster-robust (sandwich)
  standard error.
- Calibration: the calibration error of each model is the log loss a logistic
  recalibration per landmark (logit p' = a_k + b_k logit p) would remove from it, in nats
  per example: 0 when recalibrating cannot help, the more the worse calibrated (it is the
  in-sample likelihood-ratio statistic of recalibration over 2n, the quantity the closed
  test of training.updating asks about). Its difference gets a percentile interval from
  N_BOOT paired cluster-bootstrap replicates (Poisson weights, as training.evaluation),
  each refitting both recalibrations; calibration slope and intercept per landmark come
  from training.evaluation for each model.
- Verdicts, separately on discrimination and on calibration: "better" when the 95%
  interval of the difference lies wholly on the challenger's side of zero, "worse" when
  wholly on the champion's, else "not distinguishable".

A model whose lineage fingerprint is that of the compared files was updated on these very
clients; it is then scored out of fold (training.update.cross_validated), as update
reported it, never on its own fit. Otherwise the compared clients should be new to both
models (a later period of the clinic).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from training.artifact_schema import (
    ComparisonRecord,
    GroupFigures,
    SubgroupRecord,
    VerdictRecord,
    verdict_line,
)
from training.baselines import SRS_LAST, WAI_LOGISTIC, at_flag_rate, at_threshold, fit_baselines
from training.comparison import evaluate_with_baselines
from training.contract import Cohort
from training.errors import DropoutRiskError
from training.evaluation import (
    EPS,
    EvalData,
    FloatArray,
    IntArray,
    brier,
    log_loss,
    net_benefit,
)
from training.figures import Evaluation, SubgroupFigures
from training.registry import LoadedModel, Registry, now
from training.train import LabelledExamples, _fingerprint, labelled_examples
from training.update import cross_validated, one_thread
from training.vocabulary import Thresholds

Step = Callable[[str], None]

Z_95 = 1.959963984540054
N_BOOT = 200
BETTER, WORSE, NOT_DISTINGUISHABLE = "better", "worse", "not distinguishable"
NEWTON_MAX_ITER = 50
NEWTON_TOL = 1e-10


class CompareError(DropoutRiskError):
    """The two models cannot be compared on these data."""


@dataclass(frozen=True)
class Difference:
    """Challenger minus champion, with a 95% interval (None where undefined)."""

    champion: float | None
    challenger: float | None
    estimate: float | None
    low: float | None
    high: float | None
    method: str


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def verdict(difference: Difference, lower_is_better: bool) -> str:
    """better / worse / not distinguishable from where the interval lies."""
    low, high = difference.low, difference.high
    if low is None or high is None:
        return NOT_DISTINGUISHABLE
    if lower_is_better:
        low, high = -high, -low
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return NOT_DISTINGUISHABLE


# ---- DeLong for paired, clustered ROC curves ----------------------------------------------


def _placements(y: FloatArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
    """DeLong's placement values: for each positive row the share of negative rows it
    outranks (ties 1/2), for each negative row the share of positive rows outranking it."""
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])
    below = np.searchsorted(neg, p[y == 1], "left")
    tied = np.searchsorted(neg, p[y == 1], "right") - below
    above = pos.size - np.searchsorted(pos, p[y == 0], "right")
    tied_neg = np.searchsorted(pos, p[y == 0], "right") - np.searchsorted(pos, p[y == 0], "left")
    return (below + 0.5 * tied) / neg.size, (above + 0.5 * tied_neg) / pos.size


@dataclass(frozen=True)
class PairedAUC:
    """Both AUCs and the covariance of their estimates."""

    auc: FloatArray  # (champion, challenger)
    covariance: FloatArray  # 2 x 2

    def difference(self) -> Difference:
        estimate = float(self.auc[1] - self.auc[0])
        variance = float(self.covariance[0, 0] + self.covariance[1, 1] - 2 * self.covariance[0, 1])
        half = Z_95 * math.sqrt(max(variance, 0.0))
        return Difference(
            float(self.auc[0]),
            float(self.auc[1]),
            estimate,
            estimate - half,
            estimate + half,
            "DeLong (paired), clustered (Obuchowski 1997)",
        )


def paired_auc(
    y: npt.ArrayLike, scores: Sequence[npt.ArrayLike], cluster: npt.ArrayLike | None = None
) -> PairedAUC:
    """AUC of each score on the same rows and the covariance of the estimates: DeLong et
    al. 1988, with placement values summed per cluster (Obuchowski 1997; None: each row
    its own cluster, DeLong's own estimator)."""
    labels = np.asarray(y, dtype=np.float64)
    n = labels.size
    groups = np.arange(n) if cluster is None else np.asarray(cluster)
    index = np.unique(groups, return_inverse=True)[1]
    m, k = float(labels.sum()), float(n - labels.sum())
    if m < 2 or k < 2:
        nan = np.full(len(scores), np.nan)
        return PairedAUC(nan, np.full((len(scores), len(scores)), np.nan))
    c = int(index.max()) + 1
    pos_c, neg_c = index[labels == 1], index[labels == 0]
    count_pos = np.bincount(pos_c, minlength=c).astype(np.float64)
    count_neg = np.bincount(neg_c, minlength=c).astype(np.float64)
    aucs, a_cols, b_cols = [], [], []
    for score in scores:
        v10, v01 = _placements(labels, np.asarray(score, dtype=np.float64))
        theta = float(v10.mean())
        aucs.append(theta)
        a_cols.append(np.bincount(pos_c, weights=v10, minlength=c) - count_pos * theta)
        b_cols.append(np.bincount(neg_c, weights=v01, minlength=c) - count_neg * theta)
    A, B = np.column_stack(a_cols), np.column_stack(b_cols)
    i10, i01 = int((count_pos > 0).sum()), int((count_neg > 0).sum())
    i_all = int(((count_pos + count_neg) > 0).sum())
    s10 = (A.T @ A) * i10 / (max(i10 - 1, 1) * m * m)
    s01 = (B.T @ B) * i01 / (max(i01 - 1, 1) * k * k)
    s11 = (A.T @ B) * i_all / (max(i_all - 1, 1) * m * k)
    return PairedAUC(np.array(aucs), s10 + s01 + s11 + s11.T)


# ---- losses and calibration ---------------------------------------------------------------


def _loss_difference(
    y: FloatArray, champion: FloatArray, challenger: FloatArray, cluster: IntArray, kind: str
) -> Difference:
    """Mean per-row difference of Brier or log loss, cluster-robust standard error."""
    measure = brier if kind == "brier" else log_loss
    if kind == "brier":
        rows = (challenger - y) ** 2 - (champion - y) ** 2
    else:
        rows = _row_loss(y, challenger) - _row_loss(y, champion)
    mean = float(rows.mean())
    per_cluster = np.bincount(cluster, weights=rows - mean)
    g = int((np.bincount(cluster) > 0).sum())
    variance = float((per_cluster**2).sum()) * g / max(g - 1, 1) / rows.size**2
    half = Z_95 * math.sqrt(variance)
    return Difference(
        measure(y, champion),
        measure(y, challenger),
        mean,
        mean - half,
        mean + half,
        "mean paired difference, cluster-robust standard error",
    )


def _row_loss(y: FloatArray, p: FloatArray) -> FloatArray:
    q = np.clip(p, EPS, 1 - EPS)
    out: FloatArray = -(y * np.log(q) + (1 - y) * np.log1p(-q))
    return out


def _recalibration_gain(
    y: FloatArray, x: FloatArray, w: FloatArray, start: tuple[float, float]
) -> tuple[float, tuple[float, float]]:
    """Weighted log loss removed by logit p' = a + b x (x the logit of p), by 2-D
    Newton-Raphson from `start`: (total gain, fitted (a, b))."""
    a, b = start
    base = float(np.dot(w, y * x - np.logaddexp(0.0, x)))
    for _ in range(NEWTON_MAX_ITER):
        eta = a + b * x
        mu = 1.0 / (1.0 + np.exp(-eta))
        r, v = w * (y - mu), w * mu * (1 - mu)
        g0, g1 = float(r.sum()), float(np.dot(r, x))
        h00, h01, h11 = float(v.sum()), float(np.dot(v, x)), float(np.dot(v * x, x))
        det = h00 * h11 - h01 * h01
        if det <= 1e-12 * max(h00 * h11, 1e-300):
            break
        da, db = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        a, b = a + da, b + db
        if max(abs(da), abs(db)) < NEWTON_TOL:
            break
    fitted = float(np.dot(w, y * (a + b * x) - np.logaddexp(0.0, a + b * x)))
    return max(fitted - base, 0.0), (a, b)


def calibration_error(
    y: FloatArray,
    p: FloatArray,
    landmark: npt.NDArray[np.int64],
    w: FloatArray | None = None,
    starts: dict[int, tuple[float, float]] | None = None,
) -> tuple[float, dict[int, tuple[float, float]]]:
    """The log loss a logistic recalibration per landmark would remove, per example (and
    the recalibrations, to warm-start bootstrap replicates)."""
    weights = np.ones(y.size) if w is None else w
    x = np.log(np.clip(p, EPS, 1 - EPS)) - np.log1p(-np.clip(p, EPS, 1 - EPS))
    gain, fitted = 0.0, {}
    for k in np.unique(landmark):
        rows = landmark == k
        value, fitted[int(k)] = _recalibration_gain(
            y[rows], x[rows], weights[rows], (starts or {}).get(int(k), (0.0, 1.0))
        )
        gain += value
    total = float(weights.sum())
    return (gain / total if total > 0 else float("nan")), fitted


def _calibration_difference(
    y: FloatArray,
    champion: FloatArray,
    challenger: FloatArray,
    landmark: npt.NDArray[np.int64],
    cluster: IntArray,
    seed: int,
) -> Difference:
    base_a, start_a = calibration_error(y, champion, landmark)
    base_b, start_b = calibration_error(y, challenger, landmark)
    rng = np.random.default_rng(seed)
    n_clusters = int(cluster.max()) + 1
    reps = np.empty(N_BOOT)
    for i in range(N_BOOT):
        w = rng.poisson(1.0, n_clusters).astype(np.float64)[cluster]
        reps[i] = (
            calibration_error(y, challenger, landmark, w, start_b)[0]
            - calibration_error(y, champion, landmark, w, start_a)[0]
        )
    finite = reps[np.isfinite(reps)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan)
    return Difference(
        base_a,
        base_b,
        base_b - base_a,
        _finite(float(low)),
        _finite(float(high)),
        f"calibration error (log loss removable by recalibrating per landmark), percentile "
        f"interval over {N_BOOT} paired cluster-bootstrap replicates",
    )


# ---- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One model's scores on the compared rows and how they were obtained."""

    version: str
    p: FloatArray
    out_of_fold: bool  # updated on these very clients: scored out of fold
    thresholds: Thresholds
    results: Evaluation  # training.evaluation (with baselines) on the rows


@dataclass(frozen=True)
class RuleColumn:
    """A clinic rule scored on the rows where it applies (the third and fourth columns)."""

    name: str
    label: str
    n: int
    auc: float | None
    brier: float | None
    log_loss: float | None
    sensitivity_at: dict[str, float | None]  # at the champion's flag rate of each level
    as_applied: dict[str, float | None] | None  # SRS < 36 as the clinic applies it


@dataclass(frozen=True)
class Comparison:
    """Everything compare reports and records."""

    champion: Scored
    challenger: Scored
    clinic: str | None
    fingerprint: str
    n_clients: int
    n_examples: int
    prevalence: float
    unit: str  # the cluster: therapist or client
    clusters: int
    auc: Difference
    auc_per_landmark: dict[int, Difference]
    brier: Difference
    log_loss: Difference
    calibration: Difference
    discrimination_verdict: str
    calibration_verdict: str
    net_benefit: dict[str, dict[float, float]]  # model -> threshold -> net benefit
    rules: tuple[RuleColumn, ...]
    subgroups: tuple[SubgroupRecord, ...]
    eval_data: EvalData  # the rows with the champion's scores (for the plots)

    def verdict_line(self) -> str:
        """The one line at the top of the output and of the page."""
        return verdict_line(
            self.challenger.version,
            self.champion.version,
            self.clinic,
            self.discrimination_verdict,
            self.calibration_verdict,
        )

    def record(self) -> ComparisonRecord:
        """What the registry keeps: the challenger's last comparison."""

        def aspect(word: str, d: Difference) -> VerdictRecord:
            return VerdictRecord(verdict=word, estimate=d.estimate, ci95=[d.low, d.high])  # type: ignore[arg-type]

        return ComparisonRecord(
            challenger=self.challenger.version,
            champion=self.champion.version,
            clinic=self.clinic,
            compared_at=now(),
            fingerprint=self.fingerprint,
            n_clients=self.n_clients,
            discrimination=aspect(self.discrimination_verdict, self.auc),
            calibration=aspect(self.calibration_verdict, self.calibration),
            subgroups=list(self.subgroups),
        )


def _rules(data: EvalData, X: FloatArray, rates: dict[str, float]) -> tuple[RuleColumn, ...]:
    """ "last SRS < 36" and the alliance-only logistic (training.baselines), fitted and
    scored on the compared rows as `dropout-risk evaluate` does."""
    y = np.asarray(data.y, dtype=np.float64)
    scores = fit_baselines(X, y).scores(X)
    labels = {SRS_LAST: "last SRS < 36", WAI_LOGISTIC: "logistic on mean WAI-SR"}
    out = []
    for name in (SRS_LAST, WAI_LOGISTIC):
        score = scores[name]
        applies = np.isfinite(score)
        ys, ss = y[applies], score[applies]
        n = int(applies.sum())
        both = n > 0 and 0 < ys.sum() < n
        probability = name == WAI_LOGISTIC and both
        as_applied = None
        if name == SRS_LAST and both:
            rule = at_threshold(ys, ss, 0.0)
            as_applied = {
                "flag_rate": _finite(rule.flag_rate),
                "sensitivity": _finite(rule.sensitivity),
            }
        out.append(
            RuleColumn(
                name,
                labels[name],
                n,
                _finite(at_flag_rate(ys, ss, 0.0).auc) if both else None,
                _finite(brier(ys, ss)) if probability else None,
                _finite(log_loss(ys, ss)) if probability else None,
                {
                    level: _finite(at_flag_rate(ys, ss, rate).sensitivity) if both else None
                    for level, rate in rates.items()
                },
                as_applied,
            )
        )
    return tuple(out)


def _figures(row: SubgroupFigures | None) -> GroupFigures:
    if row is None:
        return GroupFigures()
    return GroupFigures(auc=row.auc.estimate, observed_expected=row.observed_expected.estimate)


def _subgroups(a: Evaluation, b: Evaluation) -> tuple[SubgroupRecord, ...]:
    """Each subgroup's AUC and observed/expected for both models (point estimates)."""
    out = []
    for factor, rows in a.subgroups.items():
        theirs = {r.group: r for r in b.subgroups.get(factor, ())}
        for row in rows:
            out.append(
                SubgroupRecord(
                    factor=factor,
                    group=row.group,
                    n_clients=row.n_clients,
                    champion=_figures(row),
                    challenger=_figures(theirs.get(row.group)),
                )
            )
    return tuple(out)


def _scores(
    loaded: LoadedModel, data: LabelledExamples, fingerprint: str, step: Step
) -> tuple[FloatArray, bool]:
    """The model's scores on the rows; out of fold when it was updated on these files."""
    lineage, update = loaded.meta.lineage, loaded.meta.update
    if lineage is not None and lineage.fingerprint == fingerprint and update is not None:
        step(f"scoring {loaded.version} out of fold (it was updated on these clients)")
        return cross_validated(loaded, data, step), True
    step(f"scoring with {loaded.version}")
    return np.asarray(loaded.probability(data.examples.X), dtype=np.float64), False


@one_thread
def compare(
    registry: Registry,
    champion: str,
    challenger: str,
    cohort: Cohort,
    files: tuple[Path, Path],
    clinic: str | None,
    step: Step,
    seed: int = 0,
) -> Comparison:
    """Score both models on the cohort and compare them (nothing is recorded here)."""
    first = registry.load(champion, clinic)
    second = registry.load(challenger)
    if first.meta.landmarks != second.meta.landmarks:
        raise CompareError(
            f"--challenger: model {second.version} predicts at landmarks "
            f"{second.meta.landmarks}, the champion {first.version} at "
            f"{first.meta.landmarks}: compare needs the same landmarks"
        )
    step("building landmark features")
    data = labelled_examples(cohort, tuple(first.meta.landmarks))
    fingerprint = _fingerprint(list(files))
    order = data.examples.row_client.argsort(kind="stable")
    X = data.examples.X[order]
    scored = []
    for loaded in (first, second):
        p, oof = _scores(loaded, data, fingerprint, step)
        rows = data.eval_data(order, p[order])
        cut = loaded.meta.thresholds.cutoffs
        results = evaluate_with_baselines(
            rows, cut, fit_baselines(X, rows.y), n_boot=N_BOOT, seed=seed
        )
        scored.append(Scored(loaded.version, p[order], oof, cut, results))
    a, b = scored
    step("comparing")
    base = data.eval_data(order, a.p)
    y = np.asarray(base.y, dtype=np.float64)
    cluster = np.unique(np.asarray(base.client).astype(str), return_inverse=True)[1]
    unit = "client"
    landmark = np.asarray(base.landmark, dtype=np.int64)
    auc = paired_auc(y, [a.p, b.p], cluster).difference()
    per_landmark = {
        int(k): paired_auc(
            y[landmark == k], [a.p[landmark == k], b.p[landmark == k]], cluster[landmark == k]
        ).difference()
        for k in np.unique(landmark)
    }
    calibration = _calibration_difference(y, a.p, b.p, landmark, cluster, seed)
    cuts = sorted(
        {a.thresholds.moderate, a.thresholds.high, b.thresholds.moderate, b.thresholds.high}
    )
    benefit = {
        name: dict(zip(cuts, net_benefit(y, p, cuts).tolist(), strict=True))
        for name, p in (("champion", a.p), ("challenger", b.p), ("flag everyone", np.ones_like(y)))
    }
    rates = a.results.overall.flag_rates()
    return Comparison(
        champion=a,
        challenger=b,
        clinic=clinic,
        fingerprint=fingerprint,
        n_clients=a.results.n_clients,
        n_examples=int(y.size),
        prevalence=float(y.mean()),
        unit=unit,
        clusters=int(cluster.max()) + 1,
        auc=auc,
        auc_per_landmark=per_landmark,
        brier=_loss_difference(y, a.p, b.p, cluster, "brier"),
        log_loss=_loss_difference(y, a.p, b.p, cluster, "log_loss"),
        calibration=calibration,
        discrimination_verdict=verdict(auc, lower_is_better=False),
        calibration_verdict=verdict(calibration, lower_is_better=True),
        net_benefit=benefit,
        rules=_rules(base, X, rates),
        subgroups=_subgroups(a.results, b.results),
        eval_data=base,
    )
