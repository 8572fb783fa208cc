"""Local updating of a registered model, chosen by closed testing (Vergouwe et al. 2017).

No default is calibrated everywhere: a clinic's dropout rate, instruments and case mix move
the intercept, sometimes the slope, sometimes the effects themselves. So a clinic with
labelled clients can update a model by the least extensive method its data ask for. The
methods, nested from least to most extensive, act on L, the logit of the parent model's
published probability at a row (landmark k):

- keep: logit p = L (nothing estimated);
- intercept (recalibration in the large): logit p = a_g + L;
- recalibrate (logistic recalibration): logit p = a_g + b_h L;
- revise: logit p = a_g + b_h L + s * delta . z, where z is the linear candidate's
  preprocessing of the features (clip, median imputation with missingness indicators,
  scaling; fitted on the local data), delta is re-estimated by maximum likelihood, and
  s is the heuristic shrinkage factor (van Houwelingen & Le Cessie 1990; Steyerberg 2019,
  ch. 20): s = (X2 - df) / X2 from the test of revise against recalibrate. delta = 0 is the
  (recalibrated) parent, so the revision is shrunk towards the original; a and b are then
  re-estimated with the shrunk terms as an offset;
- refit: the full training pipeline (training.train.fit_model) on the local data alone.

"Where the data support it": g and h index groups of landmarks. Landmarks are grouped in
order, a group closing once it holds at least INTERCEPT_SUPPORT clients who dropped out and
as many who completed (SLOPE_SUPPORT for slopes); a short last group joins the one before.
So every landmark gets its own intercept once it has 50 dropouts and 50 completers, its own
slope at 100 of each, and fewer share one with their neighbours (all landmarks pooled,
at the least). The methods themselves need: intercept the pooled 50, recalibrate the pooled
100, revise EVENTS_PER_PARAMETER (10; Peduzzi et al. 1996) dropouts and completers per
parameter of the revision, refit the minimum of the sample-size rule that train uses
(Riley et al. 2020, training/sample_size.py). Counts are of clients, never landmark rows.

The closed test (`--method auto`): the candidate updates form one chain of nested models
(keep, pooled intercept, intercept per landmark group, pooled slope, slope per landmark
group, revise; a step whose grouping is a single group is the step before and is left out;
the chain ends at the most extensive method the sample allows). Each hypothesis "this
candidate is enough" is tested against the most extensive candidate by a likelihood-ratio
test at ALPHA, in order from the least extensive, and the first one not rejected is chosen.
The hypotheses are nested, so every intersection of them is one of them, and this is the
closed testing procedure (Marcus, Peritz & Gabriel 1976): the chance of choosing anything
more extensive than needed stays at ALPHA however long the chain.

A client gives one row per landmark with one outcome, so rows are not independent and the
plain likelihood-ratio statistic overstates the evidence (about threefold with three
landmarks). Each statistic is therefore referred to the distribution it actually has under
the null, a weighted sum of chi-squares whose weights are the eigenvalues of the design
effect matrix (model-based against client-cluster-robust covariance of the tested terms),
by the second-order Rao-Scott correction (Rao & Scott 1984; Lumley & Scott 2014): X2 =
LR / mean weight on the Satterthwaite degrees of freedom. The cluster is the client: the
question is whether the model fits this clinic, whose therapists are part of it.

Refit is not nested in the chain (it re-selects the estimator), so no likelihood-ratio
test applies to it: when the closed test reaches revise and the sample meets the
sample-size minimum, refit replaces revise only if its out-of-fold log loss is lower.

Honest figures: every figure reported for an updated model comes from clients it was not
fitted on: FOLDS-fold cross-validation grouped by client, the chosen method re-estimated in
each fold (for refit, fit_model's own out-of-fold calibrated scores). The method itself is
chosen once on all clients; that one choice among at most six nested candidates is the
only optimism left, and the card says so.

The artifact, `UpdatedModel`, holds the parent (frozen) and the per-landmark terms, so a
shipped pickle's layout never changes, and it is an sklearn estimator (fit, predict_proba,
predict). `training.model.predictor` gives its compiled scoring function: the parent's own
(the linear kernel for the shipped kind) followed by one compiled loop, equal to
predict_proba (tests/training/test_updating.py holds them within 1e-9).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import scipy.linalg
from scipy.stats import chi2
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from training.errors import DropoutRiskError
from training.features import FEATURES, FloatArray, IntArray
from training.model import (
    CLIP_STEP,
    IMPUTER_STEP,
    PROBABILITY_FLOOR,
    SCALER_STEP,
    LinearForm,
    Predictor,
    linear_form,
    linear_preprocessing,
    predictor,
)
from training.vocabulary import MAX_LANDMARK

Groups = tuple[tuple[int, ...], ...]

AUTO = "auto"
KEEP, INTERCEPT, RECALIBRATE, REVISE, REFIT = METHODS = (
    "keep",
    "intercept",
    "recalibrate",
    "revise",
    "refit",
)
ALPHA = 0.05
INTERCEPT_SUPPORT = 50  # clients of each outcome for an intercept of its own
SLOPE_SUPPORT = 100  # ... for a slope of its own
EVENTS_PER_PARAMETER = 10  # revise: clients of the rarer outcome per revision parameter
FOLDS = 5
RIDGE = 1.0  # on the revision terms only: settles exact collinearity, ~0.03% at 1,000 rows
NEWTON_MAX_ITER = 100
NEWTON_TOL = 1e-9
RANK_TOL = 1e-7  # a design column explained to this relative residual adds no parameter
LANDMARK_COLUMN = FEATURES.index("landmark")


class UpdateError(DropoutRiskError):
    """The local data cannot support the update asked for."""


# ---- counts and groups -------------------------------------------------------------------


def _outcome_clients(
    rows: npt.NDArray[np.bool_], y: FloatArray, client: IntArray
) -> tuple[int, int]:
    """Distinct clients who dropped out and who completed among `rows`."""
    return (
        int(np.unique(client[rows & (y == 1)]).size),
        int(np.unique(client[rows & (y == 0)]).size),
    )


def landmark_groups(
    landmark: IntArray, y: FloatArray, client: IntArray, landmarks: Sequence[int], support: int
) -> Groups:
    """Contiguous groups of landmarks, each with at least `support` clients who dropped out
    and `support` who completed: a landmark short of it shares the next one's group, and a
    short last group joins the one before (one group of all landmarks at the least)."""
    groups: list[list[int]] = []
    current: list[int] = []
    for k in landmarks:
        current.append(k)
        if min(_outcome_clients(np.isin(landmark, current), y, client)) >= support:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return tuple(tuple(g) for g in groups)


def _pooled(groups: Groups) -> Groups:
    return (tuple(k for g in groups for k in g),)


def _columns(landmark: IntArray, groups: Groups) -> FloatArray:
    """One 0/1 column per group: the rows whose landmark is in it."""
    return (
        np.column_stack([np.isin(landmark, g).astype(np.float64) for g in groups])
        if groups
        else np.zeros((landmark.size, 0))
    )


def _by_landmark(groups: Groups, values: FloatArray, default: float) -> FloatArray:
    """A value per landmark 0..MAX_LANDMARK from one per group: a landmark outside every
    group takes the value of the nearest one inside (0: a row without a landmark)."""
    inside = {k: float(v) for g, v in zip(groups, values, strict=True) for k in g}
    if not inside:
        return np.full(MAX_LANDMARK + 1, default)
    known = np.array(sorted(inside))
    nearest = [int(known[np.argmin(np.abs(known - k))]) for k in range(MAX_LANDMARK + 1)]
    return np.array([inside[k] for k in nearest])


def _landmark_index(X: FloatArray) -> npt.NDArray[np.intp]:
    """Each row's landmark as an index into the by-landmark arrays (NaN -> 0)."""
    k = np.nan_to_num(X[:, LANDMARK_COLUMN], nan=0.0)
    return np.clip(k, 0, MAX_LANDMARK).astype(np.intp)


