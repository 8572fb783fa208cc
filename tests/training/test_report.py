"""The HTML report and the model card: required content, self-containment, determinism."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from tests.support.helpers import metadata_of
from training.artifact_schema import ModelMetadata
from training.baselines import fit_baselines
from training.comparison import evaluate_with_baselines
from training.evaluation import EvalData, auc, evaluate
from training.features import FEATURES
from training.figures import Evaluation
from training.model_card import render_model_card
from training.report import render_report
from training.vocabulary import Thresholds

TH = Thresholds(moderate=0.25, high=0.4)


def _data(n_clients: int = 300, seed: int = 0) -> EvalData:
    """Two landmark rows per client, every gender, age band and caseload band present."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(-1.2, 0.7, n_clients)
    owner = np.repeat(np.arange(n_clients), 2)
    p = 1.0 / (1.0 + np.exp(-(risk[owner] + rng.normal(0, 0.2, owner.size))))
    y = (rng.random(n_clients) < 1.0 / (1.0 + np.exp(-risk))).astype(np.int8)
    genders = np.array(["female", "male", "other", "unknown"], dtype=object)
    ages = np.array([20.0, 30.0, 50.0, 70.0, np.nan])
    return EvalData(
        y=y[owner],
        p=p,
        client=np.array([f"c{i}" for i in owner], dtype=object),
        landmark=np.tile([1, 2], n_clients),
        gender=genders[np.arange(n_clients) % 4][owner],
        age=ages[np.arange(n_clients) % 5][owner],
        therapist_volume=np.array([0, 5, 30, 80])[np.arange(n_clients) % 4][owner],
    )


def _meta(simulated: bool, results: Evaluation | None = None) -> ModelMetadata:
    return metadata_of(
        results,
        estimator="logistic_regression",
        calibration="sigmoid",
        thresholds={"moderate": TH.moderate, "high": TH.high, "rule": "fixed at train time"},
        training_data={"simulated": simulated, "n_clients": 20000, "dropout_rate": 0.2},
        landmarks=[1, 2],
        selection={
            "cv": "5-fold cross-validation grouped by client",
            "candidates": [
                {"estimator": "logistic_regression", "calibration": "sigmoid", "brier": 0.15},
                {"estimator": "hist_gradient_boosting", "calibration": "isotonic", "brier": 0.16},
            ],
            "chosen": {"estimator": "logistic_regression", "calibration": "sigmoid"},
        },
    )


@pytest.fixture(scope="module")
def scored() -> tuple[EvalData, Evaluation]:
    data = _data()
    return data, evaluate(data, TH, n_boot=20, seed=0)


@pytest.fixture(scope="module")
def report(scored: tuple[EvalData, Evaluation]) -> str:
    data, results = scored
    return render_report(data, results, _meta(simulated=True))


