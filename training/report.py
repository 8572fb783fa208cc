"""Self-contained HTML evaluation report: numbers from evaluate(), plots from the scored rows.

The report is opened on clinical workstations that may have no internet access and must not
leak anything when opened, so it loads nothing: plots are inline SVG with namespace URLs and
metadata stripped, and the CSS is inline. Figures are built with matplotlib's object API
(`Figure`, no pyplot), so no global backend or figure registry is touched and nothing needs
closing: rendering is safe inside a server process.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from training.artifact_schema import ModelMetadata
from training.comparison import baseline_warnings
from training.evaluation import MIN_CLIENTS_PER_CLASS, TOO_FEW, EvalData, net_benefit
from training.evaluation import format_metric as _fmt
from training.figures import Evaluation, LandmarkFigures, RuleFigures, SubgroupFigures
from training.vocabulary import FLAG_LEVELS, Thresholds, flag_label

FloatArray = npt.NDArray[np.float64]

MAX_CURVE_POINTS = 400  # enough for a smooth curve, keeps each SVG small
SMALL_GROUP_CLIENTS = 100
DECISION_THRESHOLDS = np.round(np.arange(0.05, 0.601, 0.01), 2)
SVG_HASH_SALT = "dropout-risk-report"  # fixed ids: the same inputs give the same HTML bytes
COLORS = {"model": "#1f5fa8", "all": "#b8562a", "none": "#555555", "dropout": "#b8562a"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5rem 2rem 3rem;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;margin-top:2.2rem;
border-bottom:2px solid #e3e6ea;padding-bottom:.2rem}h3{font-size:1.05rem;margin-top:1.4rem}
.banner{border:3px solid #b00020;background:#fdecee;color:#5c0010;padding:1rem 1.2rem;
border-radius:6px;font-size:1.05rem;margin:1rem 0}
.banner strong{display:block;font-size:1.2rem;margin-bottom:.3rem}
.meta{color:#555;font-size:.92rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem;width:100%}
th,td{border:1px solid #d5d9de;padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:#eef1f4}tbody th{font-weight:600;background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.note{color:#444;font-size:.88rem}.small{color:#8a4b00;font-size:.8rem}
.figures{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;flex:1 1 460px;max-width:520px}
figure svg{width:100%;height:auto}figure svg *{stroke-linejoin:round;stroke-linecap:butt}
figcaption{font-size:.85rem;color:#444}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(x: float | None, pct: bool, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> str:
    """HTML table; cells are pre-escaped strings, the first column is a row header."""
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    head = "".join(f'<th scope="col">{_esc(h)}</th>' for h in headers)
    body = "".join(
        f'<tr><th scope="row">{row[0]}</th>'
        + "".join(f'<td class="num">{cell}</td>' for cell in row[1:])
        + "</tr>"
        for row in rows
    )
    table = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _svg(fig: Figure, prefix: str, label: str) -> str:
    """Inline SVG of a figure; ids prefixed so several plots can share one page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>|<style[^>]*>.*?</style>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{_esc(label)}" ', 1)


def _figure(fig: Figure, prefix: str, caption: str) -> str:
    svg = _svg(fig, prefix, caption)
    return f"<figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>"


def _new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(5.0, 3.8))
    # fixed margins: a tight bounding box would draw every figure twice
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.92)
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _thin(*arrays: FloatArray) -> list[FloatArray]:
    """At most MAX_CURVE_POINTS evenly spaced points of each curve, keeping both ends."""
    n = arrays[0].size
    if n <= MAX_CURVE_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(np.intp))
    return [a[keep] for a in arrays]


def _counts_by_threshold(y: FloatArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
    """True and false positives when flagging p >= each distinct score, highest first."""
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]
    tp = np.cumsum(ys)[last_of_tie]
    fp = np.cumsum(1.0 - ys)[last_of_tie]
    return np.r_[0.0, tp], np.r_[0.0, fp]


