"""The comparison page: one self-contained HTML document, like the evaluation report.

It loads nothing (inline CSS and SVG from training/report.py's helpers), so it opens on a
clinic workstation without network access. The verdict comes first, in one line, then the
paired differences, calibration per landmark, the two models beside the clinic rules,
net benefit at the thresholds, flag rate and sensitivity per level, and the subgroups.
"""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np

from training.artifact_schema import verdict_kind
from training.compare import Comparison, Difference, Scored
from training.evaluation import format_metric
from training.report import (
    COLORS,
    CSS,
    SUBGROUP_TITLES,
    SVG_HASH_SALT,
    _counts_by_threshold,
    _esc,
    _figure,
    _new_axes,
    _table,
    _thin,
)
from training.vocabulary import FLAG_LEVELS

CHALLENGER_COLOR = "#2e7d32"
VERDICT_CSS = """
.verdict{border:3px solid #1f5fa8;background:#eef4fb;padding:.8rem 1.1rem;border-radius:6px;
font-size:1.1rem;margin:1rem 0}.verdict.worse{border-color:#b00020;background:#fdecee}
.verdict.better{border-color:#2e7d32;background:#edf7ee}
"""


def _num(x: float | None, digits: int = 3, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.{digits}f}"


def _difference(d: Difference, digits: int = 3) -> str:
    if d.estimate is None:
        return "n/a"
    if d.low is None or d.high is None:
        return f"{d.estimate:+.{digits}f}"
    return f"{d.estimate:+.{digits}f} (95% CI {d.low:+.{digits}f} to {d.high:+.{digits}f})"


def _verdict(c: Comparison) -> str:
    kind = verdict_kind(c.discrimination_verdict, c.calibration_verdict)
    return (
        f'<section class="verdict {kind}" id="verdict" role="status"><strong>'
        f"{_esc(c.verdict_line())}</strong></section>"
    )


def _models(c: Comparison) -> str:
    def line(role: str, s: Scored) -> str:
        how = (
            "scored out of fold: it was updated on these clients"
            if s.out_of_fold
            else "scored as it is"
        )
        return f"<li>{_esc(role)}: <code>{_esc(s.version)}</code> ({_esc(how)})</li>"

    return (
        f"<ul>{line('Champion', c.champion)}{line('Challenger', c.challenger)}</ul>"
        f"<p>{c.n_clients:,} labelled clients, {c.n_examples:,} landmark examples "
        f"({_num(c.prevalence, pct=True)} of them of clients who dropped out). Paired "
        "differences are clustered by "
        f"{_esc(c.unit)} ({c.clusters:,} clusters: a client's landmark rows share one "
        "outcome); each model's own intervals are bootstrapped as in its report.</p>"
    )


def _differences(c: Comparison) -> str:
    rows = [
        ("AUC (discrimination)", c.auc, "higher is better", 3),
        ("Brier score", c.brier, "lower is better", 4),
        ("Log loss", c.log_loss, "lower is better", 4),
        (
            "Calibration error (nats per example)",
            c.calibration,
            "lower is better; 0: recalibrating per landmark would not help",
            4,
        ),
    ]
    table = _table(
        ["Measure", "Champion", "Challenger", "Challenger − champion", "How it is computed"],
        [
            (
                _esc(name),
                _esc(_num(d.champion, digits)),
                _esc(_num(d.challenger, digits)),
                _esc(_difference(d, digits)),
                _esc(f"{d.method}; {note}"),
            )
            for name, d, note, digits in rows
        ],
    )
    return f'<section id="differences"><h2>Paired differences</h2>{table}</section>'