def _logit(p: FloatArray) -> FloatArray:
    out: FloatArray = np.log(p / (1.0 - p))
    return out


# ---- maximum likelihood -----------------------------------------------------------------


@dataclass(frozen=True)
class _Fit:
    beta: FloatArray
    loglik: float  # unpenalised
    eta: FloatArray


def _loglik(y: FloatArray, eta: FloatArray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _fit_logistic(
    D: FloatArray, y: FloatArray, offset: FloatArray, penalty: FloatArray | None = None
) -> _Fit:
    """Logistic regression of y on the columns of D with a fixed offset, by Newton-Raphson
    with step halving; `penalty` is a ridge weight per column (None: none but a 1e-10
    jitter that keeps a Hessian of separated data invertible)."""
    q = D.shape[1]
    ridge = np.zeros(q) if penalty is None else penalty
    beta = np.zeros(q)

    def objective(b: FloatArray) -> float:
        return _loglik(y, offset + D @ b) - 0.5 * float(np.sum(ridge * b * b))

    current = objective(beta)
    for _ in range(NEWTON_MAX_ITER if q else 0):
        eta = offset + D @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        gradient = D.T @ (y - mu) - ridge * beta
        hessian = (D * (mu * (1.0 - mu))[:, None]).T @ D + np.diag(ridge + 1e-10)
        step = np.linalg.solve(hessian, gradient)
        t = 1.0
        while True:
            candidate = objective(beta + t * step)
            if candidate >= current - 1e-12 or t < 1e-6:
                break
            t /= 2.0
        beta, current = beta + t * step, candidate
        if float(np.max(np.abs(t * step))) < NEWTON_TOL:
            break
    eta = offset + D @ beta
    return _Fit(beta, _loglik(y, eta), eta)


def _orthonormal(blocks: Sequence[FloatArray]) -> tuple[FloatArray, list[int]]:
    """The blocks' columns made orthonormal in order (scaled by sqrt(n)), a column that the
    ones before it explain dropped: (design, columns kept per block). Any prefix of blocks
    spans what the raw prefix spans, so nested models are prefixes of one design."""
    n = blocks[0].shape[0]
    basis = np.zeros((n, 0))
    sizes = []
    for block in blocks:
        if block.shape[1] == 0:
            sizes.append(0)
            continue
        residual = block - basis @ (basis.T @ block)
        q, r, pivot = scipy.linalg.qr(residual, mode="economic", pivoting=True)
        scale = np.maximum(np.linalg.norm(block, axis=0)[pivot], 1e-300)
        keep = np.abs(np.diag(r)) > RANK_TOL * scale
        rank = int(np.argmin(keep)) if not keep.all() else keep.size
        basis = np.column_stack([basis, q[:, :rank]])
        sizes.append(rank)
    return basis * np.sqrt(n), sizes


# ---- the candidates and the closed test -------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One nested update: its method, landmark groups and its place in the design (how
    many of the design's blocks it uses: pooled intercept, intercept contrasts, pooled
    slope, slope contrasts, revision terms)."""

    method: str
    intercept_groups: Groups
    slope_groups: Groups
    blocks: int

    @property
    def label(self) -> str:
        def groups(kind: str, g: Groups) -> str:
            if len(g) == 1:
                return f"pooled {kind}"
            return f"{kind}s per landmark " + " ".join("[" + ",".join(map(str, x)) + "]" for x in g)

        if self.method == INTERCEPT:
            return f"intercept: {groups('intercept', self.intercept_groups)}"
        if self.method == RECALIBRATE:
            return (
                f"recalibrate: {groups('intercept', self.intercept_groups)}, "
                f"{groups('slope', self.slope_groups)}"
            )
        return self.method


@dataclass(frozen=True)
class LRTest:
    """One likelihood-ratio test of the closed test: is `hypothesis` enough, against the
    most extensive candidate `against`? `statistic` is 2 x the log-likelihood gain with `df`
    more parameters; the Rao-Scott correction divides it by `design_effect` and refers it
    to chi-square on `effective_df`."""

    hypothesis: str
    against: str
    statistic: float
    df: int
    design_effect: float
    effective_df: float
    p_value: float
    rejected: bool


@dataclass(frozen=True)
class _Local:
    """What every fit reads: the parent's logit, landmark, label and client per row."""

    logit: FloatArray
    landmark: IntArray
    y: FloatArray
    client: IntArray


