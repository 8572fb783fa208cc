"""The model card (Mitchell et al. 2019) with a TRIPOD+AI checklist, from model metadata.

Everything numeric comes from the metadata written at train time, so the card cannot drift
from the artifact it describes. The card reads the metadata typed (training.artifact_schema,
its provenance sections in training.provenance_schema): a section that older or other code
did not write is None or empty there, and the card says "not recorded" rather than
inventing a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from pydantic import JsonValue

from training.artifact_schema import Lineage, ModelMetadata, UpdateRecord
from training.comparison import baseline_warnings
from training.evaluation import MIN_CLIENTS_PER_CLASS, TOO_FEW, format_metric
from training.figures import (
    Estimate,
    LandmarkFigures,
    OverallFigures,
    RuleComparison,
    SubgroupFigures,
)
from training.provenance_schema import (
    LinearTerm,
    OpenScience,
    ParentAtLandmark,
    Selection,
    Specification,
    Spread,
    TrainingData,
)
from training.vocabulary import FLAG_LEVELS, flag_label

NOT_RECORDED = "not recorded in the model metadata"
TO_FILL = "to be completed by the organisation that deploys the model"
NETWORK_DEFAULT_STATEMENT = (
    "This is a network default trained on simulated worlds, not calibrated at any clinic."
)
SIMULATED_STATEMENT = "This model was trained on simulated data and has no external validation."
SUBGROUP_TITLES = {
    "gender": "Gender",
    "age_band": "Age band",
    "therapist_volume": "Therapist caseload in the cohort",
    "instruments": "Instrument set (measures the client had by the landmark)",
}
REFERENCES = (
    "Mitchell M, Wu S, Zaldivar A, et al. Model Cards for Model Reporting. FAT* 2019.",
    "Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for "
    "reporting clinical prediction models that use regression or machine learning methods. "
    "BMJ 2024;385:e078378.",
    "Swift JK, Greenberg RP. Premature discontinuation in adult psychotherapy: a meta-analysis. "
    "J Consult Clin Psychol 2012;80(4):547-559.",
    "Sharf J, Primavera LH, Diener MJ. Dropout and therapeutic alliance: a meta-analysis of "
    "adult individual psychotherapy. Psychotherapy 2010;47(4):637-645.",
    "Flückiger C, Del Re AC, Wampold BE, Horvath AO. The alliance in adult psychotherapy: a "
    "meta-analytic synthesis. Psychotherapy 2018;55(4):316-340.",
    "Saxon D, Barkham M, Foster A, Parry G. The contribution of therapist effects to patient "
    "dropout and deterioration in the psychological therapies. Clin Psychol Psychother "
    "2017;24(3):575-588.",
    "Riley RD, Ensor J, Snell KIE, et al. Calculating the sample size required for developing "
    "a clinical prediction model. BMJ 2020;368:m441.",
)
UPDATE_REFERENCES = (
    "Vergouwe Y, Nieboer D, Oostenbrink R, et al. A closed testing procedure to select an "
    "appropriate method for updating prediction models. Stat Med 2017;36(28):4529-4539.",
    "Steyerberg EW. Clinical Prediction Models. 2nd ed. Springer; 2019 (updating).",
    "Rao JNK, Scott AJ. On chi-squared tests for multiway contingency tables with cell "
    "proportions estimated from survey data. Ann Stat 1984;12(1):46-60.",
    "van Houwelingen JC, Le Cessie S. Predictive value of statistical models. Stat Med "
    "1990;9(11):1303-1325.",
)


def _cell(value: object) -> str:
    """A markdown table cell: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    lines.append("|" + "---|" * len(headers))
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


def _training(meta: ModelMetadata) -> TrainingData:
    return meta.training_data or TrainingData()


def _simulated(meta: ModelMetadata) -> bool:
    return _training(meta).simulated


def _landmarks(meta: ModelMetadata) -> str:
    marks = [str(k) for k in meta.landmarks]
    return marks[0] if len(marks) == 1 else ", ".join(marks[:-1]) + " and " + marks[-1]


def _update_statement(meta: ModelMetadata, lineage: Lineage) -> str:
    """The first line of an updated model's card: what it was updated from and how, and
    that its figures come from the clinic's own clients, out of fold."""
    clinic = f" for clinic {lineage.clinic}" if lineage.clinic else ""
    simulated = f" {SIMULATED_STATEMENT}" if _simulated(meta) else ""
    return (
        f"> **A local update of model {lineage.parent}{clinic} (method: "
        f"{lineage.method}).** Its figures are out of fold on the local clients it was "
        "updated on (see Local update), which is internal validation, not external: check it "
        f"again on later clients before relying on it.{simulated}"
    )