def _per_landmark(c: Comparison) -> str:
    rows = []
    for k, d in c.auc_per_landmark.items():
        ra, rb = c.champion.results.landmark(k), c.challenger.results.landmark(k)
        rows.append(
            (
                _esc(f"After session {k}"),
                _esc("n/a" if ra is None else ra.n),
                _esc(_difference(d)),
                _esc(format_metric(None if ra is None else ra.calibration_intercept, digits=2)),
                _esc(format_metric(None if rb is None else rb.calibration_intercept, digits=2)),
                _esc(format_metric(None if ra is None else ra.calibration_slope, digits=2)),
                _esc(format_metric(None if rb is None else rb.calibration_slope, digits=2)),
            )
        )
    table = _table(
        [
            "Landmark",
            "Examples",
            "AUC: challenger − champion",
            "Intercept, champion",
            "Intercept, challenger",
            "Slope, champion",
            "Slope, challenger",
        ],
        rows,
    )
    return (
        '<section id="landmarks"><h2>Per landmark</h2><p>Calibration intercept (ideal 0) and '
        "slope (ideal 1) with 95% cluster-bootstrap intervals.</p>"
        f"{table}</section>"
    )


def _columns(c: Comparison) -> str:
    """The two models with the clinic rules as third and fourth columns."""
    a, b = c.champion.results.overall, c.challenger.results.overall
    rules = c.rules
    head = ["", "Champion", "Challenger", *(r.label for r in rules)]
    rows = [
        ("Examples scored", f"{c.n_examples:,}", f"{c.n_examples:,}", *(f"{r.n:,}" for r in rules)),
        ("AUC", format_metric(a.auc), format_metric(b.auc), *(_num(r.auc) for r in rules)),
        (
            "Brier score",
            format_metric(a.brier),
            format_metric(b.brier),
            *(_num(r.brier) for r in rules),
        ),
        (
            "Log loss",
            format_metric(a.log_loss),
            format_metric(b.log_loss),
            *(_num(r.log_loss) for r in rules),
        ),
    ]
    for level in FLAG_LEVELS:
        rows.append(
            (
                f"Sensitivity, {level} level",
                format_metric(a.level(level).sensitivity, pct=True),
                format_metric(b.level(level).sensitivity, pct=True),
                *(_num(r.sensitivity_at.get(level), pct=True) for r in rules),
            )
        )
    applied = [
        "n/a"
        if not r.as_applied
        else f"flags {_num(r.as_applied['flag_rate'], pct=True)}, sensitivity "
        f"{_num(r.as_applied['sensitivity'], pct=True)}"
        for r in rules
    ]
    rows.append(("The rule as the clinic applies it", "", "", *applied))
    table = _table(head, [tuple(_esc(x) for x in row) for row in rows])
    return (
        '<section id="rules"><h2>Against the clinic rules</h2><p>The rules are scored on the '
        "rows where they apply (the SRS rule needs an SRS, the WAI-SR logistic a WAI-SR; the "
        "logistic is fitted on these rows). Their sensitivity is at the champion's flag rate "
        "of each level, so it compares like with like.</p>"
        f"{table}</section>"
    )


def _levels(c: Comparison) -> str:
    rows = []
    for role, s in (("Champion", c.champion), ("Challenger", c.challenger)):
        for level in FLAG_LEVELS:
            cut = s.thresholds.of(level)
            figures = s.results.overall.level(level)
            rows.append(
                (
                    _esc(f"{role}, {level}"),
                    _esc(f"p ≥ {cut:.3f}"),
                    _esc(format_metric(figures.flag_rate, pct=True)),
                    _esc(format_metric(figures.sensitivity, pct=True)),
                    _esc(format_metric(figures.ppv, pct=True)),
                )
            )
    levels = _table(["Model and level", "Threshold", "Flagged", "Sensitivity", "PPV"], rows)
    cuts = sorted(next(iter(c.net_benefit.values())))
    benefit = _table(
        ["Net benefit at threshold", *(f"{t:.3f}" for t in cuts)],
        [
            (_esc(name), *(_esc(f"{values[t]:.4f}") for t in cuts))
            for name, values in c.net_benefit.items()
        ],
    )
    return (
        '<section id="levels"><h2>Risk levels and net benefit</h2>'
        f"{levels}<p>Net benefit (Vickers & Elkin 2006) at each model's thresholds: true "
        "positives minus false positives weighted by the odds of the threshold, per "
        f"example.</p>{benefit}</section>"
    )