class _NestedFits:
    """The chain's design, its maximum-likelihood fits and the design effects of the most
    extensive one, computed once for all the tests."""

    def __init__(self, local: _Local, z: FloatArray | None, top: Candidate) -> None:
        lm, L = local.landmark, local.logit
        n = L.size
        intercepts = _columns(lm, top.intercept_groups)
        slopes = _columns(lm, top.slope_groups) * L[:, None]
        blocks = [
            np.ones((n, 1)),
            intercepts[:, 1:],
            L[:, None] if top.slope_groups else np.zeros((n, 0)),
            slopes[:, 1:],
            z if z is not None and top.method == REVISE else np.zeros((n, 0)),
        ]
        self.design, sizes = _orthonormal(blocks)
        self.ends = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.local = local
        self.top = top
        self.top_fit = self.fit(top)
        self._hinv, self._sandwich = self._covariances()

    def columns(self, candidate: Candidate) -> int:
        return int(self.ends[candidate.blocks])

    def fit(self, candidate: Candidate) -> _Fit:
        c = self.columns(candidate)
        return _fit_logistic(self.design[:, :c], self.local.y, self.local.logit)

    def _covariances(self) -> tuple[FloatArray, FloatArray]:
        """Model-based covariance (inverse Hessian) and its client-cluster-robust sandwich
        at the most extensive fit."""
        D = self.design[:, : self.columns(self.top)]
        mu = 1.0 / (1.0 + np.exp(-self.top_fit.eta))
        hessian = (D * (mu * (1.0 - mu))[:, None]).T @ D + 1e-10 * np.eye(D.shape[1])
        score = D * (self.local.y - mu)[:, None]
        clusters = np.unique(self.local.client, return_inverse=True)[1]
        g = int(clusters.max()) + 1 if clusters.size else 0
        per_cluster = (
            np.column_stack(
                [np.bincount(clusters, weights=score[:, j], minlength=g) for j in range(D.shape[1])]
            )
            if D.shape[1]
            else np.zeros((g, 0))
        )
        meat = per_cluster.T @ per_cluster * (g / max(g - 1, 1))
        hinv: FloatArray = np.asarray(np.linalg.inv(hessian), dtype=np.float64)
        sandwich: FloatArray = hinv @ meat @ hinv
        return hinv, sandwich

    def test(self, candidate: Candidate, alpha: float = ALPHA) -> LRTest:
        """Likelihood-ratio test of `candidate` against the most extensive candidate."""
        c, top = self.columns(candidate), self.columns(self.top)
        statistic = max(0.0, 2.0 * (self.top_fit.loglik - self.fit(candidate).loglik))
        df = top - c
        weights = np.zeros(0)
        if df > 0:
            tested = slice(c, top)
            ratio = np.linalg.solve(self._hinv[tested, tested], self._sandwich[tested, tested])
            weights = np.clip(np.linalg.eigvals(ratio).real, 0.0, None)
        total, squares = float(weights.sum()), float((weights**2).sum())
        if df == 0 or total <= 0 or squares <= 0:
            return LRTest(
                candidate.label, self.top.label, statistic, df, 1.0, float(df), 1.0, False
            )
        effect, effective_df = squares / total, total * total / squares
        p = float(chi2.sf(statistic / effect, effective_df))
        return LRTest(
            candidate.label, self.top.label, statistic, df, effect, effective_df, p, p < alpha
        )


