"""`dropout-risk evaluate`: the training report, for any labelled cohort and model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from training.baselines import fit_baselines
from training.comparison import evaluate_with_baselines
from training.contract import Cohort
from training.figures import Evaluation
from training.input_shift import shift_warnings, tally
from training.publish import published
from training.registry import Registry
from training.report import render_report
from training.train import labelled_examples


def evaluate_cohort(
    models_dir: Path,
    version: str,
    cohort: Cohort,
    report_path: Path,
    step: Callable[[str], None],
    n_boot: int = 200,
    warnings: list[str] | None = None,
) -> Evaluation:
    """Score every landmark example of the cohort and write the report; returns metrics.
    Input-shift warnings (training.input_shift) are added to `warnings` and the report."""
    loaded = Registry(models_dir).load(version)
    step("building landmark features")
    data = labelled_examples(cohort, tuple(loaded.meta.landmarks))
    step(f"scoring with model {loaded.version}")
    p = loaded.model.predict_proba(data.examples.X)[:, 1]
    rows = data.examples.row_client.argsort(kind="stable")
    eval_data = data.eval_data(rows, p[rows])
    th = loaded.meta.thresholds.cutoffs
    # The WAI logistic baseline is fitted on the evaluation rows themselves: two parameters,
    # so its in-sample advantage is negligible, and it needs no training data.
    baselines = fit_baselines(data.examples.X[rows], data.y[rows])
    results = evaluate_with_baselines(eval_data, th, baselines, n_boot=n_boot)
    counts = tally(loaded.meta, cohort.sessions, data.examples.X, published(p, th)[1])
    shifted = shift_warnings(loaded.meta, counts, "sessions.csv", every_landmark=True)
    if warnings is not None:
        warnings.extend(shifted)
    step("writing the report")
    html = render_report(
        eval_data,
        results,
        loaded.meta,
        title=f"Evaluation of model {loaded.version} on {report_path.stem}",
        warnings=shifted,
    )
    tmp = report_path.with_name(f".{report_path.name}.partial")
    tmp.write_text(html)
    os.replace(tmp, report_path)
    return results