def _title(meta: ModelMetadata) -> str:
    version = meta.version
    if meta.lineage is not None:
        warning = _update_statement(meta, meta.lineage)
    elif meta.worlds:
        warning = (
            f"> **{NETWORK_DEFAULT_STATEMENT}** Its cohorts were generated by this project's "
            "simulator in the worlds listed under Simulated worlds; no real patient has been "
            "scored by it. Recalibrate and validate it on a clinic's own data before any use "
            "for decisions about care."
        )
    elif _simulated(meta):
        warning = (
            f"> **{SIMULATED_STATEMENT}** Its cohort was generated by this project's simulator "
            "from published effect sizes; no real patient has been scored by it. Do not use it "
            "for decisions about care before it has been validated on the service's own data."
        )
    else:
        warning = (
            "> **This model has no external validation.** Its metrics come from held-out "
            "clients of the cohort it was trained on; validate it locally before use."
        )
    beaten = "".join(f"\n>\n> **{line}**" for line in baseline_warnings(meta.metrics))
    return (
        f"# Model card: dropout-risk model {version}\n\n{warning}{beaten}\n\n"
        "Reporting follows Model Cards for Model Reporting (Mitchell et al. 2019) and the "
        "TRIPOD+AI statement (Collins et al., BMJ 2024); the checklist is at the end."
    )