def chain_of(intercept_groups: Groups, slope_groups: Groups, top_method: str) -> list[Candidate]:
    """The nested candidates from keep up to `top_method`, leaving out a per-landmark step
    whose grouping is a single group (it would repeat the pooled one)."""
    pooled_i, pooled_s = _pooled(intercept_groups), _pooled(slope_groups)
    chain = [
        Candidate(KEEP, (), (), 0),
        Candidate(INTERCEPT, pooled_i, (), 1),
        Candidate(INTERCEPT, intercept_groups, (), 2),
        Candidate(RECALIBRATE, intercept_groups, pooled_s, 3),
        Candidate(RECALIBRATE, intercept_groups, slope_groups, 4),
        Candidate(REVISE, intercept_groups, slope_groups, 5),
    ]
    if len(intercept_groups) == 1:
        chain.pop(2)
    if len(slope_groups) == 1:
        chain = [c for c in chain if not (c.blocks == 4 and c.method == RECALIBRATE)]
    order = {m: i for i, m in enumerate(METHODS)}
    return [c for c in chain if order[c.method] <= order[top_method]]


@dataclass(frozen=True)
class ClosedTest:
    """What the closed test tested, what it chose and why."""

    alpha: float
    tests: tuple[LRTest, ...]
    chosen: Candidate
    reason: str


def closed_test(local: _Local, z: FloatArray | None, chain: list[Candidate]) -> ClosedTest:
    """Test each candidate of the chain against the last, from the least extensive, and
    choose the first that is not rejected (the last when every one is)."""
    top = chain[-1]
    if len(chain) == 1:
        return ClosedTest(ALPHA, (), top, "no update is allowed by the sample: keep")
    fits = _NestedFits(local, z, top)
    tests: list[LRTest] = []
    for candidate in chain[:-1]:
        result = fits.test(candidate)
        tests.append(result)
        if not result.rejected:
            rejected = "; ".join(
                f"{t.hypothesis} rejected ({p_text(t.p_value)})" for t in tests[:-1]
            )
            return ClosedTest(
                ALPHA,
                tuple(tests),
                candidate,
                (f"{rejected}; " if rejected else "")
                + f"{candidate.label} is not rejected against {top.label} "
                f"({p_text(result.p_value)}, alpha {ALPHA}): the least extensive update the data "
                "do not reject",
            )
    return ClosedTest(
        ALPHA,
        tuple(tests),
        top,
        f"every less extensive candidate is rejected against {top.label} (the last with "
        f"{p_text(tests[-1].p_value)}, alpha {ALPHA}): the data ask for the most extensive "
        "update the sample allows",
    )


