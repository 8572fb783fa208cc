"""What this service reads and writes in FHIR: code systems, value sets, the measures it
reads (coding, place in an episode, range), and the types of bad input (Issue,
FhirInputError) and of a Bundle read (ParsedBundle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from training.errors import DropoutRiskError
from training.vocabulary import (
    ORS_TOTAL_RANGE,
    PHQ9_TOTAL_RANGE,
    RISK_LEVELS,
    SRS_TOTAL_RANGE,
    WAI_ITEM_RANGE,
)

MEASURE_SYSTEM = "urn:dropout-risk:codesystem:measures"
LOINC = "http://loinc.org"
PHQ9_TOTAL_LOINC = "44261-6"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
SURVEY = "survey"
UCUM = "http://unitsofmeasure.org"
SCORE_UNIT = "{score}"
RISK_PROBABILITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
MODEL_SYSTEM = "urn:dropout-risk:model"
PREDICT_OPERATION = "urn:dropout-risk:operation:predict"
FHIR_VERSION = "4.0.1"
# When the CapabilityStatement last changed: bump it with the capabilities themselves.
CAPABILITY_DATE = "2026-11-22"
OUTCOME_TEXT = "Dropout from psychotherapy (ends treatment unilaterally before planned completion)"
NO_FACTOR = "No single factor stands out"
MAX_ENTRIES = 200  # one patient's early sessions need far fewer (OWASP API4)

BUNDLE_TYPES = frozenset({"collection", "searchset", "batch", "transaction"})
OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
RESPONSE_STATUSES = frozenset({"completed", "amended"})
PATIENT_GENDERS = frozenset({"male", "female", "other", "unknown"})
# ObservationStatus: the binding of RiskAssessment.status.
ASSESSMENT_STATUSES = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
RISK_PROBABILITY_DISPLAY = {
    "negligible": "Negligible likelihood",
    "low": "Low likelihood",
    "moderate": "Moderate likelihood",
    "high": "High likelihood",
    "certain": "Certain",
}
# Our risk levels as risk-probability codes: by name (docs/fhir.md on what "high" means).
RISK_LEVEL_CODES: dict[str, str] = {level: level for level in RISK_LEVELS}
WAI_LINK_IDS = tuple(str(n) for n in range(1, 13))

Severity = Literal["fatal", "error", "warning", "information"]
IssueCode = Literal[
    "invalid",
    "structure",
    "required",
    "value",
    "not-supported",
    "too-costly",
    "informational",
]


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: what is wrong (diagnostics) and where (a FHIRPath)."""

    severity: Severity
    code: IssueCode
    diagnostics: str
    expression: str

    def __post_init__(self) -> None:
        # A bad code here would only surface as an invalid OperationOutcome later.
        if self.severity not in get_args(Severity) or self.code not in get_args(IssueCode):
            raise ValueError(f"not an issue severity/code: {self.severity!r}/{self.code!r}")


class FhirInputError(DropoutRiskError):
    """A Bundle this service cannot read; `issues` lists every problem found.

    The message names the count and the first place only: values are health data and
    exception messages end up in logs."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        first = issues[0].expression if issues else "Bundle"
        super().__init__(f"the FHIR input has {len(issues)} problem(s), first at {first}")


@dataclass(frozen=True)
class ParsedBundle:
    """A Bundle read as one episode: `episode` validates as service.core.schemas.EpisodeIn,
    `basis` references the Observations and QuestionnaireResponses it was read from."""

    patient_id: str
    episode: dict[str, Any]
    basis: list[str]


@dataclass(frozen=True)
class Measure:
    """One score this service reads: its coding, its place in an episode, its range."""

    system: str
    code: str
    display: str
    slot: str  # "wai.goal" -> session["wai"]["goal"]; "srs" -> session["srs"]["total"]
    low: float
    high: float
    integer: bool = False


MEASURES: tuple[Measure, ...] = (
    Measure(
        MEASURE_SYSTEM,
        "wai-sr-goal",
        "WAI-SR goal subscale (item mean)",
        "wai.goal",
        *WAI_ITEM_RANGE,
    ),
    Measure(
        MEASURE_SYSTEM,
        "wai-sr-task",
        "WAI-SR task subscale (item mean)",
        "wai.task",
        *WAI_ITEM_RANGE,
    ),
    Measure(
        MEASURE_SYSTEM,
        "wai-sr-bond",
        "WAI-SR bond subscale (item mean)",
        "wai.bond",
        *WAI_ITEM_RANGE,
    ),
    Measure(MEASURE_SYSTEM, "srs-total", "Session Rating Scale total", "srs", *SRS_TOTAL_RANGE),
    Measure(MEASURE_SYSTEM, "ors-total", "Outcome Rating Scale total", "ors", *ORS_TOTAL_RANGE),
    Measure(LOINC, PHQ9_TOTAL_LOINC, "PHQ-9 total score", "phq9", *PHQ9_TOTAL_RANGE, integer=True),
)
BY_CODING = {(m.system, m.code): m for m in MEASURES}
WAI_ITEMS_SLOT = "wai.items"  # a WAI-SR QuestionnaireResponse: the 12 item answers
SLOT_LABEL = {m.slot: m.display for m in MEASURES} | {WAI_ITEMS_SLOT: "WAI-SR questionnaire"}
