"""The typed shape of the registry file and of a version's metadata.json.

Both files are read by every worker of the service and by the CLI; a file that does not
match is refused as a whole with one message naming the file, each field path, its value
and the rule, instead of failing later on a missing key (a 500, or a worker that cannot
start). The fields the code reads are typed and required; any other key is kept as it is
(`extra="allow"`), so metadata written by newer training code (report or card fields, the
feature ranges of the training data) still loads.

Messages name files by their name within the models directory, never by a server path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training import vocabulary
from training.errors import DropoutRiskError, field_path
from training.figures import EvaluationDocument
from training.profile_schema import ReferenceProfile
from training.provenance_schema import (
    Allowance,
    ClosedTest,
    OpenScience,
    ParentFigures,
    Predictors,
    RefitCheck,
    Selection,
    Specification,
    TrainingData,
    UpdateGroups,
    UpdateParameters,
    UpdateSample,
    World,
)
from training.stored_document import StoredDocument
from training.vocabulary import ID_MAX_LENGTH, ID_PATTERN, MAX_LANDMARK, RiskLevel

Version = Annotated[str, Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]  # an id
ClinicId = Annotated[str, Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]  # a tenant id
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Probability = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
Landmark = Annotated[int, Field(ge=1, le=MAX_LANDMARK)]


class LevelDesign(StoredDocument):
    """Flagging at one level's cut-off on the validation examples, when the thresholds
    were chosen (training.evaluation.level_stats): the flag rate is the design that the
    input-shift check (training.input_shift) compares a cohort with."""

    flag_rate: float
    sensitivity: float
    ppv: float
    false_negative_rate: float


class Thresholds(StoredDocument):
    """Risk-level cut-offs on the published probability."""

    moderate: Probability
    high: Probability
    rule: str | None = None  # how they were chosen (absent: not recorded)
    # per flag level, in the order written (moderate, high); absent: not recorded
    validation: dict[RiskLevel, LevelDesign] | None = None

    @property
    def cutoffs(self) -> vocabulary.Thresholds:
        """The two cut-offs as the code's one type of them (what publishing, evaluating
        and an answer take)."""
        return vocabulary.Thresholds(self.moderate, self.high)


class Lineage(StoredDocument):
    """Where a local update came from (training.update): the version it was updated from,
    how, and on which clinic's data (None: data of no named clinic)."""

    parent: Version
    method: str
    clinic: ClinicId | None = None
    # The SHA-256 of the files it was updated on (compare scores them out of fold).
    fingerprint: str | None = None
    parent_sha256: str | None = None  # the parent's model file, as it was updated from


class UpdateRecord(StoredDocument):
    """What a local update did (training.update writes it in full; the card shows it): the
    seed of its folds is what compare needs to score it out of fold again; the rest is the
    sample, what it allowed, the closed test, the choice and the estimates."""

    seed: int
    asked: str | None = None
    method: str | None = None
    candidate: str | None = None
    clinic: ClinicId | None = None
    sample: UpdateSample = UpdateSample()
    support_rule: str | None = None
    groups: UpdateGroups = UpdateGroups()
    allowed: list[Allowance] = []
    closed_test: ClosedTest = ClosedTest()
    refit_check: RefitCheck | None = None
    why: str | None = None
    parameters: UpdateParameters = UpdateParameters()
    evaluation: str | None = None  # how its figures were computed (out of fold)
    folds: int | None = None
    parent_on_local_data: ParentFigures = ParentFigures()


class SampleSizeRecord(StoredDocument):
    """The sample-size check of the development data (training.sample_size, which makes
    it): train records it, the card shows it, monitoring reads its parameter count."""

    development_clients: int
    development_dropouts: int
    parameters: int
    prevalence: float
    anticipated_r2_cox_snell: float
    anticipated_r2_nagelkerke: float
    criteria: dict[str, int]
    minimum: int
    met: bool
    allow_small: bool
    rule: str = "Riley et al. 2020, BMJ 368:m441 (training/sample_size.py)"


# A feature's training range [low, high], the clip the model applies; None: the feature was
# never recorded in training (not clipped).
FeatureRange = Annotated[list[float], Field(min_length=2, max_length=2)] | None


class ModelMetadata(StoredDocument):
    """A version's metadata.json: what scoring, explaining and describing a model read."""

    version: Version
    created_at: str
    sha256: Sha256
    sklearn_version: str
    estimator: str
    calibration: str
    landmarks: Annotated[list[Landmark], Field(min_length=1)]
    features: Annotated[list[str], Field(min_length=1)]
    instruments: list[str]
    # Per feature, its training range (training.train.feature_range); absent from artifacts
    # trained before it was stored (the range checks are then skipped).
    feature_range: dict[str, FeatureRange] | None = None
    # Absent from a local update that did not refit (it keeps its parent's specification).
    sample_size: SampleSizeRecord | None = None
    # The evaluation's figures, typed (training.figures reads and writes their layout).
    metrics: EvaluationDocument
    thresholds: Thresholds
    # The reference client of the explanations: one feature row per landmark (as text).
    reference: dict[str, list[float | None]]
    # The development data summarised for monitoring; absent from artifacts trained before
    # it was stored (they still load: monitoring then says "no reference profile").
    reference_profile: ReferenceProfile | None = None
    # A local update's origin; absent from a model trained from scratch (a network default).
    lineage: Lineage | None = None
    update: UpdateRecord | None = None
    # How it was made (training.provenance_schema): what the card and the report describe.
    seed: int | None = None
    training_data: TrainingData | None = None
    selection: Selection | None = None
    specification: Specification | None = None
    predictors: Predictors | None = None
    worlds: list[World] = []
    open_science: OpenScience | None = None