class _Tags(HTMLParser):
    """Collects start tags with their attributes, and the text inside <th> cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.th_text: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_th = tag == "th"
        if self._in_th:
            self.th_text.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.th_text[-1] += data


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_simulated_banner(report: str) -> None:
    assert 'class="banner"' in report
    assert "trained on a simulated cohort (20000 clients, dropout rate 20.0%)" in report
    assert "no external validation" in report


def test_real_data_model_has_no_banner_and_text_is_escaped(
    scored: tuple[EvalData, Evaluation],
) -> None:
    # A version is an id (the schema refuses markup there); free text such as the estimator's
    # name is escaped.
    meta = _meta(simulated=False).model_copy(update={"estimator": "<script>alert(1)</script>"})
    html = render_report(*scored, meta, title="Evaluation on cohort <X>")
    assert 'class="banner"' not in html
    assert "simulated cohort" not in html
    assert "<title>Evaluation on cohort &lt;X&gt;</title>" in html
    assert "<h1>Evaluation on cohort &lt;X&gt;</h1>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html


def test_report_is_deterministic(scored: tuple[EvalData, Evaluation], report: str) -> None:
    assert render_report(*scored, _meta(simulated=True)) == report


def test_report_loads_nothing_external(report: str) -> None:
    assert "http://" not in report
    assert "https://" not in report
    for _, attrs in _parse(report).tags:
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (name, value)
    assert "<script" not in report
    assert "<link" not in report


def test_report_has_every_plot_with_unique_ids(report: str) -> None:
    tags = _parse(report).tags
    assert sum(tag == "svg" for tag, _ in tags) == 5
    ids = [attrs["id"] for _, attrs in tags if attrs.get("id")]
    assert len(ids) == len(set(ids))
    for title in (
        "ROC curve",
        "Precision-recall curve",
        "Calibration (deciles",
        "Decision curve",
        "Predicted risk by outcome",
    ):
        assert title in report


def test_report_tables_hold_metrics_landmarks_and_subgroups(
    scored: tuple[EvalData, Evaluation], report: str
) -> None:
    _, results = scored
    headers = _parse(report).th_text
    for group_rows in results.subgroups.values():
        for row in group_rows:
            assert any(h.startswith(row.group) for h in headers), row.group
    assert {"After session 1", "After session 2"} <= set(headers)
    assert {"AUC (discrimination)", "Calibration slope", "Moderate or high", "High"} <= set(headers)
    auc, (lo, hi) = results.overall.auc.estimate, results.overall.auc.ci95
    assert auc is not None
    assert lo is not None
    assert hi is not None
    assert f"{auc:.3f} ({lo:.3f}–{hi:.3f})" in report
    assert "p ≥ 0.25" in report
    assert "p ≥ 0.40" in report


REQUIRED_HEADINGS = (
    "## Model details",
    "## Intended use",
    "## Factors",
    "## Metrics",
    "## Evaluation data",
    "## Training data",
    "## Quantitative analyses",
    "## Ethical considerations",
    "## Caveats and recommendations",
    "## TRIPOD+AI checklist",
    "## References",
)


def test_model_card_has_every_section_and_the_simulation_statement(
    scored: tuple[EvalData, Evaluation],
) -> None:
    card = render_model_card(_meta(simulated=True, results=scored[1]))
    for heading in REQUIRED_HEADINGS:
        assert re.search(rf"^{re.escape(heading)}$", card, flags=re.M), heading
    top = card[: card.index("## Model details")]
    assert "trained on simulated data and has no external validation" in top
    for needle in (
        "stigma",
        "surveillance",
        "minimisation",
        "improved",
        "Mitchell et al. 2019",
        "Collins et al., BMJ 2024",
        "Swift & Greenberg 2012",
        "Saxon et al. 2017",
    ):
        assert needle.lower() in card.lower(), needle


def test_model_card_tripod_checklist_covers_every_item() -> None:
    card = render_model_card(_meta(simulated=True))
    checklist = card[card.index("## TRIPOD+AI checklist") : card.index("## References")]
    for item in (
        "Intended users and place in the care pathway",
        "Known health inequalities",
        "Data sources and dates",
        "Outcome definition and timing",
        "Predictors and when they are measured",
        "Sample size",
        "Missing data",
        "class imbalance and tuning",
        "Discrimination, calibration and clinical utility",
        "Fairness across subgroups",
        "Model output and thresholds",
        "Updating",
        "Limitations",
        "External validation",
    ):
        assert item in checklist, item


def test_model_card_reports_subgroups_and_metrics(
    scored: tuple[EvalData, Evaluation],
) -> None:
    results = scored[1]
    card = render_model_card(_meta(simulated=True, results=results))
    quantitative = card[card.index("## Quantitative analyses") : card.index("## Ethical")]
    for rows in results.subgroups.values():
        for row in rows:
            assert f"\n| {row.group} | {row.n_clients} |" in quantitative, row.group
    auc = results.overall.auc.estimate
    assert f"| AUC | {auc:.3f} (" in quantitative
    assert "| logistic_regression | sigmoid | 0.1500 | yes |" in card


def test_model_card_of_metadata_without_provenance_says_not_recorded() -> None:
    card = render_model_card(metadata_of())
    for heading in REQUIRED_HEADINGS:
        assert heading in card
    assert "has no external validation" in card
    assert "trained on simulated data" not in card
    assert "not recorded in the model metadata" in card


def _against_rules(model_knows_risk: bool, seed: int = 21) -> tuple[EvalData, Evaluation]:
    """800 clients at one landmark whose dropout follows their last SRS. The model either
    knows that risk (and more) or only guesses: the clinic rule then beats it."""
    rng = np.random.default_rng(seed)
    n = 800
    srs = rng.uniform(25.0, 40.0, n)
    extra = rng.normal(0.0, 1.0, n)
    truth = 1.0 / (1.0 + np.exp(-(-1.0 + 0.4 * (36.0 - srs) + extra)))
    y = (rng.random(n) < truth).astype(np.int8)
    p = truth if model_knows_risk else 1.0 / (1.0 + np.exp(-rng.normal(-1.0, 0.5, n)))
    x = np.zeros((n, len(FEATURES)))
    x[:, FEATURES.index("landmark")] = 1
    x[:, FEATURES.index("srs_last")] = srs
    x[:, FEATURES.index("srs_min")] = srs
    x[:, FEATURES.index("wai_mean")] = rng.normal(4.0, 1.0, n)
    data = EvalData(
        y=y,
        p=p,
        client=np.array([f"c{i}" for i in range(n)], dtype=object),
        landmark=np.ones(n, dtype=np.int64),
        gender=np.array(["female"] * n, dtype=object),
        age=np.full(n, 40.0),
        therapist_volume=np.zeros(n, dtype=np.int64),
        features=x,
    )
    return data, evaluate_with_baselines(data, TH, fit_baselines(x, y), n_boot=0)


def test_report_says_first_when_a_clinic_rule_beats_the_model() -> None:
    data, results = _against_rules(model_knows_risk=False)
    assert results.baselines is not None
    rule = next(r for r in results.baselines.rules if r.name == "srs_last_below_36")
    assert rule.model_auc == pytest.approx(auc(data.y, data.p))
    srs_score = 36.0 - data.features[:, FEATURES.index("srs_last")]  # type: ignore[index]
    assert rule.baseline_auc == pytest.approx(auc(data.y, (srs_score - srs_score.min()) / 15))
    assert rule.model_beats_it is False
    html = render_report(data, results, _meta(simulated=False))
    body = html[html.index("<main>") :]
    verdict = body.index('id="verdict"')
    assert verdict < body.index("Headline metrics")
    assert verdict < body.index('id="baselines"')
    sentence = (
        f'The model does not beat the clinic rule "last SRS &lt; 36": AUC '
        f"{rule.model_auc:.3f} for the model against {rule.baseline_auc:.3f} for the rule, "
        "on the same 800 examples."
    )
    assert sentence.replace('"', "&quot;") in body[verdict : body.index("Headline metrics")]


def test_report_shows_the_rules_at_the_model_flag_rates() -> None:
    data, results = _against_rules(model_knows_risk=True)
    comparison = results.baselines
    assert comparison is not None
    high_rate = results.overall.high.flag_rate.estimate
    assert comparison.flag_rates["high"] == pytest.approx(high_rate)
    rule = next(r for r in comparison.rules if r.name == "srs_last_below_36")
    assert rule.model_beats_it is True
    high = rule.levels["high"]
    flagged = data.p >= np.quantile(data.p, 1 - high_rate)  # p is continuous: no ties
    assert high.model_sensitivity == pytest.approx(data.y[flagged].sum() / data.y.sum())
    assert high.model_ppv == pytest.approx(data.y[flagged].mean(), abs=0.01)
    fires = data.features[:, FEATURES.index("srs_last")] < 36  # type: ignore[index]
    assert rule.own_cutoff is not None
    assert rule.own_cutoff.flag_rate == pytest.approx(fires.mean())
    assert rule.own_cutoff.ppv == pytest.approx(data.y[fires].mean())
    html = render_report(data, results, _meta(simulated=False))
    assert 'id="verdict"' not in html
    assert "Against the clinic rules" in html
    assert "last SRS &lt; 36" in html


def test_rules_with_too_few_clients_give_no_verdict() -> None:
    data, _ = _against_rules(model_knows_risk=False)
    keep = np.flatnonzero(data.y == 0)[:200].tolist() + np.flatnonzero(data.y == 1)[:9].tolist()
    rows = np.array(sorted(keep))
    small = EvalData(
        **{k: None if v is None else np.asarray(v)[rows] for k, v in vars(data).items()}
    )
    assert small.features is not None
    results = evaluate_with_baselines(small, TH, fit_baselines(small.features, small.y), n_boot=0)
    assert results.baselines is not None
    rules = results.baselines.rules
    assert [r.too_few for r in rules] == [True, True, True]
    assert all(r.model_beats_it is None and r.model_auc is None for r in rules)
    html = render_report(small, results, _meta(simulated=False))
    assert 'id="verdict"' not in html
    assert '<td class="num">209</td><td class="num">too few clients</td>' in html
