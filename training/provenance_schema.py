"""The typed sections of metadata.json that say how a model was made.

The model card (training/model_card.py), the evaluation report (training/report.py) and
the CLI's summary describe a model from these sections only, so what they print is what
the artifact records: the training data, the model selection, the full specification
(TRIPOD+AI item 12), the predictors' distributions, the simulated worlds, the open-science
fields, and for a local update what the update tested, chose and estimated.

Every field may be absent (None, or an empty list or map): a section written by older
training code, or by hand, still loads, and the card says "not recorded" instead of
inventing a value. The writers are training/train.py, training/specification.py (which
builds the specification types below directly) and training/update.py.

This module imports pydantic only, so `training.artifact_schema` can type the fields
without loading numpy or scikit-learn.
"""

from __future__ import annotations

from pydantic import JsonValue

from training.stored_document import StoredDocument

# A cell of a candidate's row in the model selection (estimator, calibration, scores).
Cell = str | int | float | bool | None


class TrainingData(StoredDocument):
    """The cohort a model was trained (or updated) on: its files, their fingerprint, its
    size and, for a simulated cohort, the simulator's settings (training.train writes it)."""

    sessions_file: str | None = None
    clients_file: str | None = None
    fingerprint: str | None = None
    n_clients: int | None = None
    n_sessions: int | None = None
    n_examples: int | None = None
    dropout_rate: float | None = None
    development_clients: int | None = None
    test_clients: int | None = None
    simulated: bool = False
    # The simulator's sidecar as it wrote it (simulation.json): an open map of settings.
    simulator: dict[str, JsonValue] | None = None
    # A real export's collection period, when the exporting service states one.
    dates: str | None = None


class Selection(StoredDocument):
    """What model selection compared and chose, and how (training.train.selection_record)."""

    cv: str | None = None
    folds_hold_out: str | None = None  # "clients" or "worlds"
    excluded_features: list[str] = []
    known_signs: dict[str, int] = {}
    # One row per candidate, its columns as the selection wrote them.
    candidates: list[dict[str, Cell]] = []
    chosen: dict[str, str] | None = None


class CalibratorSpec(StoredDocument):
    """The map from the base model's raw probability to the published one."""

    method: str  # "sigmoid" or "isotonic"
    formula: str
    a: float | None = None  # sigmoid intercept
    b: float | None = None  # sigmoid slope on logit(raw)
    knots_raw: list[float] | None = None  # isotonic knots
    knots_p: list[float] | None = None


class LinearTerm(StoredDocument):
    """One input of a linear predictor; indicators have no imputed value. A recorded
    value is first clipped to [low, high] (the training range; None: not clipped)."""

    term: str
    imputed_with: float | None
    weight: float
    low: float | None = None
    high: float | None = None


class Specification(StoredDocument):
    """The full model: a linear formula (intercept, terms) or a tree ensemble's settings."""

    kind: str  # "linear" or "tree ensemble"
    formula: str
    calibrator: CalibratorSpec
    probability_floor: float
    intercept: float | None = None
    terms: list[LinearTerm] = []
    estimator: str | None = None
    settings: dict[str, float | int | bool | str | None] = {}
    trees: int | None = None


class Spread(StoredDocument):
    """One predictor over landmark rows: median and quartiles of the recorded values
    (None: never recorded) and the share missing."""

    median: float | None = None
    p25: float | None = None
    p75: float | None = None
    missing: float | None = None


class Predictors(StoredDocument):
    """Each predictor's spread in the development and the evaluation rows."""

    development: dict[str, Spread] = {}
    evaluation: dict[str, Spread] = {}


class World(StoredDocument):
    """One simulated world of the training cohort, its parameters as drawn (None: the
    literature-centred default world)."""

    world: int | None = None
    client_prefix: str | None = None
    seed: int | None = None
    params: dict[str, JsonValue] | None = None


class OpenScience(StoredDocument):
    """TRIPOD+AI's open-science items, filled in by the organisation that deploys the
    model (absent: the card says what is to be completed)."""

    code: str | None = None
    data: str | None = None
    funding: str | None = None
    conflicts: str | None = None
    registration: str | None = None


# --- a local update (training/update.py writes these, the card's Local update shows them)


class LandmarkSample(StoredDocument):
    """Clients reaching a landmark and the dropouts among them."""

    landmark: int | None = None
    clients: int | None = None
    dropouts: int | None = None


class UpdateSample(StoredDocument):
    """The local labelled sample, in clients, and per landmark."""

    clients: int | None = None
    dropouts: int | None = None
    completers: int | None = None
    per_landmark: list[LandmarkSample] = []


class Allowance(StoredDocument):
    """Whether the sample supports a method, with the rule and its numbers."""

    method: str | None = None
    needed: int | None = None
    available: int | None = None
    rule: str | None = None
    allowed: bool = False


class LikelihoodRatioTest(StoredDocument):
    """One test of the closed test, with its Rao-Scott correction."""

    hypothesis: str | None = None
    against: str | None = None
    statistic: float | None = None
    df: int | None = None
    design_effect: float | None = None
    effective_df: float | None = None
    p_value: float | None = None
    rejected: bool = False


class ClosedTest(StoredDocument):
    """What the closed test (Vergouwe et al. 2017) tested, chose and why."""

    alpha: float | None = None
    tests: list[LikelihoodRatioTest] = []
    chosen: str | None = None
    reason: str | None = None
    correction: str | None = None


class RefitCheck(StoredDocument):
    """Refit against revise by out-of-fold log loss; `chosen`: refit was kept."""

    revise_log_loss: float | None = None
    refit_log_loss: float | None = None
    chosen: bool = False


class LandmarkUpdate(StoredDocument):
    """The update at one landmark: logit p = intercept + slope x logit(parent's p)."""

    landmark: int | None = None
    intercept: float | None = None
    slope: float | None = None


class Revision(StoredDocument):
    """A revision's linear terms on the raw features, added to the recalibrated logit."""

    intercept: float | None = None
    terms: list[LinearTerm] = []


class UpdateParameters(StoredDocument):
    """The update as estimated (empty for a refit, which has its own specification)."""

    per_landmark: list[LandmarkUpdate] = []
    shrinkage: float | None = None
    revision: Revision | None = None


class ParentAtLandmark(StoredDocument):
    """The parent's point figures at one landmark on the local clients."""

    landmark: int | None = None
    auc: float | None = None
    calibration_intercept: float | None = None
    calibration_slope: float | None = None


class ParentFigures(StoredDocument):
    """The parent's point figures on the clients it was updated on."""

    auc: float | None = None
    brier: float | None = None
    per_landmark: list[ParentAtLandmark] = []


class UpdateGroups(StoredDocument):
    """Which landmarks share an intercept and which share a slope."""

    intercept: list[list[int]] = []
    slope: list[list[int]] = []