class RegistryEntry(StoredDocument):
    """One registered version: where its hashes are recorded, and for a local update
    (training.updating) the version it was updated from and how."""

    version: Version
    created_at: str
    sha256: Sha256
    metadata_sha256: Sha256
    estimator: str
    auc: float | None = None
    parent: Version | None = None
    method: str | None = None


Verdict = Literal["better", "worse", "not distinguishable"]


class VerdictRecord(StoredDocument):
    """One aspect of a comparison: the challenger against the champion, with the
    difference and its 95% interval (training.compare says how each is computed)."""

    verdict: Verdict
    estimate: float | None = None
    ci95: list[float | None] = [None, None]


class GroupFigures(StoredDocument):
    """One model in one subgroup: AUC and observed / expected dropouts (point estimates;
    None where the group has too few clients of an outcome)."""

    auc: float | None = None
    observed_expected: float | None = None


class SubgroupRecord(StoredDocument):
    """A subgroup's figures for both models: what the promotion rule's margins are
    checked against."""

    factor: str
    group: str
    n_clients: int
    champion: GroupFigures
    challenger: GroupFigures


class ComparisonRecord(StoredDocument):
    """The last comparison of a challenger: against which champion, for which clinic
    (None: the network default), on which data, and its verdicts."""

    challenger: Version
    champion: Version
    clinic: ClinicId | None = None
    compared_at: str
    fingerprint: Sha256
    n_clients: int
    discrimination: VerdictRecord
    calibration: VerdictRecord
    subgroups: list[SubgroupRecord] = []
    # sha256 of the comparison's page as the registry keeps it
    # (Registry.comparison_page_path; None: no copy kept, as before copies were)
    page_sha256: Sha256 | None = None

    def verdict_line(self) -> str:
        """The comparison's one line, as `dropout-risk compare` printed it."""
        return verdict_line(
            self.challenger,
            self.champion,
            self.clinic,
            self.discrimination.verdict,
            self.calibration.verdict,
        )

    @property
    def kind(self) -> str:
        """worse, better or "" (not distinguishable on both): verdict_kind."""
        return verdict_kind(self.discrimination.verdict, self.calibration.verdict)


def verdict_kind(discrimination: str, calibration: str) -> str:
    """A comparison at a glance: "worse" if either verdict is, else "better" if either
    is, else "" (how the comparison page and the monitoring page colour the verdict)."""
    words = {discrimination, calibration}
    return "worse" if "worse" in words else "better" if "better" in words else ""


def verdict_line(
    challenger: str, champion: str, clinic: str | None, discrimination: str, calibration: str
) -> str:
    """The one line at the top of a comparison's output, its page and its record."""
    return (
        f"verdict: {challenger} against {champion}"
        f"{f' (clinic {clinic})' if clinic else ''}: discrimination "
        f"{discrimination}, calibration {calibration}"
    )


class HistoryEvent(StoredDocument):
    """A change of a champion: who made it, by which path, and, when the promotion rule
    was overridden, why and what it had refused."""

    at: str
    version: Version
    clinic: ClinicId | None = None  # None: the network default
    previous: Version | None = None
    actor: str
    path: str
    forced: bool = False
    reason: str | None = None
    overridden: list[str] = []


class RegistryFile(StoredDocument):
    """models/registry.json: the registered versions, the network default champion
    (`champion`), a champion per clinic where one was promoted (every other clinic is
    served the network default), the last comparison of each challenger, and the history
    of champion changes. A file written before clinics existed has only the first two."""

    model_config = ConfigDict(extra="allow", frozen=False, strict=True)

    champion: Version | None = None
    clinic_champions: dict[ClinicId, Version] = {}
    versions: list[RegistryEntry] = []
    comparisons: list[ComparisonRecord] = []
    history: list[HistoryEvent] = []

    def champion_of(self, clinic: str | None) -> str | None:
        """The champion serving `clinic`: its own, else the network default (None: the
        network default itself)."""
        own = self.clinic_champions.get(clinic) if clinic is not None else None
        return own or self.champion

    def comparison_of(self, challenger: str) -> ComparisonRecord | None:
        """The last comparison recorded for `challenger`, if any."""
        return next((c for c in self.comparisons if c.challenger == challenger), None)

    def last_comparison(self, clinic: str) -> ComparisonRecord | None:
        """The most recent comparison of a challenger for `clinic` (its own champion's
        challengers: `dropout-risk retrain --clinic` or `compare --clinic`), if any."""
        mine = [c for c in reversed(self.comparisons) if c.clinic == clinic]  # ties: the later
        return max(mine, key=lambda c: c.compared_at, default=None)


Doc = TypeVar("Doc", bound=BaseModel)
SHOWN_PROBLEMS = 5


def parse_document(
    kind: type[Doc], text: str | bytes, name: str, error: type[DropoutRiskError]
) -> Doc:
    """`text` as `kind`, or `error` naming the file `name` and its broken fields (the
    caller says what a broken file means: a registry that cannot be trusted, a refused
    artifact)."""
    try:
        return kind.model_validate_json(text)
    except ValidationError as exc:
        raise error(_message(name, exc)) from None


def _message(name: str, exc: ValidationError) -> str:
    problems = [
        f"{field_path(e['loc'])}: {e['msg']} (value: {_shown(e.get('input'))})"
        for e in exc.errors(include_url=False)
    ]
    more = len(problems) - SHOWN_PROBLEMS
    shown = "; ".join(problems[:SHOWN_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
    return f"{name} does not match its schema: {shown}"


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