def p_text(p: float) -> str:
    """A p-value as the output and the card print it: "p < 0.001" or "p = 0.144"."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# ---- the updated model ------------------------------------------------------------------


def _update_loop(
    p_parent: FloatArray,
    X: FloatArray,
    column: int,
    intercept: FloatArray,
    slope: FloatArray,
    extra: FloatArray,
) -> FloatArray:
    """UpdatedModel.predict_proba's formula, one row at a time: the landmark's intercept
    and slope on the parent's logit, plus the revision terms, kept inside the floor."""
    n = X.shape[0]
    top = intercept.shape[0] - 1
    out = np.empty(n)
    for i in range(n):
        k = X[i, column]
        j = 0 if not k > 0 else (top if k >= top else int(k))
        q = p_parent[i]
        z = intercept[j] + slope[j] * np.log(q / (1.0 - q)) + extra[i]
        p = 1.0 / (1.0 + np.exp(-z))
        out[i] = min(max(p, PROBABILITY_FLOOR), 1 - PROBABILITY_FLOOR)
    return out


_update_kernel: Callable[..., FloatArray] = numba.njit(cache=True, nogil=True)(_update_loop)


@dataclass(frozen=True)
class UpdatedPredictor:
    """The compiled scoring function of an UpdatedModel: the parent's own predictor (the
    linear kernel for the shipped kind), the revision terms' linear form, one loop."""

    parent: Predictor
    intercept: FloatArray
    slope: FloatArray
    revision: LinearForm | None

    def __call__(self, X: FloatArray) -> FloatArray:
        x = np.asarray(X, dtype=np.float64)
        extra = self.revision(x) if self.revision is not None else np.zeros(x.shape[0])
        p = np.asarray(self.parent(x), dtype=np.float64)
        out: FloatArray = _update_kernel(p, x, LANDMARK_COLUMN, self.intercept, self.slope, extra)
        return out


class UpdatedModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A registered model updated on local data: the parent, frozen, and the update.

    Parameters: `parent` (a fitted model, wrapped in sklearn's FrozenEstimator so that
    `clone` keeps it fitted), `method` (keep, intercept, recalibrate or revise), and the
    landmark groups of the intercepts and slopes (None: chosen by the support rule in
    `fit`). Learned by `fit`: `intercept_` and `slope_` (one per landmark 0..12, a landmark
    the data lacked taking its nearest neighbour's), for revise `revision_` (the fitted
    preprocessing) with `revision_coef_` (its shrunk terms) and `shrinkage_`, and the
    groups used, `intercept_groups_` and `slope_groups_`.
    """

    def __init__(
        self,
        parent: Any = None,
        method: str = INTERCEPT,
        intercept_groups: Groups | None = None,
        slope_groups: Groups | None = None,
    ) -> None:
        self.parent = parent
        self.method = method
        self.intercept_groups = intercept_groups
        self.slope_groups = slope_groups

    @property
    def parent_model(self) -> Any:
        """The fitted parent (unwrapped from FrozenEstimator)."""
        return self.parent.estimator if isinstance(self.parent, FrozenEstimator) else self.parent

    def _parent_logit(self, X: FloatArray) -> FloatArray:
        return _logit(self.parent_model.predict_proba(X)[:, 1])

    def fit(
        self, X: FloatArray, y: npt.ArrayLike, groups: npt.ArrayLike | None = None
    ) -> UpdatedModel:
        """Estimate the update on labelled rows; `groups` names each row's client (rows of
        one client share an outcome; None: each row its own client)."""
        if self.method not in (KEEP, INTERCEPT, RECALIBRATE, REVISE):
            raise ValueError(
                f"method must be keep, intercept, recalibrate or revise, not {self.method!r}"
            )
        X = np.asarray(X, dtype=np.float64)
        labels = np.asarray(y, dtype=np.float64)
        client = np.unique(
            np.arange(labels.size) if groups is None else np.asarray(groups), return_inverse=True
        )[1].astype(np.int64)
        landmark = _landmark_index(X).astype(np.int64)
        present = tuple(int(k) for k in np.unique(landmark))
        local = _Local(self._parent_logit(X), landmark, labels, client)
        int_groups: Groups = ()
        slope_groups: Groups = ()
        if self.method != KEEP:
            int_groups = self.intercept_groups or landmark_groups(
                landmark, labels, client, present, INTERCEPT_SUPPORT
            )
        if self.method in (RECALIBRATE, REVISE):
            slope_groups = self.slope_groups or landmark_groups(
                landmark, labels, client, present, SLOPE_SUPPORT
            )
        self.intercept_groups_, self.slope_groups_ = int_groups, slope_groups
        self.revision_: Any = None
        self.revision_coef_: FloatArray | None = None
        self.shrinkage_: float | None = None
        a, b, offset = np.zeros(0), np.zeros(0), np.zeros(labels.size)
        if self.method == REVISE:
            self.revision_ = linear_preprocessing().fit(X)
            z = self.revision_.transform(X)
            self.revision_coef_ = self._revision_terms(local, z, int_groups, slope_groups)
            offset = z @ self.revision_coef_
        if self.method == INTERCEPT:
            a = _fit_logistic(_columns(landmark, int_groups), labels, local.logit).beta
        elif self.method != KEEP:
            design = np.column_stack(
                [
                    _columns(landmark, int_groups),
                    _columns(landmark, slope_groups) * local.logit[:, None],
                ]
            )
            beta = _fit_logistic(design, labels, offset).beta
            a, b = beta[: len(int_groups)], beta[len(int_groups) :]
        self.intercept_ = _by_landmark(int_groups, a, 0.0)
        self.slope_ = _by_landmark(slope_groups, b, 1.0)
        self.classes_ = np.array([0, 1])
        return self

    def _revision_terms(
        self, local: _Local, z: FloatArray, int_groups: Groups, slope_groups: Groups
    ) -> FloatArray:
        """The revision terms by maximum likelihood (a light ridge on them only), shrunk by
        the heuristic factor of the test of revise against recalibrate."""
        landmark, L = local.landmark, local.logit
        fixed = np.column_stack(
            [_columns(landmark, int_groups), _columns(landmark, slope_groups) * L[:, None]]
        )
        penalty = np.concatenate([np.zeros(fixed.shape[1]), np.full(z.shape[1], RIDGE)])
        beta = _fit_logistic(np.column_stack([fixed, z]), local.y, np.zeros(L.size), penalty).beta
        chain = chain_of(int_groups, slope_groups, REVISE)
        fits = _NestedFits(local, z, chain[-1])
        test = fits.test(chain[-2])
        adjusted = test.statistic / test.design_effect
        self.shrinkage_ = (
            float(max(0.0, (adjusted - test.effective_df) / adjusted)) if adjusted > 0 else 0.0
        )
        terms: FloatArray = self.shrinkage_ * beta[fixed.shape[1] :]
        return terms

    def predict_proba(self, X: FloatArray) -> FloatArray:
        """Columns: P(completes), P(drops out)."""
        check_is_fitted(self)
        x = np.asarray(X, dtype=np.float64)
        k = _landmark_index(x)
        eta = self.intercept_[k] + self.slope_[k] * self._parent_logit(x)
        if self.revision_ is not None:
            eta = eta + self.revision_.transform(x) @ self.revision_coef_
        p = np.clip(1.0 / (1.0 + np.exp(-eta)), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        return np.column_stack([1 - p, p])

    def predict(self, X: FloatArray) -> npt.NDArray[np.int64]:
        """Class labels: 1 (drops out) where P(drops out) >= 0.5, else 0."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def revision_form(self) -> LinearForm | None:
        """The shrunk revision terms as a linear form on the raw features (None unless
        revise): what the compiled predictor adds and the card lists."""
        check_is_fitted(self)
        if self.revision_ is None or self.revision_coef_ is None:
            return None
        steps = self.revision_.named_steps
        clip = steps[CLIP_STEP]
        return linear_form(
            clip.low_, clip.high_, steps[IMPUTER_STEP], steps[SCALER_STEP], self.revision_coef_, 0.0
        )

    def predictor(self) -> Predictor:
        """The compiled scoring function (training.model.predictor calls this)."""
        form = self.revision_form()
        return UpdatedPredictor(predictor(self.parent_model), self.intercept_, self.slope_, form)