def _roc_plot(y: FloatArray, p: FloatArray, results: Evaluation) -> str:
    tp, fp = _counts_by_threshold(y, p)
    tpr, fpr = _thin(tp / max(tp[-1], 1.0), fp / max(fp[-1], 1.0))
    fig, ax = _new_axes("ROC curve", "False-positive rate (completers flagged)", "Sensitivity")
    ax.plot(fpr, tpr, color=COLORS["model"], label="Model")
    ax.plot([0, 1], [0, 1], color=COLORS["none"], linestyle="--", label="Chance")
    ax.legend(loc="lower right")
    auc_text = _fmt(results.overall.auc)
    return _figure(fig, "roc", f"ROC curve. AUC {auc_text} (95% CI).")


def _pr_plot(y: FloatArray, p: FloatArray, results: Evaluation) -> str:
    tp, fp = _counts_by_threshold(y, p)
    recall, precision = _thin(tp[1:] / max(tp[-1], 1.0), tp[1:] / (tp[1:] + fp[1:]))
    fig, ax = _new_axes("Precision-recall curve", "Sensitivity (recall)", "PPV (precision)")
    ax.plot(recall, precision, color=COLORS["model"], label="Model")
    prevalence = results.prevalence
    ax.axhline(prevalence, color=COLORS["none"], linestyle="--", label="Dropout rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    return _figure(fig, "pr", "Precision-recall curve; the dashed line is the dropout rate.")


def _calibration_plot(y: FloatArray, p: FloatArray, results: Evaluation) -> str:
    """Observed dropout rate against mean predicted risk in deciles of p."""
    order = np.argsort(p, kind="stable")
    deciles = [idx for idx in np.array_split(order, 10) if idx.size]
    mean_p = np.array([p[idx].mean() for idx in deciles])
    observed = np.array([y[idx].mean() for idx in deciles])
    fig, ax = _new_axes("Calibration (deciles of predicted risk)", "Predicted risk", "Observed")
    top = float(max(mean_p.max(), observed.max(), 0.05)) * 1.1
    ax.plot([0, top], [0, top], color=COLORS["none"], linestyle="--", label="Perfect calibration")
    ax.plot(mean_p, observed, marker="o", color=COLORS["model"], label="Model")
    slope = _fmt(results.overall.calibration_slope, digits=2)
    intercept = _fmt(results.overall.calibration_intercept, digits=2)
    ax.text(
        0.03,
        0.97,
        f"slope {slope}\nintercept {intercept}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend(loc="lower right")
    caption = f"Calibration: slope {slope}, intercept {intercept} (95% CI; ideal 1 and 0)."
    return _figure(fig, "cal", caption)


def _decision_plot(y: FloatArray, p: FloatArray, thresholds: Thresholds) -> str:
    t = DECISION_THRESHOLDS
    model = net_benefit(y, p, t)
    treat_all = net_benefit(y, np.ones_like(p), t)
    fig, ax = _new_axes("Decision curve", "Threshold probability", "Net benefit")
    ax.plot(t, model, color=COLORS["model"], label="Model")
    ax.plot(t, treat_all, color=COLORS["all"], label="Treat all (flag everyone)")
    ax.axhline(0.0, color=COLORS["none"], label="Treat none")
    _threshold_lines(ax, thresholds)
    ax.set_ylim(-0.05, max(float(y.mean()), float(model.max())) * 1.15 + 0.01)
    ax.legend(loc="upper right", fontsize=7)
    return _figure(
        fig,
        "dca",
        "Net benefit of flagging at each threshold probability "
        "(0.05–0.60), against flagging everyone or no one.",
    )


def _threshold_lines(ax: Axes, thresholds: Thresholds) -> None:
    for name, style in zip(FLAG_LEVELS, (":", "-."), strict=True):
        ax.axvline(
            thresholds.of(name),
            color="#333333",
            linestyle=style,
            linewidth=1,
            label=f"{name} threshold",
        )


def _histogram_plot(y: FloatArray, p: FloatArray, thresholds: Thresholds) -> str:
    bins = np.linspace(0.0, 1.0, 51)
    fig, ax = _new_axes("Predicted risk by outcome", "Predicted risk", "Density")
    for label, mask, color in (
        ("Completed", y == 0, COLORS["model"]),
        ("Dropout", y == 1, COLORS["dropout"]),
    ):
        if mask.any():
            ax.hist(
                p[mask],
                bins=bins.tolist(),
                density=True,
                histtype="step",
                linewidth=1.5,
                color=color,
                label=f"{label} (n={int(mask.sum())})",
            )
    _threshold_lines(ax, thresholds)
    ax.set_xlim(0, min(1.0, float(p.max()) + 0.1))
    ax.legend(loc="upper right", fontsize=7)
    return _figure(
        fig,
        "hist",
        "Distribution of predicted risk for dropouts and completers, with the two thresholds.",
    )


def _banner(meta: ModelMetadata) -> str:
    training = meta.training_data
    if training is None or not training.simulated:
        return ""
    facts = []
    if training.n_clients is not None:
        facts.append(f"{training.n_clients} clients")
    if training.dropout_rate is not None:
        facts.append(f"dropout rate {_number(training.dropout_rate, True)}")
    detail = f" ({_esc(', '.join(facts))})" if facts else ""
    return (
        '<section class="banner" role="alert"><strong>Simulated training data</strong>'
        f"This model was trained on a simulated cohort{detail}. It has not been validated on "
        "real patients; there is no external validation. Use it for testing and demonstration "
        "only, not for decisions about care.</section>"
    )


def _header(results: Evaluation, meta: ModelMetadata, title: str) -> str:
    lineage = meta.lineage
    fields = [
        ("Model version", meta.version),
        ("Updated from", None if lineage is None else lineage.parent),
        ("Update method", None if lineage is None else lineage.method),
        ("Created", meta.created_at),
        ("Estimator", meta.estimator),
        ("Calibration", meta.calibration),
        ("Landmark sessions", ", ".join(str(k) for k in meta.landmarks)),
    ]
    meta_line = " · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in fields if v not in (None, ""))
    cohort = (
        f"Evaluation cohort: {results.n_clients} clients, "
        f"{results.n_examples} scored examples (one per client and landmark "
        f"session), dropout rate {_number(results.prevalence, True)}."
    )
    return (
        f'<header><h1>{_esc(title)}</h1><p class="meta">{meta_line}</p>'
        f"<p>{_esc(cohort)}</p></header>"
    )


def _verdict(results: Evaluation) -> str:
    """The first lines of the report when a clinic rule does as well as the model."""
    lines = baseline_warnings(results)
    if not lines:
        return ""
    items = "".join(f"<li>{_esc(line)}</li>" for line in lines)
    return (
        '<section class="banner" id="verdict" role="alert"><strong>The model does not beat '
        f"a rule the clinic can apply without it</strong><ul>{items}</ul>See "
        '<a href="#baselines">Against the clinic rules</a>.</section>'
    )


def _calibration_rows(results: Evaluation) -> list[tuple[str, str, str]]:
    """Calibration per landmark first (a pooled slope can hide opposite errors), pooled last."""
    rows = []
    for row in results.per_landmark:
        k = row.landmark
        rows += [
            (
                f"Calibration slope after session {k}",
                _fmt(row.calibration_slope, digits=2),
                "1 is ideal; below 1 means predictions are too extreme",
            ),
            (
                f"Calibration intercept after session {k}",
                _fmt(row.calibration_intercept, digits=2),
                "0 is ideal; above 0 means risk is under-predicted on average",
            ),
        ]
    overall = results.overall
    pooled = (
        f"slope {_fmt(overall.calibration_slope, digits=2)}, intercept "
        f"{_fmt(overall.calibration_intercept, digits=2)}"
    )
    rows.append(
        (
            "Calibration pooled over landmarks (secondary)",
            pooled,
            "pooled figures can hide landmarks calibrated in opposite directions",
        )
    )
    return rows


def _headline(results: Evaluation) -> str:
    overall = results.overall
    prevalence = results.prevalence
    base_brier = f"; {prevalence * (1 - prevalence):.3f} if everyone got the dropout rate"
    rows = [
        (
            "AUC (discrimination)",
            _fmt(overall.auc),
            "0.5 is chance; 0.60–0.72 is realistic for routine care",
        ),
        ("Brier score", _fmt(overall.brier), f"lower is better{base_brier}"),
        ("Log loss", _fmt(overall.log_loss), "lower is better"),
        *_calibration_rows(results),
    ]
    table = _table(
        ["Metric", "Estimate (95% CI)", "How to read it"],
        [(_esc(a), _esc(b), _esc(c)) for a, b, c in rows],
    )
    return f'<section id="headline"><h2>Headline metrics</h2>{table}</section>'


def _pct_or_na(x: float | None) -> str:
    return _esc(_number(x, True))


def _baseline_row(rule: RuleFigures, rates: Mapping[str, float]) -> tuple[str, ...]:
    def auc(x: float | None) -> str:
        return _esc(_number(x, False))

    cells = [_esc(rule.label), _esc(f"{rule.n_examples:,}")]
    if rule.too_few:
        return (*cells, *[_esc(TOO_FEW)] * (2 + 2 * len(rates)))
    cells.append(f"{auc(rule.model_auc)} vs {auc(rule.baseline_auc)}")
    for level in rates:
        fig = rule.levels[level]  # a rule with figures has them at every flag rate
        cells += [
            f"{_pct_or_na(fig.model_sensitivity)} vs {_pct_or_na(fig.baseline_sensitivity)}",
            f"{_pct_or_na(fig.model_ppv)} vs {_pct_or_na(fig.baseline_ppv)}",
        ]
    own = rule.own_cutoff
    cells.append(
        "—"
        if own is None
        else f"flags {_pct_or_na(own.flag_rate)}, sensitivity "
        f"{_pct_or_na(own.sensitivity)}, PPV {_pct_or_na(own.ppv)}"
    )
    return tuple(cells)


def _baselines_section(results: Evaluation) -> str:
    comparison = results.baselines
    if comparison is None or not comparison.rules:
        return ""
    rules, rates = comparison.rules, comparison.flag_rates
    headers = ["Rule", "Examples where it applies", "AUC: model vs rule"]
    for level, rate in rates.items():
        headers += [
            f"Sensitivity at the {level} flag rate ({_number(rate, True)})",
            f"PPV at the {level} flag rate",
        ]
    headers.append("The rule as applied (SRS below 36)")
    table = _table(headers, [_baseline_row(rule, rates) for rule in rules])
    return (
        '<section id="baselines"><h2>Against the clinic rules</h2>'
        "<p>Each rule is scored on the same clients and landmark rows as the model, where it "
        "can apply (the SRS rules need an SRS). Model and rule flag the same share of those "
        "rows, the model's flag rate at its thresholds, so sensitivity and PPV compare like "
        "with like. The logistic on mean WAI-SR is fitted on the development rows (in "
        "<code>dropout-risk evaluate</code>: on the evaluated rows).</p>"
        f"{table}</section>"
    )


def _thresholds_section(results: Evaluation, meta: ModelMetadata) -> str:
    rows = []
    for name in FLAG_LEVELS:
        level = results.overall.level(name)
        rows.append(
            (
                _esc(flag_label(name)),
                f"p ≥ {meta.thresholds.cutoffs.of(name):.2f}",
                _esc(_fmt(level.flag_rate, pct=True)),
                _esc(_fmt(level.sensitivity, pct=True)),
                _esc(_fmt(level.ppv, pct=True)),
            )
        )
    table = _table(
        [
            "Tier",
            "Threshold",
            "Examples flagged",
            "Sensitivity (dropouts flagged)",
            "PPV (flagged who drop out)",
        ],
        rows,
    )
    return (
        '<section id="thresholds"><h2>Risk tiers and what they flag</h2>'
        "<p>Rates are per scored example (client × landmark session), with 95% intervals. "
        "A flag prompts the clinician to review the alliance; it is not a diagnosis.</p>"
        f"{table}</section>"
    )


def _landmark_row(row: LandmarkFigures) -> tuple[str, ...]:
    return (
        _esc(f"After session {row.landmark}"),
        _esc(row.n),
        _esc(_number(row.prevalence, True)),
        _esc(_fmt(row.auc)),
        _esc(_fmt(row.brier)),
        _esc(_fmt(row.calibration_slope, digits=2)),
        _esc(_fmt(row.calibration_intercept, digits=2)),
        _esc(_fmt(row.high.flag_rate, pct=True)),
        _esc(_fmt(row.high.sensitivity, pct=True)),
    )


def _landmark_section(results: Evaluation) -> str:
    rows = [_landmark_row(row) for row in results.per_landmark]
    table = _table(
        [
            "Landmark",
            "Examples",
            "Dropout rate",
            "AUC",
            "Brier",
            "Calibration slope",
            "Calibration intercept",
            "High flag rate",
            "High sensitivity",
        ],
        rows,
    )
    return f'<section id="landmarks"><h2>Performance per landmark session</h2>{table}</section>'


SUBGROUP_TITLES = {
    "gender": ("Gender", ""),
    "age_band": ("Age band", ""),
    "therapist_volume": (
        "Therapist caseload in the cohort",
        "Reported only to check that the model works for clients of therapists with small and "
        "large caseloads. It must not be used to rate or monitor individual therapists.",
    ),
    "instruments": (
        "Instrument set",
        "Which measures the client had by the landmark session (from the missingness "
        "features): sites differ in what they collect, and so may the model's performance.",
    ),
}


def _subgroup_row(row: SubgroupFigures) -> tuple[str, ...]:
    small = row.n_clients < SMALL_GROUP_CLIENTS
    group = _esc(row.group)
    if small:
        group += ' <span class="small">(small group: wide intervals)</span>'
    return (
        group,
        _esc(row.n),
        _esc(row.n_clients),
        _esc(_number(row.prevalence, True)),
        _esc(_fmt(row.auc)),
        _esc(_fmt(row.observed_expected, digits=2)),
        _esc(_fmt(row.calibration_intercept, digits=2)),
        _esc(_fmt(row.moderate.flag_rate, pct=True)),
        _esc(_fmt(row.high.flag_rate, pct=True)),
        _esc(_fmt(row.moderate.false_negative_rate, pct=True)),
    )


def _subgroup_section(results: Evaluation) -> str:
    headers = [
        "Group",
        "Examples",
        "Clients",
        "Dropout rate",
        "AUC",
        "Observed / expected",
        "Calibration intercept",
        "Flagged ≥ moderate",
        "Flagged high",
        "Dropouts missed at moderate (FNR)",
    ]
    parts = []
    for factor, rows in results.subgroups.items():
        title, note = SUBGROUP_TITLES.get(factor, (factor, ""))
        note_html = f'<p class="note">{_esc(note)}</p>' if note else ""
        table = _table(headers, [_subgroup_row(r) for r in rows])
        parts.append(f"<h3>{_esc(title)}</h3>{note_html}{table}")
    return (
        '<section id="subgroups"><h2>Fairness: performance by subgroup</h2>'
        "<p>Discrimination, calibration (observed/expected dropouts, ideal 1; intercept, ideal 0), "
        "flag rates and the share of dropouts the moderate tier misses, per group. Figures "
        'that need both outcomes read "too few clients" for groups with fewer than '
        f"{MIN_CLIENTS_PER_CLASS} clients who dropped out or {MIN_CLIENTS_PER_CLASS} who "
        "completed.</p>"
        f"{''.join(parts)}</section>"
    )


def _method_section(results: Evaluation, meta: ModelMetadata) -> str:
    boot = results.bootstrap
    evaluation = meta.update.evaluation if meta.update is not None else None
    out_of_fold = (
        f"<li>This is a local update: every figure is {_esc(evaluation)}.</li>"
        if evaluation
        else ""
    )
    replicates = boot.replicates
    clusters = "n/a" if boot.clusters is None else boot.clusters
    unit = (
        f"therapists ({clusters} clusters: all landmark rows of all clients "
        "of a therapist move together, since clients of one therapist share its effect on "
        "dropout; a new clinic brings new therapists)"
        if boot.unit == "therapist"
        else "clients (the cohort names no therapists), because one client contributes an "
        "example at each landmark session"
    )
    return (
        f'<section id="method"><h2>How to read this report</h2><ul>{out_of_fold}'
        f"<li>95% intervals: percentile cluster bootstrap ({_esc(replicates)} replicates) over "
        f"{_esc(unit)}.</li>"
        "<li>Intended use: decision support for psychotherapy clinicians after sessions 1–3, "
        "to prompt attention to the therapeutic alliance. It is not a diagnosis and not a "
        "verdict on the client or the therapist.</li>"
        "<li>The outcome is noisy: some clients who stop early do so because they improved.</li>"
        "<li>Small subgroups have wide intervals; differences within the intervals are not "
        "evidence of unfairness, nor of its absence.</li></ul></section>"
    )


def _plots(data: EvalData, results: Evaluation, meta: ModelMetadata) -> str:
    y = np.asarray(data.y, dtype=np.float64)
    p = np.asarray(data.p, dtype=np.float64)
    thresholds = meta.thresholds.cutoffs
    if y.size == 0:
        return ""
    figures: list[tuple[str, Callable[[], str]]] = [
        ("Discrimination", lambda: _roc_plot(y, p, results) + _pr_plot(y, p, results)),
        (
            "Calibration and risk distribution",
            lambda: _calibration_plot(y, p, results) + _histogram_plot(y, p, thresholds),
        ),
        ("Clinical utility", lambda: _decision_plot(y, p, thresholds)),
    ]
    # text stays text (smaller, searchable); the browser's sans-serif font renders it
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": SVG_HASH_SALT, "font.size": 9.0}
    ):
        return "".join(
            f'<section><h2>{_esc(name)}</h2><div class="figures">{make()}</div></section>'
            for name, make in figures
        )


def _warnings_section(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{_esc(line)}</li>" for line in warnings)
    return f'<section class="warnings"><h2>Input warnings</h2><ul>{items}</ul></section>'


def render_report(
    data: EvalData,
    results: Evaluation,
    meta: ModelMetadata,
    title: str | None = None,
    warnings: Sequence[str] = (),
) -> str:
    """The evaluation report as one self-contained HTML document.

    Args:
        data: the scored rows, used for the plots.
        results: the figures `training.evaluation.evaluate` gives on the same rows.
        meta: the model's metadata, typed (its version, thresholds, training data, ...).
        title: page title; defaults to the model version's evaluation report.
        warnings: input-shift warnings (training.input_shift), shown under the banner.
    """
    title = title or f"Dropout-risk model {meta.version}: evaluation report"
    body = "".join(
        [
            _header(results, meta, title),
            _verdict(results),
            _banner(meta),
            _warnings_section(warnings),
            _headline(results),
            _baselines_section(results),
            _thresholds_section(results, meta),
            _plots(data, results, meta),
            _landmark_section(results),
            _subgroup_section(results),
            _method_section(results, meta),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