def _selection_table(selection: Selection) -> str:
    """Every candidate model selection compared, with the columns the metadata holds."""
    candidates = selection.candidates
    if not candidates:
        return ""
    headers = list(dict.fromkeys(k for c in candidates for k in c))
    chosen = selection.chosen or {}

    def show(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = [
        [show(c.get(h, "")) for h in headers]
        + ["yes" if chosen and all(c.get(k) == v for k, v in chosen.items()) else ""]
        for c in candidates
    ]
    return _table([*headers, "chosen"], rows)


def _model_details(meta: ModelMetadata) -> str:
    selection = meta.selection or Selection()
    features = meta.features
    lineage = meta.lineage
    items = [
        ("Version", meta.version),
        ("Created", meta.created_at),
        ("Updated from", lineage and lineage.parent),
        ("Update method", lineage and lineage.method),
        ("Updated for clinic", lineage and lineage.clinic),
        ("Artifact SHA-256", meta.sha256),
        ("Estimator", meta.estimator),
        ("Probability calibration", meta.calibration),
        ("scikit-learn version", meta.sklearn_version),
        ("Prediction times (landmarks)", f"after sessions {_landmarks(meta)}"),
        ("Instruments seen in training", ", ".join(meta.instruments) or None),
        ("Seed", meta.seed),
    ]
    lines = [f"- **{k}:** {v}" for k, v in items if v not in (None, "")]
    lines.append(
        "- **Output:** a calibrated probability that the client ends therapy unilaterally "
        "(dropout), and a tier (moderate, high) from the thresholds under Metrics."
    )
    if features:
        lines.append(f"- **Predictors ({len(features)}):** " + ", ".join(map(str, features)))
    lines.append(f"- **Model selection:** {selection.cv or NOT_RECORDED}")
    table = _selection_table(selection)
    return "## Model details\n\n" + "\n".join(lines) + (f"\n\n{table}" if table else "")


def _intended_use(meta: ModelMetadata) -> str:
    return f"""## Intended use

- **Primary use:** decision support for psychotherapy clinicians after sessions \
{_landmarks(meta)} of an episode of adult outpatient psychotherapy. A moderate or high \
estimated risk of dropout prompts the clinician to look at the early therapeutic alliance \
(goals, tasks, bond), invite feedback on the sessions and repair ruptures. It is not a \
diagnosis, and not a verdict on the client or the therapist.
- **Intended users:** the treating clinician and their clinical supervisor. Service leads may \
see aggregate model performance, never per-therapist rankings.
- **Place in the care pathway:** after the client's alliance measures (WAI-SR and/or SRS) for \
session 1, 2 or 3 are entered in the record; one tiered flag per client with the reason \
behind it; quiet after acknowledgement until something new happens. The clinician decides \
what, if anything, to do.
- **Out of scope:** decisions to refuse, shorten or end treatment; triage; insurance, \
reimbursement or staff appraisal; crisis or suicide-risk assessment; children and \
adolescents, inpatient or group settings, and predictions after session 3, none of which \
the model was evaluated for."""


def _factors(meta: ModelMetadata) -> str:
    instruments = ", ".join(meta.instruments) or NOT_RECORDED
    return f"""## Factors

- **Groups evaluated:** gender (female, male, other, unknown), age band (<25, 25-39, 40-59, \
60+, unknown) and the caseload of the client's therapist in the cohort; every metric is \
also reported per landmark session. See Quantitative analyses.
- **Known health inequalities in dropout:** dropout averages about 20% (Swift & Greenberg \
2012) and is higher for younger clients, clients with personality or eating disorders, \
clients of trainee therapists, and in routine care (about 25-35%); unemployment and poor \
social support add risk. Between 1.2% and 73.2% of a therapist's clients drop out, and \
12.6% of dropout variance lies between therapists (Saxon et al. 2017).
- **Not available, so not evaluated:** ethnicity, socioeconomic status, diagnosis, language \
and disability are not in the data contract. Performance for these groups is unknown and \
should be checked locally before use.
- **Instrument factors:** instruments seen in training: {instruments}. WAI-SR and SRS have \
strong ceiling effects, which limits sensitivity for clients who rate every session highly; \
sites differ in which instruments they collect."""


def _threshold_lines(meta: ModelMetadata) -> list[str]:
    thresholds = meta.thresholds
    lines = [f"- **Threshold rule:** {thresholds.rule or NOT_RECORDED}"]
    for name in FLAG_LEVELS:
        level = meta.metrics.overall.level(name)
        lines.append(
            f"- **{flag_label(name)}:** p ≥ {thresholds.cutoffs.of(name):.3f}; on the "
            f"evaluation data it flags {format_metric(level.flag_rate, pct=True)} of examples, "
            f"with sensitivity {format_metric(level.sensitivity, pct=True)} and PPV "
            f"{format_metric(level.ppv, pct=True)}."
        )
    return lines


def _metrics_section(meta: ModelMetadata) -> str:
    intro = f"""## Metrics

- **Discrimination:** AUC (0.5 is chance; about 0.60-0.72 is the realistic ceiling in \
routine outpatient care). Early alliance alone separates completers and dropouts by \
d = 0.55 (Sharf et al. 2010), an AUC of about 0.65.
- **Calibration:** calibration slope (ideal 1; below 1 means predictions are too extreme), \
calibration-in-the-large intercept (ideal 0) and observed/expected dropouts (ideal 1), \
plus Brier score and log loss.
- **Clinical utility:** flag rate, sensitivity, PPV and false-negative rate at the two \
thresholds, and a decision curve (net benefit against flagging everyone or no one) in \
report.html.
- **Uncertainty:** 95% percentile intervals from a cluster bootstrap over \
{_bootstrap_unit(meta)}. A figure that needs both outcomes reads "too few clients" when \
fewer than {MIN_CLIENTS_PER_CLASS} clients of either outcome back it.
- **Comparison:** the clinic rules "last SRS < 36" and "any SRS < 36 so far" and a logistic \
regression on the mean WAI-SR alone, on the same examples and at the same flag rates."""
    return intro + "\n" + "\n".join(_threshold_lines(meta))


def _bootstrap_unit(meta: ModelMetadata) -> str:
    boot = meta.metrics.bootstrap
    if boot.unit == "therapist":
        clusters = "n/a" if boot.clusters is None else boot.clusters
        return (
            f"therapists ({clusters} clusters: all landmark rows of all "
            "clients of a therapist together, as a new clinic brings new therapists)"
        )
    return "clients (each client contributes one example per landmark session)"


def _evaluation_data(meta: ModelMetadata) -> str:
    figures = meta.metrics
    n_examples, n_clients, prevalence = figures.n_examples, figures.n_clients, figures.prevalence
    replicates, seed = figures.bootstrap.replicates, figures.bootstrap.seed
    test_clients = _training(meta).test_clients
    source = (
        f"{test_clients} held-out clients of the training cohort, drawn at random "
        "(stratified by outcome) and never seen by model selection or threshold choice"
        if test_clients is not None
        else NOT_RECORDED
    )
    if meta.lineage is not None:
        evaluation = meta.update.evaluation if meta.update is not None else None
        source = f"the local clients, {evaluation or NOT_RECORDED}"
    return f"""## Evaluation data

- **Source:** {source}.
- **Size:** {n_examples} examples from {n_clients} \
clients; dropout rate {_pct(prevalence)}.
- **Intervals:** {replicates} bootstrap replicates over \
{_bootstrap_unit(meta)} (seed {seed}).
- **External validation:** none. The evaluation clients come from the same \
{"simulated " if _simulated(meta) else ""}cohort as the training clients, so these numbers \
say nothing about another service, another period or real patients."""


def _simulator_block(training: TrainingData) -> str:
    simulator = training.simulator
    if not simulator:
        return ""
    text = json.dumps(simulator, indent=1, sort_keys=True, default=str)
    return f"\n\nSimulator settings (for reproduction):\n\n```json\n{text}\n```"


def _sample_size_text(meta: ModelMetadata) -> str:
    """The Riley et al. 2020 minimum the development data were checked against."""
    size = meta.sample_size
    if size is None and meta.lineage is not None:
        return "What each update method needs of the sample: see Local update."
    if size is None:
        return f"Minimum sample size check: {NOT_RECORDED}."
    criteria = "; ".join(f"{k}: {v:,}" for k, v in size.criteria.items())
    verdict = (
        "met"
        if size.met
        else "**NOT met: trained with --allow-small; expect overfitting and optimistic metrics**"
    )
    return (
        f"Minimum sample size (Riley et al. 2020, BMJ 368:m441) for {size.parameters} "
        f"predictor parameters at prevalence {_pct(size.prevalence)} and an anticipated "
        f"Cox-Snell R² of {size.anticipated_r2_cox_snell:.3f} (Nagelkerke "
        f"{size.anticipated_r2_nagelkerke:.2f}): {size.minimum:,} development "
        f"clients ({criteria}); {size.development_clients} available: {verdict}."
    )


def _na(value: object) -> object:
    return "n/a" if value is None else value


def _training_data(meta: ModelMetadata) -> str:
    t = _training(meta)
    n_clients, rate = t.n_clients, t.dropout_rate
    events = (
        f" (about {round(n_clients * rate)} dropouts)"
        if n_clients is not None and rate is not None
        else ""
    )
    dates = (
        "synthetic dates from the simulator; no real collection period"
        if _simulated(meta)
        else t.dates or NOT_RECORDED
    )
    missing = ", ".join(f for f in meta.features if f.endswith("_missing"))
    missing_text = f"; the counts of sessions without each measure are predictors ({missing})"
    return f"""## Training data

- **Source:** {"simulated cohort" if _simulated(meta) else "service export"} \
(files {_na(t.sessions_file)} and {_na(t.clients_file)}, fingerprint \
{_na(t.fingerprint)}).
- **Data dates:** {dates}.
- **Sample size:** {_na(n_clients)} clients{events}, \
{_na(t.n_sessions)} sessions, {_na(t.n_examples)} landmark examples; \
{_na(t.development_clients)} development clients, {_na(t.test_clients)} \
held out. {_sample_size_text(meta)}
- **Outcome:** dropout = the client ended the episode unilaterally (label 1 in clients.csv; \
0 = completed), as defined by the exporting service. Dropout rate {_pct(rate)}.
- **Horizon:** the rest of the episode: a prediction made after session k (a landmark) is \
the probability that the client drops out at any later point of the episode; the outcome \
is known only when the episode ends.
- **Predictors and timing:** alliance (WAI-SR, SRS), outcome and symptom measures (ORS, \
PHQ-9), attendance gaps, age and gender, measured at sessions 1 to k for a prediction at \
landmark k ({_landmarks(meta)}); nothing after the landmark is used.
- **Missing data:** measures a site does not collect or a session did not record stay \
missing in the features and are handled inside the model pipeline{missing_text if missing else ""}.
- **Class imbalance and tuning:** no resampling or class weighting, so probabilities stay \
calibrated; estimator and calibration method chosen by \
{(meta.selection or Selection()).cv or NOT_RECORDED}.{_simulator_block(t)}"""


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _update_facts(update: UpdateRecord, lineage: Lineage | None) -> str:
    """The update's list: parent, method, clinic, data, why, rule and how figures were made."""
    parent = lineage.parent if lineage else None
    return "\n".join(
        [
            f"- **Parent:** {parent} (SHA-256 {lineage and lineage.parent_sha256})",
            f"- **Method:** {update.candidate}; asked for: {update.asked}",
            f"- **Clinic:** {(lineage and lineage.clinic) or 'not given'}",
            f"- **Local data fingerprint:** {lineage and lineage.fingerprint}",
            f"- **Why this method:** {update.why}",
            f"- **Support rule:** {update.support_rule or NOT_RECORDED}",
            f"- **Figures:** {update.evaluation or NOT_RECORDED}",
        ]
    )


def _closed_test_table(update: UpdateRecord) -> str:
    """Each likelihood-ratio test of the closed test with its Rao-Scott correction."""
    return _table(
        ["Hypothesis", "Against", "LR", "df", "Design effect", "Effective df", "p", ""],
        [
            (
                t.hypothesis,
                t.against,
                _number(t.statistic, 1),
                t.df,
                _number(t.design_effect, 2),
                _number(t.effective_df, 1),
                "< 0.001" if t.p_value is not None and t.p_value < 0.001 else _number(t.p_value),
                "rejected" if t.rejected else "not rejected",
            )
            for t in update.closed_test.tests
        ],
    )


def _estimates_table(meta: ModelMetadata, update: UpdateRecord) -> str:
    """Per landmark: the update's a and b, then the parent's figures on the local clients
    against the update's out-of-fold ones."""
    before = {r.landmark: r for r in update.parent_on_local_data.per_landmark}
    rows = []
    for r in update.parameters.per_landmark:
        old = before.get(r.landmark) or ParentAtLandmark()
        new = meta.metrics.landmark(r.landmark) if r.landmark is not None else None
        rows.append(
            (
                r.landmark,
                _number(r.intercept),
                _number(r.slope),
                f"{_number(old.calibration_intercept, 2)} → "
                f"{format_metric(None if new is None else new.calibration_intercept, digits=2)}",
                f"{_number(old.calibration_slope, 2)} → "
                f"{format_metric(None if new is None else new.calibration_slope, digits=2)}",
                f"{_number(old.auc)} → {format_metric(None if new is None else new.auc)}",
            )
        )
    if not rows:
        return ""
    headers = ["Landmark", "a", "b", "Calibration intercept", "Calibration slope", "AUC"]
    return (
        "The update per landmark: logit p = a + b × logit(parent's probability)"
        + (" + the revision terms below" if update.parameters.revision else "")
        + "; then the parent's figures on these clients against the update's out-of-fold "
        "ones.\n\n" + _table(headers, rows)
    )


def _local_update(meta: ModelMetadata, update: UpdateRecord) -> str:
    """How the model was updated (training/updating.py): the sample, what it allowed, each
    likelihood-ratio test of the closed test, the choice and why, the estimates, and the
    parent's figures on the same clients against the update's out-of-fold ones."""
    sample, test = update.sample, update.closed_test
    parts = [
        "## Local update",
        _update_facts(update, meta.lineage),
        f"Sample: {_na(sample.clients)} clients, {_na(sample.dropouts)} of whom dropped out.",
        _table(
            ["Landmark", "Clients", "Dropouts"],
            [(r.landmark, r.clients, r.dropouts) for r in sample.per_landmark],
        ),
        _table(
            ["Method", "Allowed by the sample", "Rule"],
            [(a.method, "yes" if a.allowed else "no", a.rule) for a in update.allowed],
        ),
        f"Closed test (Vergouwe et al. 2017) at alpha {_na(test.alpha)}: each "
        "hypothesis tested against the most extensive update the sample allows by a "
        f"likelihood ratio; correction: {test.correction or NOT_RECORDED}. Decision: "
        f"{test.reason or NOT_RECORDED}.",
    ]
    if test.tests:
        parts.append(_closed_test_table(update))
    refit = update.refit_check
    if refit is not None:
        parts.append(
            f"Refit against revise (out-of-fold log loss): refit "
            f"{_number(refit.refit_log_loss, 4)}, revise "
            f"{_number(refit.revise_log_loss, 4)}: "
            f"{'refit' if refit.chosen else 'revise'} kept."
        )
    estimates = _estimates_table(meta, update)
    if estimates:
        parts.append(estimates)
    revision = update.parameters.revision
    if revision:
        parts += [
            f"Revision terms, shrunk by {_number(update.parameters.shrinkage)} towards the "
            f"parent (heuristic shrinkage); intercept {_number(revision.intercept, 6)}; "
            "a recorded value is first clipped, a missing one takes its imputed value:",
            _terms_table(revision.terms),
        ]
    parts.append("Sources: " + " ".join(UPDATE_REFERENCES))
    return "\n\n".join(parts)


def _overall_table(overall: OverallFigures) -> str:
    figures: tuple[tuple[str, Estimate], ...] = (
        ("AUC", overall.auc),
        ("Brier score", overall.brier),
        ("Log loss", overall.log_loss),
        ("Calibration slope", overall.calibration_slope),
        ("Calibration intercept", overall.calibration_intercept),
    )
    rows = [(label, format_metric(figure)) for label, figure in figures]
    return _table(["Metric", "Estimate (95% CI)"], rows)


def _landmark_table(rows: Sequence[LandmarkFigures]) -> str:
    return _table(
        [
            "Landmark",
            "Examples",
            "Dropout rate",
            "Calibration slope",
            "Calibration intercept",
            "AUC",
            "Brier",
        ],
        [
            (
                f"after session {r.landmark}",
                r.n,
                _pct(r.prevalence),
                format_metric(r.calibration_slope, digits=2),
                format_metric(r.calibration_intercept, digits=2),
                format_metric(r.auc),
                format_metric(r.brier),
            )
            for r in rows
        ],
    )


def _subgroup_table(rows: Sequence[SubgroupFigures]) -> str:
    return _table(
        [
            "Group",
            "Clients",
            "Dropout rate",
            "AUC",
            "O/E",
            "Intercept",
            "Flagged ≥ moderate",
            "Flagged high",
            "FNR at moderate",
        ],
        [
            (
                r.group,
                r.n_clients,
                _pct(r.prevalence),
                format_metric(r.auc),
                format_metric(r.observed_expected, digits=2),
                format_metric(r.calibration_intercept, digits=2),
                format_metric(r.moderate.flag_rate, pct=True),
                format_metric(r.high.flag_rate, pct=True),
                format_metric(r.moderate.false_negative_rate, pct=True),
            )
            for r in rows
        ],
    )


def _pair(model: object, rule: object, pct: bool) -> str:
    def show(x: object) -> str:
        if not isinstance(x, int | float):
            return "n/a"
        return _pct(x) if pct else f"{x:.3f}"

    return f"{show(model)} vs {show(rule)}"


def _baselines_table(comparison: RuleComparison | None) -> str:
    """The model against each clinic rule on the rows where the rule applies."""
    if comparison is None or not comparison.rules:
        return ""
    rules, rates = comparison.rules, comparison.flag_rates
    headers = ["Rule", "Examples", "AUC model vs rule"]
    for level, rate in rates.items():
        headers += [f"Sensitivity at {level} ({_pct(rate)} flagged)", f"PPV at {level}"]
    rows = []
    for rule in rules:
        if rule.too_few:
            rows.append([rule.label, rule.n_examples, *[TOO_FEW] * (1 + 2 * len(rates))])
            continue
        row = [rule.label, rule.n_examples, _pair(rule.model_auc, rule.baseline_auc, False)]
        for level in rates:
            fig = rule.levels[level]  # a rule with figures has them at every flag rate
            row += [
                _pair(fig.model_sensitivity, fig.baseline_sensitivity, True),
                _pair(fig.model_ppv, fig.baseline_ppv, True),
            ]
        rows.append(row)
    return (
        _table(headers, rows)
        + "\n\nModel and rule flag the same share of the examples where the rule applies (the "
        "SRS rules need an SRS); the WAI-SR logistic is fitted on the development examples."
    )


def _terms_table(terms: Sequence[LinearTerm]) -> str:
    """The terms of a linear form: imputed value, weight on the original scale, clip."""
    return _table(
        ["Term", "Value used when missing", "Weight (original scale)", "Clipped to"],
        [
            (
                t.term,
                "n/a" if t.imputed_with is None else f"{t.imputed_with:.4g}",
                f"{t.weight:.6f}",
                "n/a" if t.low is None or t.high is None else f"{t.low:.4g} to {t.high:.4g}",
            )
            for t in terms
        ],
    )


def _calibration_text(spec: Specification) -> str:
    calibrator = spec.calibrator
    if calibrator.method == "sigmoid":
        return (
            f"Calibration: {calibrator.formula} with a = {calibrator.a or 0:.6f}, "
            f"b = {calibrator.b or 0:.6f}; probabilities are kept within "
            f"[{spec.probability_floor}, 1 - {spec.probability_floor}]."
        )
    knots = len(calibrator.knots_raw or [])
    return (
        f"Calibration: isotonic, {calibrator.formula} ({knots} knots, listed in "
        "metadata.json under specification.calibrator)."
    )


def _specification(meta: ModelMetadata) -> str:
    """The full model (TRIPOD+AI item 12): a linear formula with every weight, or settings."""
    spec = meta.specification
    if spec is None:
        return f"## Model specification\n\nThe specification is {NOT_RECORDED}."
    parts = ["## Model specification"]
    if spec.kind == "linear":
        parts.append(f"Linear predictor: {spec.formula}. Intercept {spec.intercept or 0:.6f}.")
        parts.append(_terms_table(spec.terms))
    else:
        parts.append(
            f"{spec.estimator or 'Tree ensemble'} with {_na(spec.trees)} trees; "
            + ", ".join(f"{k} = {v}" for k, v in spec.settings.items())
            + f". {spec.formula.capitalize()}."
        )
    parts.append(_calibration_text(spec))
    return "\n\n".join(parts)


def _spread(d: Spread | None) -> str:
    missing = None if d is None else d.missing
    if d is None or d.median is None:
        return f"never observed; missing {_pct(missing)}"
    return f"{d.median:.3g} ({d.p25 or 0:.3g}–{d.p75 or 0:.3g}); missing {_pct(missing)}"


def _predictor_table(meta: ModelMetadata) -> str:
    """Median (quartiles) and share missing per predictor, development vs evaluation rows."""
    if meta.predictors is None or not meta.predictors.development:
        return ""
    dev, ev = meta.predictors.development, meta.predictors.evaluation
    rows = [(name, _spread(d), _spread(ev.get(name))) for name, d in dev.items()]
    return "### Predictor distributions and missingness\n\n" + _table(
        ["Predictor", "Development: median (quartiles)", "Evaluation: median (quartiles)"], rows
    )


def _records_table(records: Sequence[Mapping[str, JsonValue]]) -> str:
    """A table of JSON objects, one row each, the columns the union of their keys."""
    headers = list(dict.fromkeys(k for r in records for k in r))

    def show(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return json.dumps(value) if isinstance(value, dict | list) else str(value)

    return _table(headers, [[show(r.get(h, "")) for h in headers] for r in records])


def _worlds(meta: ModelMetadata) -> str:
    if not meta.worlds:
        return ""
    # Each world's keys as written (a mixture names prefix and seed, the default world not).
    records = [w.model_dump(exclude_unset=True) for w in meta.worlds]
    return (
        "## Simulated worlds\n\n"
        f"{NETWORK_DEFAULT_STATEMENT} It was trained on {len(records)} simulated world(s):\n\n"
        + _records_table(records)
    )


def _feature_range(meta: ModelMetadata) -> str:
    ranges = meta.feature_range
    if not ranges:
        return ""
    unclipped = ("not clipped", "")
    rows = [(name, *(unclipped if bounds is None else bounds)) for name, bounds in ranges.items()]
    return (
        "### Feature range clip\n\nBefore scoring, each feature is clipped to the range seen "
        "in training:\n\n" + _table(["Feature", "Lowest", "Highest"], rows)
    )


def _open_science(meta: ModelMetadata) -> str:
    fields = meta.open_science or OpenScience()
    items = [
        (
            "Code availability",
            fields.code
            or "the training and serving code is in this repository (training/, service/); "
            f"the artifact is identified by its SHA-256 {meta.sha256}",
        ),
        (
            "Data availability",
            fields.data
            or (
                "simulated; reproducible from the simulator settings above"
                if _simulated(meta)
                else TO_FILL
            ),
        ),
        ("Funding", fields.funding or TO_FILL),
        ("Conflicts of interest", fields.conflicts or TO_FILL),
        ("Protocol or registration", fields.registration or TO_FILL),
    ]
    return "## Open science\n\n" + "\n".join(f"- **{k}:** {v}" for k, v in items)


def _quantitative(meta: ModelMetadata) -> str:
    figures = meta.metrics
    parts = ["## Quantitative analyses"]
    if figures.per_landmark:
        parts += [
            "### Calibration and performance by landmark session",
            "Calibration is reported per landmark first: a pooled slope can hide landmarks "
            "calibrated in opposite directions.",
            _landmark_table(figures.per_landmark),
        ]
    parts += [
        "### Pooled over landmarks (secondary)",
        _overall_table(figures.overall),
    ]
    baselines = _baselines_table(figures.baselines)
    if baselines:
        parts += ["### Against the clinic rules", baselines]
    subgroups = figures.subgroups
    for factor, rows in subgroups.items():
        parts += [f"### By {SUBGROUP_TITLES.get(factor, factor).lower()}", _subgroup_table(rows)]
    if subgroups:
        parts.append(
            "O/E is observed over expected dropouts (ideal 1); FNR is the share of dropouts the "
            'moderate tier misses. Figures needing both outcomes read "too few clients" for '
            f"groups with fewer than {MIN_CLIENTS_PER_CLASS} clients of either outcome; small "
            "groups have wide intervals, and overlapping intervals are not evidence that a "
            "group is served equally well."
        )
    return "\n\n".join(parts)


def _ethics() -> str:
    return """## Ethical considerations

- **Stigma:** a "high risk" label can colour how a clinician sees a client and can become a \
self-fulfilling prophecy. The flag is worded as a prompt to review the alliance, is shown \
only to the treating clinician and supervisor, and is not a label to be written into letters \
or shared with third parties.
- **Therapist-level data must not become staff surveillance:** therapist caseload is used \
only to check that the model works for clients of all therapists. Flags and metrics must not \
be aggregated per therapist to rank, appraise or manage staff; therapists differ in dropout \
for many reasons (Saxon et al. 2017), including the clients they are given.
- **Data minimisation:** the model uses routinely collected alliance and symptom scores, \
attendance dates, age and gender, and nothing else; no free text and no item-level \
responses. Process it under the service's HIPAA/GDPR basis for direct care, and keep \
scores only as long as the clinical record requires.
- **Noisy label:** some clients stop attending because they improved, so "dropout" is not \
always a bad outcome and a flag is not always a problem to fix.
- **Fairness:** check discrimination, calibration and the false-negative rate by group \
(Quantitative analyses) on local data; a group the model misses more often gets less of the \
attention the tool is meant to bring."""


def _caveats(meta: ModelMetadata) -> str:
    first = (
        f"{SIMULATED_STATEMENT} Validate it on the service's own data before any clinical use."
        if _simulated(meta)
        else "The model has no external validation: validate it on the service's own data and "
        "period before clinical use."
    )
    return f"""## Caveats and recommendations

- {first}
- **Limitations:** alliance predicts dropout only modestly (Sharf et al. 2010; alliance and \
outcome r = .28, Flückiger et al. 2018), so many dropouts will not be flagged and most \
flagged clients will complete; the ceiling of the alliance measures limits sensitivity; the \
dropout definition varies between services.
- **Thresholds are configurable:** choose them with the flag rate the team can act on \
(alert fatigue is real) and the sensitivity it needs; report.html shows both.
- **Updating:** monitor calibration (observed/expected and intercept) every quarter; \
recalibrate when it drifts, and retrain when case mix, instruments or the dropout definition \
change. Outcomes of flagged clients are changed by the clinicians' response, so later data \
understate the risk of flagged clients: account for this when retraining.
- Use the probability and the reason for the flag together; never act on the tier alone."""


TRIPOD_ITEMS = (
    ("Intended users and place in the care pathway", "Intended use", "intended-use"),
    ("Known health inequalities", "Factors", "factors"),
    ("Data sources and dates", "Training data", "training-data"),
    ("Outcome definition and timing", "Training data (Outcome)", "training-data"),
    (
        "Predictors and when they are measured (sessions 1-3)",
        "Training data (Predictors and timing); Model details",
        "training-data",
    ),
    ("Sample size", "Training data; Evaluation data", "training-data"),
    ("Missing data", "Training data (Missing data)", "training-data"),
    (
        "Analysis, including class imbalance and tuning",
        "Training data (Class imbalance and tuning); Model details (Model selection)",
        "training-data",
    ),
    (
        "Discrimination, calibration and clinical utility with intervals",
        "Metrics; Quantitative analyses; decision curve in report.html",
        "quantitative-analyses",
    ),
    (
        "Fairness across subgroups",
        "Quantitative analyses; Ethical considerations",
        "quantitative-analyses",
    ),
    ("Model output and thresholds", "Model details (Output); Metrics", "metrics"),
    ("Updating", "Caveats and recommendations (Updating)", "caveats-and-recommendations"),
    ("Full model specification", "Model specification", "model-specification"),
    (
        "Comparison with existing rules",
        "Quantitative analyses (Against the clinic rules)",
        "quantitative-analyses",
    ),
    ("Funding, conflicts, code and data availability", "Open science", "open-science"),
    ("Limitations", "Caveats and recommendations (Limitations)", "caveats-and-recommendations"),
    ("External validation", "Statement at the top; Evaluation data", "evaluation-data"),
)


def _tripod(meta: ModelMetadata) -> str:
    items = [
        ("Updating", "Local update", "local-update")
        if item == "Updating" and meta.lineage is not None
        else (item, where, anchor)
        for item, where, anchor in TRIPOD_ITEMS
    ]
    rows = [(item, f"[{where}](#{anchor})") for item, where, anchor in items]
    statement = (
        SIMULATED_STATEMENT if _simulated(meta) else "This model has no external validation."
    )
    return (
        "## TRIPOD+AI checklist\n\nWhere this card answers the TRIPOD+AI items "
        "(Collins et al., BMJ 2024) that apply to this model.\n\n"
        + _table(["Item", "Where answered"], rows)
        + f"\n\n{statement}"
    )


def render_model_card(meta: ModelMetadata) -> str:
    """The model card as markdown.

    Args:
        meta: the model's metadata as written at train or update time, typed.
    """
    sections = [
        _title(meta),
        _model_details(meta),
        _specification(meta),
        *([_local_update(meta, meta.update)] if meta.update is not None else []),
        _intended_use(meta),
        _factors(meta),
        _metrics_section(meta),
        _evaluation_data(meta),
        _training_data(meta),
        _worlds(meta),
        "\n\n".join(p for p in (_predictor_table(meta), _feature_range(meta)) if p),
        _quantitative(meta),
        _ethics(),
        _caveats(meta),
        _open_science(meta),
        _tripod(meta),
        "## References\n\n" + "\n".join(f"- {ref}" for ref in REFERENCES),
    ]
    return "\n\n".join(sections) + "\n"
