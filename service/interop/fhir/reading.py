"""FHIR R4 in and out (docs/fhir.md): a Bundle of one patient's survey scores read as an
episode, and the prediction written as a RiskAssessment.

Every resource is checked by the fhir.resources R4B models (the package's default models
are R5, whose RiskAssessment differs), and then by the checks those models leave out:
value-set bindings, invariants, and the rules of this service (which codes, which ranges,
one patient). Bad input is reported as FhirInputError with every issue found, each naming
its FHIRPath, so the caller can fix a Bundle in one round trip.

Scale: probabilityDecimal is a probability from 0 to 1, not a percentage. The R4 text says
decimals are percentages, but the score, its thresholds and the rest of this API are 0-1,
and a second scale at one edge invites a factor-100 error; invariant ras-2 (<= 100) holds
either way.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment
from pydantic import ValidationError
from pydantic_core import from_json

from service.core.body import unique_keys
from service.core.schemas import EpisodeIn
from training.errors import DropoutRiskError
from training.vocabulary import ID_REGEX, in_date_window, is_id, outside_date_window

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
RISK_LEVEL_CODES = {"low": "low", "moderate": "moderate", "high": "high"}
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
    Measure(MEASURE_SYSTEM, "wai-sr-goal", "WAI-SR goal subscale (item mean)", "wai.goal", 1, 5),
    Measure(MEASURE_SYSTEM, "wai-sr-task", "WAI-SR task subscale (item mean)", "wai.task", 1, 5),
    Measure(MEASURE_SYSTEM, "wai-sr-bond", "WAI-SR bond subscale (item mean)", "wai.bond", 1, 5),
    Measure(MEASURE_SYSTEM, "srs-total", "Session Rating Scale total", "srs", 0, 40),
    Measure(MEASURE_SYSTEM, "ors-total", "Outcome Rating Scale total", "ors", 0, 40),
    Measure(LOINC, PHQ9_TOTAL_LOINC, "PHQ-9 total score", "phq9", 0, 27, integer=True),
)
_BY_CODING = {(m.system, m.code): m for m in MEASURES}
WAI_ITEMS_SLOT = "wai.items"  # a WAI-SR QuestionnaireResponse: the 12 item answers
_SLOT_LABEL = {m.slot: m.display for m in MEASURES} | {WAI_ITEMS_SLOT: "WAI-SR questionnaire"}


# --- reading a Bundle ----------------------------------------------------------------------


class _Issues(list[Issue]):
    """Issues as they are found: parsing goes on after a problem, to report them all."""

    def add(self, code: IssueCode, expression: str, diagnostics: str) -> None:
        self.append(Issue("error", code, diagnostics, expression))


@dataclass(frozen=True)
class _Entry:
    index: int
    kind: str  # resourceType
    resource: dict[str, Any]
    full_url: str | None

    @property
    def at(self) -> str:
        return f"Bundle.entry[{self.index}].resource"


@dataclass(frozen=True)
class _Patient:
    at: str
    id: str
    full_url: str | None
    gender: str | None
    birth_date: dt.date | None


@dataclass(frozen=True)
class _Reading:
    """One measure on one date, from one resource."""

    at: str
    day: dt.date
    slot: str
    value: float | int | list[int]
    subject: str  # the patient id referenced
    subject_at: str
    reference: str | None  # how the RiskAssessment's basis refers to the resource


_SUPPORTED = ("Patient", "Observation", "QuestionnaireResponse")
_PATIENT_REF = re.compile(rf"Patient/({ID_REGEX})")
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def episode_from_bundle(raw: bytes | dict[str, Any]) -> ParsedBundle:
    """One patient's episode from a Bundle (JSON bytes or the parsed object).

    Each distinct date (of effectiveDateTime or authored, as written, so in the clinic's
    local time) is one session; sessions are numbered 1..n in date order. Raises
    FhirInputError listing every problem found, never another exception."""
    doc = _document(raw)
    issues = _Issues()
    entries, cleaned = _screen_entries(doc, issues)
    _require_inputs(entries, issues)
    bad = _validate_structure(cleaned, issues)
    readable = [e for e in entries if e.index not in bad]
    patient, readings = _read_entries(readable, issues)
    patient_id = _one_patient(patient, readings, issues)
    sessions = _group_sessions(readings, issues)
    if issues or patient_id is None:
        raise FhirInputError(issues)
    episode, origins = _episode(patient_id, patient, sessions)
    _validate_episode(episode, origins, issues)
    if issues:
        raise FhirInputError(issues)
    return ParsedBundle(patient_id, episode, _basis(readings))


def _document(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """The Bundle as a JSON object, or FhirInputError: not JSON, not a Bundle, too big."""
    doc: object = raw
    if isinstance(raw, bytes | bytearray):
        try:
            unique_keys(raw)
            doc = from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            raise _one("structure", "Bundle", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _one("invalid", "Bundle", f"expected a Bundle (a JSON object), got {_kind(doc)}")
    if doc.get("resourceType") != "Bundle":
        kind = _show(doc.get("resourceType"))
        raise _one("invalid", "Bundle.resourceType", f"resourceType is {kind}; send a Bundle")
    entries = doc.get("entry")
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise _one(
            "too-costly",
            "Bundle.entry",
            f"the Bundle has {len(entries)} entries; at most {MAX_ENTRIES} are read",
        )
    return doc


def _one(code: IssueCode, expression: str, diagnostics: str) -> FhirInputError:
    return FhirInputError([Issue("error", code, diagnostics, expression)])


def _screen_entries(doc: dict[str, Any], issues: _Issues) -> tuple[list[_Entry], dict[str, Any]]:
    """The entries this service reads, and the Bundle with every other entry's resource
    taken out: the R4B models raise KeyError/TypeError (not a validation error) on an
    unknown resourceType, and an unsupported resource is reported here once."""
    raw_entries = doc.get("entry")
    if not isinstance(raw_entries, list):
        return [], doc  # absent, or not a list: the model reports the latter
    entries: list[_Entry] = []
    cleaned: list[Any] = []
    for i, entry in enumerate(raw_entries):
        found = _screen_entry(i, entry, issues)
        if found is None:
            kept = {k: v for k, v in entry.items() if k != "resource"} if _obj(entry) else {}
            cleaned.append(kept)
        else:
            entries.append(found)
            cleaned.append(entry)
    return entries, {**doc, "entry": cleaned}


def _screen_entry(i: int, entry: object, issues: _Issues) -> _Entry | None:
    at = f"Bundle.entry[{i}]"
    if not isinstance(entry, dict):
        issues.add("structure", at, f"an entry must be a JSON object, not {_kind(entry)}")
        return None
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        what = "is missing" if resource is None else f"is {_kind(resource)}, not an object"
        issues.add("required", f"{at}.resource", f"the entry's resource {what}")
        return None
    kind = resource.get("resourceType")
    if kind not in _SUPPORTED:
        issues.add(
            "not-supported",
            f"{at}.resource.resourceType",
            f"resourceType {_show(kind)} is not read here; send only "
            "Patient, Observation and QuestionnaireResponse",
        )
        return None
    full_url = entry.get("fullUrl")
    return _Entry(i, str(kind), resource, full_url if isinstance(full_url, str) else None)


def _validate_structure(doc: dict[str, Any], issues: _Issues) -> set[int]:
    """Validate as an R4B Bundle; returns the indices of entries with structural errors
    (their content is not read further, the others still are)."""
    kind = doc.get("type")
    if isinstance(kind, str) and kind not in BUNDLE_TYPES:
        issues.add(
            "value", "Bundle.type", f"Bundle.type {kind!r} is not one of {_listed(BUNDLE_TYPES)}"
        )
    try:
        Bundle.model_validate(doc)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, "Bundle"))
        return {int(e["loc"][1]) for e in exc.errors() if _is_entry_loc(e["loc"])}
    except (KeyError, TypeError, AttributeError, ValueError):  # a bad nested resourceType
        issues.add("structure", "Bundle", "a nested resource has a missing or unknown resourceType")
        return set(range(len(doc.get("entry") or [])))
    return set()


def _is_entry_loc(loc: tuple[Any, ...]) -> bool:
    return len(loc) >= 2 and loc[0] == "entry" and isinstance(loc[1], int)


def _pydantic_issues(exc: ValidationError, root: str) -> list[Issue]:
    return [_pydantic_issue(err, root) for err in exc.errors()]


def _pydantic_issue(err: Any, root: str) -> Issue:
    """A pydantic error as an issue: its location as FHIRPath, its rule, its value."""
    loc = tuple(p for p in err["loc"] if p != "root")
    path = _fhirpath(root, loc)
    kind = str(err["type"])
    name = str(loc[-1]) if loc and isinstance(loc[-1], str) else path
    if kind == "extra_forbidden":
        return Issue("error", "structure", f"{name!r} is not an element here", path)
    if "missing" in kind:
        return Issue("error", "required", f"{name} is required", path)
    message = " ".join(str(err["msg"]).split())
    code: IssueCode = "structure" if kind == "json_invalid" else "value"
    return Issue("error", code, f"{name} {_show(err.get('input'))}: {message}", path)


def _fhirpath(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        name = "resourceType" if part == "resource_type" else part
        path += f"[{name}]" if isinstance(name, int) else f".{name}"
    return path


def _read_entries(entries: list[_Entry], issues: _Issues) -> tuple[_Patient | None, list[_Reading]]:
    """The Patient (at most one) and every reading, in entry order."""
    patients = [_read_patient(e, issues) for e in entries if e.kind == "Patient"]
    for extra in [e for e in entries if e.kind == "Patient"][1:]:
        issues.add(
            "invalid",
            extra.at,
            "a second Patient; a Bundle holds one patient's data (at most one Patient)",
        )
    patient = patients[0] if patients else None
    patient_url = patient.full_url if patient is not None else None
    readings: list[_Reading] = []
    for entry in entries:
        found: _Reading | None = None
        if entry.kind == "Observation":
            found = _read_observation(entry, patient_url, issues)
        elif entry.kind == "QuestionnaireResponse":
            found = _read_response(entry, patient_url, issues)
        if found is not None:
            readings.append(found)
    return patient, readings


def _read_patient(entry: _Entry, issues: _Issues) -> _Patient | None:
    r, at = entry.resource, entry.at
    patient_id = r.get("id")
    if not isinstance(patient_id, str):
        issues.add("required", f"{at}.id", "Patient.id is required: it is the client id")
    gender = r.get("gender")
    if gender is not None and gender not in PATIENT_GENDERS:
        issues.add(
            "value",
            f"{at}.gender",
            f"gender {_show(gender)} is not one of {_listed(PATIENT_GENDERS)}",
        )
    birth = _birth_date(f"{at}.birthDate", r.get("birthDate"), issues)
    if not isinstance(patient_id, str):
        return None
    # "unknown" is no information: the model would otherwise read it as "other".
    known = gender if gender in PATIENT_GENDERS - {"unknown"} else None
    return _Patient(at, patient_id, entry.full_url, known, birth)


def _birth_date(at: str, value: object, issues: _Issues) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        issues.add(
            "value",
            at,
            f"birthDate {_show(value)} is not a full date (YYYY-MM-DD), which the age "
            "needs; leave birthDate out rather than send part of it",
        )
        return None
    return _parse_date(at, value, issues)


def _parse_date(at: str, text: str, issues: _Issues) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        issues.add("value", at, f"{_show(text)} is not a calendar date")
        return None


def _read_observation(entry: _Entry, patient_url: str | None, issues: _Issues) -> _Reading | None:
    r, at = entry.resource, entry.at
    _check_status(at, r.get("status"), OBSERVATION_STATUSES, issues)
    _check_category(at, r.get("category"), issues)
    measure = _measure(at, r.get("code"), issues)
    day = _day(f"{at}.effectiveDateTime", r.get("effectiveDateTime"), issues)
    subject = _subject(at, r.get("subject"), patient_url, issues)
    value = _quantity(at, r, measure, issues) if measure is not None else None
    if measure is None or day is None or subject is None or value is None:
        return None
    reference = _reference(entry)
    return _Reading(at, day, measure.slot, value, subject, f"{at}.subject.reference", reference)


def _read_response(entry: _Entry, patient_url: str | None, issues: _Issues) -> _Reading | None:
    r, at = entry.resource, entry.at
    _check_status(at, r.get("status"), RESPONSE_STATUSES, issues)
    day = _day(f"{at}.authored", r.get("authored"), issues)
    subject = _subject(at, r.get("subject"), patient_url, issues)
    items = _wai_items(at, r.get("item"), issues)
    if day is None or subject is None or items is None:
        return None
    reference = _reference(entry)
    return _Reading(at, day, WAI_ITEMS_SLOT, items, subject, f"{at}.subject.reference", reference)


def _check_status(at: str, status: object, allowed: frozenset[str], issues: _Issues) -> None:
    if status not in allowed:
        issues.add(
            "value",
            f"{at}.status",
            f"status {_show(status)} is not read; it must be one of {_listed(allowed)}",
        )


def _check_category(at: str, category: object, issues: _Issues) -> None:
    codings = [c for cc in _list(category) for c in _list(_field(cc, "coding"))]
    if any(_coding(c) == (CATEGORY_SYSTEM, SURVEY) for c in codings):
        return
    found = ", ".join(f"{s}#{c}" for s, c in map(_coding, codings)) or "none"
    issues.add(
        "required" if category is None else "value",
        f"{at}.category",
        f"category must include {CATEGORY_SYSTEM}#{SURVEY} (found: {_cut(found, 300)})",
    )


def _measure(at: str, code: object, issues: _Issues) -> Measure | None:
    found = {_BY_CODING[k] for k in map(_coding, _list(_field(code, "coding"))) if k in _BY_CODING}
    if len(found) == 1:
        return found.pop()
    if found:
        issues.add("invalid", f"{at}.code", "code holds codings of two different measures")
        return None
    known = ", ".join(f"{m.system}#{m.code}" for m in MEASURES)
    issues.add("not-supported", f"{at}.code", f"code is none of the measures read: {known}")
    return None


def _quantity(at: str, r: dict[str, Any], measure: Measure, issues: _Issues) -> float | None:
    quantity = r.get("valueQuantity")
    if not isinstance(quantity, dict):
        issues.add(
            "required", f"{at}.valueQuantity", f"{measure.display}: valueQuantity is required"
        )
        return None
    unit = quantity.get("code")
    if unit is not None and (unit != SCORE_UNIT or quantity.get("system", UCUM) != UCUM):
        issues.add(
            "value",
            f"{at}.valueQuantity.code",
            f"unit {_show(unit)} is not the UCUM {SCORE_UNIT} (leave it out or send that)",
        )
    return _score(f"{at}.valueQuantity.value", quantity.get("value"), measure, issues)


def _score(at: str, value: object, measure: Measure, issues: _Issues) -> float | None:
    name = measure.display
    if value is None:
        issues.add("required", at, f"{name}: valueQuantity.value is required")
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        issues.add("value", at, f"{name}: value {_show(value)} must be a JSON number")
        return None
    if not measure.low <= value <= measure.high:
        rule = f"{measure.low:g} to {measure.high:g}"
        issues.add("value", at, f"{name}: value {_show(value)} is outside {rule}")
        return None
    if measure.integer and not float(value).is_integer():
        issues.add("value", at, f"{name}: value {_show(value)} must be a whole number")
        return None
    return int(value) if measure.integer else float(value)


def _day(at: str, value: object, issues: _Issues) -> dt.date | None:
    """The date part of a FHIR dateTime as written (no conversion to UTC: the session
    happened on the clinic's calendar day)."""
    name = at.rsplit(".", 1)[-1]
    if value is None:
        issues.add("required", at, f"{name} is required: its date makes the session")
        return None
    text = value if isinstance(value, str) else ""
    if not _FULL_DATE.fullmatch(text[:10]):
        issues.add("value", at, f"{name} {_show(value)} must give a full date (YYYY-MM-DD)")
        return None
    day = _parse_date(at, text, issues)
    if day is not None and not in_date_window(day):
        issues.add("value", at, f"{name} {outside_date_window(day)}")
        return None
    return day


def _subject(at: str, subject: object, patient_url: str | None, issues: _Issues) -> str | None:
    """The patient id a subject refers to: `Patient/<id>`, or the Patient entry's fullUrl
    (then the id is resolved later, from the Patient itself)."""
    reference = _field(subject, "reference")
    if not isinstance(reference, str):
        where = f"{at}.subject" if subject is None else f"{at}.subject.reference"
        issues.add("required", where, "subject.reference to the patient is required")
        return None
    if patient_url is not None and reference == patient_url:
        return patient_url
    match = _PATIENT_REF.fullmatch(reference)
    if match is None or not is_id(match.group(1)):
        issues.add(
            "value",
            f"{at}.subject.reference",
            f"subject {_show(reference)} must be a relative reference Patient/<id>",
        )
        return None
    return match.group(1)


def _wai_items(at: str, items: object, issues: _Issues) -> list[int] | None:
    """The 12 WAI-SR answers (linkId "1".."12", valueInteger 1-5), in item order."""
    answers: dict[str, int | None] = {}  # None: answered, but not validly
    for path, item in _walk_items(f"{at}.item", items):
        _wai_answer(path, item, answers, issues)
    missing = [link for link in WAI_LINK_IDS if link not in answers]
    if missing:
        issues.add(
            "required",
            f"{at}.item",
            f"WAI-SR item(s) {', '.join(missing)} are not answered; all 12 are needed",
        )
    values = [answers.get(link) for link in WAI_LINK_IDS]
    return None if any(v is None for v in values) else [v for v in values if v is not None]


def _walk_items(at: str, items: object) -> list[tuple[str, dict[str, Any]]]:
    """Answered items, looking inside groups (items of items)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for j, item in enumerate(_list(items)):
        if not isinstance(item, dict):
            continue
        path = f"{at}[{j}]"
        if item.get("answer") is not None:
            found.append((path, item))
        found += _walk_items(f"{path}.item", item.get("item"))
    return found


def _wai_answer(
    at: str, item: dict[str, Any], answers: dict[str, int | None], issues: _Issues
) -> None:
    link = item.get("linkId")
    if not isinstance(link, str) or link not in WAI_LINK_IDS:
        issues.add("value", f"{at}.linkId", f"linkId {_show(link)} is not a WAI-SR item (1-12)")
        return
    if link in answers:
        issues.add("invalid", f"{at}.linkId", f"WAI-SR item {link} is answered twice")
        return
    answers[link] = None
    given = _list(item.get("answer"))
    value = _field(given[0], "valueInteger") if len(given) == 1 else None
    if len(given) != 1:
        issues.add("value", f"{at}.answer", f"item {link} needs exactly one answer")
    elif not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
        issues.add(
            "value",
            f"{at}.answer[0].valueInteger",
            f"item {link}: valueInteger {_show(value)} must be a whole number from 1 to 5",
        )
    else:
        answers[link] = value


def _one_patient(patient: _Patient | None, readings: list[_Reading], issues: _Issues) -> str | None:
    """The one patient every resource is about: the Patient's id, or else the subject of
    the first reading; any other subject is an issue."""
    if patient is None and not readings:
        return None
    expected = patient.id if patient is not None else readings[0].subject
    for reading in readings:
        subject = reading.subject
        if patient is not None and subject == patient.full_url:
            continue
        if subject != expected:
            issues.add(
                "invalid",
                reading.subject_at,
                f"subject Patient/{subject} is not Patient/{expected}; "
                "a Bundle holds one patient's data",
            )
    return expected


def _require_inputs(entries: list[_Entry], issues: _Issues) -> None:
    if not any(e.kind in ("Observation", "QuestionnaireResponse") for e in entries):
        issues.add(
            "required",
            "Bundle.entry",
            "the Bundle has no Observation or QuestionnaireResponse: nothing to score",
        )


def _group_sessions(
    readings: list[_Reading], issues: _Issues
) -> list[tuple[dt.date, dict[str, _Reading]]]:
    """One session per distinct date, in date order; one value per measure and date, and
    the WAI-SR either as a questionnaire or as subscale scores, not both."""
    by_day: dict[dt.date, dict[str, _Reading]] = {}
    for reading in readings:
        slots = by_day.setdefault(reading.day, {})
        clash = slots.get(reading.slot) or _wai_clash(reading.slot, slots)
        if clash is not None:
            issues.add("invalid", reading.at, _clash_message(reading, clash))
        else:
            slots[reading.slot] = reading
    return sorted(by_day.items())


def _wai_clash(slot: str, slots: dict[str, _Reading]) -> _Reading | None:
    if slot == WAI_ITEMS_SLOT:
        return next((r for s, r in slots.items() if s.startswith("wai.")), None)
    if slot.startswith("wai."):
        return slots.get(WAI_ITEMS_SLOT)
    return None


def _clash_message(reading: _Reading, first: _Reading) -> str:
    day = reading.day.isoformat()
    if reading.slot == first.slot:
        return (
            f"a second {_SLOT_LABEL[reading.slot]} on {day} (the first is {first.at}); "
            "send one value per measure and date"
        )
    return (
        f"both a WAI-SR questionnaire and WAI-SR subscale scores on {day} "
        f"(the other is {first.at}); give one form"
    )


def _episode(
    patient_id: str,
    patient: _Patient | None,
    sessions: list[tuple[dt.date, dict[str, _Reading]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The EpisodeIn body, and for each of its fields the FHIRPath it came from."""
    origins: dict[str, str] = {"client_id": "Bundle.entry"}
    episode: dict[str, Any] = {"client_id": patient_id}
    if patient is not None:
        origins["client_id"] = f"{patient.at}.id"
        if patient.birth_date is not None and sessions:
            episode["age"] = _age(patient.birth_date, sessions[-1][0])
            origins["age"] = f"{patient.at}.birthDate"
        if patient.gender is not None:
            episode["gender"] = patient.gender
            origins["gender"] = f"{patient.at}.gender"
    episode["sessions"] = [
        _session(number, day, slots, origins)
        for number, (day, slots) in enumerate(sessions, start=1)
    ]
    return episode, origins


def _session(
    number: int, day: dt.date, slots: dict[str, _Reading], origins: dict[str, str]
) -> dict[str, Any]:
    session: dict[str, Any] = {"number": number, "date": day.isoformat()}
    for slot, reading in slots.items():
        group, _, part = slot.partition(".")
        if group == "wai":
            session.setdefault("wai", {})[part] = reading.value
        else:
            session[group] = {"total": reading.value}
        origins[f"sessions[{number - 1}].{group}"] = reading.at
    return session


def _age(birth: dt.date, on: dt.date) -> int:
    """Whole years on `on` (the latest session date)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _validate_episode(episode: dict[str, Any], origins: dict[str, str], issues: _Issues) -> None:
    """The API's own episode rules (e.g. age 12-100, at most 50 sessions), each issue at
    the resource the offending value came from."""
    try:
        EpisodeIn.model_validate(episode)
    except ValidationError as exc:
        for err in exc.errors():
            field = _field_path(err["loc"])
            named = f"{field} (from birthDate)" if field == "age" else field
            message = " ".join(str(err["msg"]).split())
            issues.add(
                "value",
                _origin(field, origins),
                f"{named} {_show(err.get('input'))}: {message}",
            )


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _origin(field: str, origins: dict[str, str]) -> str:
    """The FHIRPath of the longest known prefix of an episode field."""
    for key in sorted(origins, key=len, reverse=True):
        if field == key or field.startswith((f"{key}.", f"{key}[")):
            return origins[key]
    return "Bundle.entry"


def _reference(entry: _Entry) -> str | None:
    """How a RiskAssessment refers to an input: Type/id, else its urn:uuid fullUrl."""
    resource_id = entry.resource.get("id")
    if isinstance(resource_id, str):
        return f"{entry.kind}/{resource_id}"
    if entry.full_url is not None and entry.full_url.startswith("urn:uuid:"):
        return entry.full_url
    return None


def _basis(readings: list[_Reading]) -> list[str]:
    return list(dict.fromkeys(r.reference for r in readings if r.reference is not None))


# --- small helpers for untyped JSON --------------------------------------------------------


def _obj(value: object) -> bool:
    return isinstance(value, dict)


def _field(value: object, name: str) -> object:
    return value.get(name) if isinstance(value, dict) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _coding(coding: object) -> tuple[object, object]:
    return _field(coding, "system"), _field(coding, "code")


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")


def _show(value: object) -> str:
    """A value for a message: scalars shown (cut short), containers only named."""
    if isinstance(value, dict | list):
        return _kind(value)
    return _cut(repr(value))


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


# --- writing resources ---------------------------------------------------------------------


def risk_assessment(
    result: dict[str, Any],
    subject: str,
    occurrence: dt.datetime,
    basis: list[str],
    assessment_id: str | None = None,
) -> dict[str, Any]:
    """A prediction (service.scoring.score.score's body) as an R4 RiskAssessment, JSON-ready.

    probabilityDecimal is 0-1 (see the module docstring). `occurrence` must carry a time
    zone: a FHIR dateTime with a time requires one. The body is validated with the R4B
    model and the bindings it does not check; a failure is a bug here, so it raises."""
    if occurrence.utcoffset() is None:
        raise ValueError("occurrence must be timezone-aware")
    body: dict[str, Any] = {"resourceType": "RiskAssessment"}
    if assessment_id is not None:
        body["id"] = assessment_id
    body |= {
        "status": "final",
        "subject": {"reference": subject},
        "occurrenceDateTime": occurrence.isoformat(timespec="seconds"),
        "method": _method(result),
    }
    if basis:  # FHIR JSON has no empty arrays
        body["basis"] = [{"reference": reference} for reference in basis]
    body["prediction"] = [_prediction(result)]
    actions = [str(a["text"]) for a in result.get("suggested_actions") or []]
    if actions:
        body["mitigation"] = " ".join(actions)
    body["note"] = [{"text": str(result["disclaimer"])}]
    _check_risk_assessment(body)
    return body


def _method(result: dict[str, Any]) -> dict[str, Any]:
    version = str(result["model"]["version"])
    th = result["thresholds"]
    text = (
        f"Calibrated dropout-risk model {version}, scored at landmark session "
        f"{result['landmark_session']}; risk levels: moderate from {th['moderate']}, "
        f"high from {th['high']} (probability 0-1)"
    )
    coding = {"system": MODEL_SYSTEM, "code": version, "display": f"dropout-risk model {version}"}
    return {"coding": [coding], "text": text}


def _prediction(result: dict[str, Any]) -> dict[str, Any]:
    level = str(result["risk_level"])
    code = RISK_LEVEL_CODES.get(level)
    if code is None:
        raise ValueError(f"not a risk level: {level!r}")
    labels = [str(f["label"]) for f in result.get("factors") or []]
    return {
        "outcome": {"text": OUTCOME_TEXT},
        "probabilityDecimal": float(result["probability"]),
        "qualitativeRisk": {
            "coding": [
                {
                    "system": RISK_PROBABILITY_SYSTEM,
                    "code": code,
                    "display": RISK_PROBABILITY_DISPLAY[code],
                }
            ]
        },
        "rationale": "; ".join(labels) or NO_FACTOR,
    }


def _check_risk_assessment(body: dict[str, Any]) -> None:
    """The R4B model, then what it leaves out: the status and qualitativeRisk bindings and
    our 0-1 probability scale (stricter than ras-2, which allows up to 100)."""
    RiskAssessment.model_validate(body)
    if body["status"] not in ASSESSMENT_STATUSES:
        raise ValueError(f"RiskAssessment.status {body['status']!r} is not an ObservationStatus")
    for prediction in body["prediction"]:
        for coding in prediction["qualitativeRisk"]["coding"]:
            if coding["system"] != RISK_PROBABILITY_SYSTEM:
                raise ValueError(f"qualitativeRisk system {coding['system']!r}")
            if coding["code"] not in RISK_PROBABILITY_DISPLAY:
                raise ValueError(f"qualitativeRisk code {coding['code']!r} not in risk-probability")
        probability = prediction["probabilityDecimal"]
        if not 0 <= probability <= 1:
            raise ValueError(f"probabilityDecimal {probability!r} is outside 0-1")


def searchset(resources: list[dict[str, Any]], self_url: str) -> dict[str, Any]:
    """A searchset Bundle of matches; each fullUrl is the server base + Type/id."""
    base = _server_base(self_url, resources)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
    }
    if resources:
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    Bundle.model_validate(bundle)
    return bundle


def _server_base(self_url: str, resources: list[dict[str, Any]]) -> str:
    """`http://host/fhir/r4/RiskAssessment?subject=...` -> `http://host/fhir/r4`."""
    path = self_url.split("?", 1)[0].rstrip("/")
    kinds = {str(r["resourceType"]) for r in resources} | {"RiskAssessment"}
    head, _, last = path.rpartition("/")
    return head if last in kinds else path


def capability_statement(base_url: str, version: str) -> dict[str, Any]:
    """What this server does: search RiskAssessments by subject, and $predict."""
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "dropout-risk",
        "kind": "instance",
        "software": {"name": "dropout-risk", "version": version},
        # cpb-15: an instance statement describes its implementation
        "implementation": {
            "description": "Psychotherapy dropout risk (decision support)",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [_rest()],
    }
    CapabilityStatement.model_validate(statement)
    return statement


def _rest() -> dict[str, Any]:
    return {
        "mode": "server",
        "documentation": "Probabilities are decimals from 0 to 1 (see docs/fhir.md).",
        "security": {"description": "Send an API key as 'Authorization: Bearer <key>'."},
        "resource": [
            {
                "type": "RiskAssessment",
                "interaction": [{"code": "search-type"}],
                "searchParam": [
                    {
                        "name": "subject",
                        "type": "reference",
                        "documentation": "Patient/<id>: the patient's latest stored risk",
                    }
                ],
                "operation": [
                    {
                        "name": "predict",
                        "definition": PREDICT_OPERATION,
                        "documentation": "POST a Bundle of one patient's survey "
                        "Observations and WAI-SR QuestionnaireResponses; returns a "
                        "RiskAssessment (nothing is stored)",
                    }
                ],
            }
        ],
    }


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Issues as an R4 OperationOutcome (which needs at least one issue: with none, an
    informational one says so)."""
    listed = issues or [Issue("information", "informational", "no issues", "Bundle")]
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": i.severity,
                "code": i.code,
                "diagnostics": i.diagnostics,
                "expression": [i.expression],
            }
            for i in listed
        ],
    }
    OperationOutcome.model_validate(outcome)
    return outcome