def _subgroups(c: Comparison) -> str:
    parts = []
    factors: dict[str, list[Any]] = {}
    for row in c.subgroups:
        factors.setdefault(row.factor, []).append(row)
    for factor, rows in factors.items():
        title = SUBGROUP_TITLES.get(factor, (factor, ""))[0]
        table = _table(
            [
                "Group",
                "Clients",
                "AUC, champion",
                "AUC, challenger",
                "O/E, champion",
                "O/E, challenger",
            ],
            [
                (
                    _esc(r.group),
                    _esc(r.n_clients),
                    _esc(_num(r.champion.auc)),
                    _esc(_num(r.challenger.auc)),
                    _esc(_num(r.champion.observed_expected, 2)),
                    _esc(_num(r.challenger.observed_expected, 2)),
                )
                for r in rows
            ],
        )
        parts.append(f"<h3>{_esc(title)}</h3>{table}")
    return (
        '<section id="subgroups"><h2>Subgroups, both models</h2><p>Point estimates: '
        "observed / expected dropouts (ideal 1) and AUC; the promotion rule checks these "
        "against its margins (docs/updating.md). n/a: too few clients of an outcome.</p>"
        f"{''.join(parts)}</section>"
    )


def _plots(c: Comparison) -> str:
    y = np.asarray(c.eval_data.y, dtype=np.float64)
    fig, ax = _new_axes("ROC curves", "False-positive rate", "Sensitivity")
    for label, s, color in (
        ("Champion", c.champion, COLORS["model"]),
        ("Challenger", c.challenger, CHALLENGER_COLOR),
    ):
        tp, fp = _counts_by_threshold(y, s.p)
        tpr, fpr = _thin(tp / max(tp[-1], 1.0), fp / max(fp[-1], 1.0))
        ax.plot(fpr, tpr, color=color, label=label)
    ax.plot([0, 1], [0, 1], color=COLORS["none"], linestyle="--", label="Chance")
    ax.legend(loc="lower right")
    roc = _figure(fig, "roc", "ROC curves of both models on the same rows.")
    fig, ax = _new_axes("Calibration (deciles of predicted risk)", "Predicted risk", "Observed")
    top = 0.05
    for label, s, color in (
        ("Champion", c.champion, COLORS["model"]),
        ("Challenger", c.challenger, CHALLENGER_COLOR),
    ):
        order = np.argsort(s.p, kind="stable")
        deciles = [idx for idx in np.array_split(order, 10) if idx.size]
        mean_p = np.array([s.p[idx].mean() for idx in deciles])
        observed = np.array([y[idx].mean() for idx in deciles])
        top = max(top, float(mean_p.max()), float(observed.max()))
        ax.plot(mean_p, observed, marker="o", color=color, label=label)
    ax.plot([0, top * 1.1], [0, top * 1.1], color=COLORS["none"], linestyle="--", label="Perfect")
    ax.legend(loc="lower right")
    cal = _figure(
        fig, "cal", "Observed dropout against mean predicted risk, deciles of each model."
    )
    return f'<section><h2>Curves</h2><div class="figures">{roc}{cal}</div></section>'


def render_comparison(c: Comparison) -> str:
    """The comparison as one self-contained HTML document."""
    title = f"Comparison: {c.challenger.version} against {c.champion.version}"
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": SVG_HASH_SALT, "font.size": 9.0}
    ):
        plots = _plots(c)
    body = "".join(
        [
            f"<header><h1>{_esc(title)}</h1></header>",
            _verdict(c),
            _models(c),
            _differences(c),
            _per_landmark(c),
            _columns(c),
            _levels(c),
            plots,
            _subgroups(c),
            '<section id="method"><h2>How to read this comparison</h2><p>Better or worse '
            "means the 95% interval of the difference lies wholly on one side of zero; "
            "otherwise the two are not distinguishable on these clients. See "
            "docs/updating.md.</p></section>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}{VERDICT_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
