"""Champions per clinic and the promotion rule (training/registry.py, training/promotion.py,
`dropout-risk models promote|list`): resolution to the clinic's champion or the network
default, refusals and their override with a reason in the history, old registry files."""

from __future__ import annotations

import getpass
import json
import shutil
from pathlib import Path

import pytest

from tests.support.helpers import CLINIC, REPO, cohort_args, train, updated_version
from training.artifact_schema import (
    ComparisonRecord,
    GroupFigures,
    RegistryFile,
    SubgroupRecord,
    VerdictRecord,
)
from training.cli import run
from training.errors import RegistryInvalid
from training.promotion import PromotionRule, check_promotion
from training.registry import REGISTRY_FILE, Registry, _document, sha256_of

SHIPPED = Registry(REPO / "models").index().champion
FINGERPRINT = "0" * 64


@pytest.fixture
def models(updated_registry: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(updated_registry, folder)
    return folder


def _record(
    challenger: str,
    clinic: str | None = CLINIC,
    champion: str = SHIPPED or "",
    calibration: str = "better",
    subgroups: tuple[SubgroupRecord, ...] = (),
) -> ComparisonRecord:
    return ComparisonRecord(
        challenger=challenger,
        champion=champion,
        clinic=clinic,
        compared_at="2026-12-02T00:00:00+00:00",
        fingerprint=FINGERPRINT,
        n_clients=800,
        discrimination=VerdictRecord(
            verdict="not distinguishable", estimate=0.0, ci95=[-0.01, 0.01]
        ),
        calibration=VerdictRecord(verdict=calibration, estimate=-0.01, ci95=[-0.02, -0.001]),
        subgroups=list(subgroups),
    )


def _group(
    n: int, champion_auc: float, challenger_auc: float, oe: tuple[float, float] = (1.0, 1.0)
) -> SubgroupRecord:
    return SubgroupRecord(
        factor="age_band",
        group="<25",
        n_clients=n,
        champion=GroupFigures(auc=champion_auc, observed_expected=oe[0]),
        challenger=GroupFigures(auc=challenger_auc, observed_expected=oe[1]),
    )


def _promote(models: Path, version: str, *extra: str) -> int:
    return run(["models", "promote", version, "--models-dir", str(models), *extra])


def test_an_old_registry_file_loads_and_is_written_back_unchanged() -> None:
    """models/registry.json predates clinics, comparisons and history."""
    registry = Registry(REPO / "models")
    index = registry.index()
    assert (index.clinic_champions, index.comparisons, index.history) == ({}, [], [])
    assert index.champion_of(None) == index.champion_of("any-clinic") == SHIPPED
    assert registry.load("champion", clinic="any-clinic").version == SHIPPED
    text = json.dumps(_document(index), indent=2) + "\n"
    assert text == (REPO / "models" / REGISTRY_FILE).read_text()


def test_a_clinic_id_breaking_the_id_rule_is_refused(models: Path) -> None:
    data = json.loads((models / REGISTRY_FILE).read_text())
    data["clinic_champions"] = {"a b": SHIPPED}
    (models / REGISTRY_FILE).write_text(json.dumps(data))
    with pytest.raises(RegistryInvalid, match=r"clinic_champions\.a b"):
        Registry(models).index()


def test_promotion_without_a_comparison_is_refused_and_writes_nothing(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = updated_version(models)
    before = sha256_of(models / REGISTRY_FILE)
    assert _promote(models, version, "--clinic", CLINIC) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: models promote: {version} may not become the champion of clinic {CLINIC}: "
        f"{version} has no comparison; run `dropout-risk compare --champion champion "
        f"--challenger {version} --clinic {CLINIC}` first"
    )
    assert err.count("\n") == 1
    assert sha256_of(models / REGISTRY_FILE) == before


def test_a_comparison_for_another_clinic_or_champion_does_not_count(models: Path) -> None:
    version = updated_version(models)
    registry = Registry(models)
    registry.record_comparison(_record(version, clinic="site-b"))
    check = check_promotion(registry.index(), version, CLINIC)
    assert check.refusals == (
        f"the last comparison of {version} was against {SHIPPED} for clinic site-b, not "
        f"against {SHIPPED}, the champion of clinic {CLINIC}",
    )
    registry.record_comparison(_record(version, clinic=None))
    assert not check_promotion(registry.index(), version, CLINIC).allowed
    assert check_promotion(registry.index(), version, None).allowed  # for the network default


def test_worse_on_calibration_is_refused(models: Path) -> None:
    version = updated_version(models)
    registry = Registry(models)
    registry.record_comparison(_record(version, calibration="worse"))
    (refusal,) = check_promotion(registry.index(), version, CLINIC).refusals
    assert refusal.startswith(f"worse on calibration than {SHIPPED} (calibration error difference")


def test_a_subgroup_beyond_the_margin_is_refused_and_the_margin_is_configurable(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = updated_version(models)
    registry = Registry(models)
    groups = (_group(200, 0.64, 0.57), _group(40, 0.70, 0.50), _group(150, 0.6, 0.6, (1.0, 0.85)))
    registry.record_comparison(_record(version, subgroups=groups))
    refusals = check_promotion(registry.index(), version, CLINIC).refusals
    assert refusals == (
        "age_band <25 (200 clients): AUC 0.570 against 0.640, lower by 0.070 > 0.05",
        "age_band <25 (150 clients): observed/expected 0.85 against 1.00, further from 1 by "
        "0.15 > 0.1",
    )  # the 40-client group is below min_group_clients: its swing is not evidence
    looser = PromotionRule(subgroup_auc_margin=0.1, subgroup_calibration_margin=0.2)
    assert check_promotion(registry.index(), version, CLINIC, looser).allowed
    assert _promote(models, version, "--clinic", CLINIC) == 2
    assert "lower by 0.070 > 0.05" in capsys.readouterr().err
    margins = ["--subgroup-auc-margin", "0.1", "--subgroup-calibration-margin", "0.2"]
    assert _promote(models, version, "--clinic", CLINIC, *margins) == 0
    assert Registry(models).champion_of(CLINIC) == version


def test_force_needs_a_reason_and_both_go_into_the_history(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = updated_version(models)
    assert _promote(models, version, "--clinic", CLINIC, "--force") == 2
    assert '--force: needs --reason "..."' in capsys.readouterr().err
    assert Registry(models).index().history == []
    reason = "pilot at site-a, reviewed by the clinical lead"
    assert _promote(models, version, "--clinic", CLINIC, "--force", "--reason", reason) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"champion of clinic {CLINIC} is now {version} (was {SHIPPED}) [forced: ")
    (event,) = Registry(models).index().history
    assert (event.version, event.clinic, event.previous) == (version, CLINIC, SHIPPED)
    assert (event.actor, event.path, event.forced, event.reason) == (
        getpass.getuser(),
        "models promote",
        True,
        reason,
    )
    assert event.overridden[0].startswith(f"{version} has no comparison")


def test_each_clinic_is_served_its_champion_else_the_network_default(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = updated_version(models)
    registry = Registry(models)
    registry.record_comparison(_record(version))
    assert _promote(models, version, "--clinic", CLINIC) == 0
    index = registry.index()
    assert index.champion == SHIPPED  # the network default did not move
    assert index.clinic_champions == {CLINIC: version}
    assert registry.champion_of(CLINIC) == version
    assert registry.champion_of("site-b") == registry.champion_of() == SHIPPED
    assert registry.load("champion", clinic=CLINIC).version == version
    assert registry.load("champion", clinic="site-b").version == SHIPPED
    assert registry.load().version == SHIPPED
    capsys.readouterr()
    assert run(["models", "list", "--models-dir", str(models)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"champions   network default: {SHIPPED}",
        f"            clinic {CLINIC}: {version}",
    ]
    mine = next(line for line in lines if line.startswith(f"  {version}"))
    assert mine.endswith(f"updated from {SHIPPED} (recalibrate)  [clinic {CLINIC}]")
    assert any(line.startswith(f"* {SHIPPED}") for line in lines)
    # promoting the network default does not change the clinic's champion
    registry.record_comparison(_record(version, clinic=None))
    assert _promote(models, version) == 0
    assert (registry.index().champion, registry.champion_of(CLINIC)) == (version, version)


def test_a_comparison_by_compare_lets_the_update_serve_its_clinic(
    models: Path, clinic_cohort: Path, tmp_path: Path
) -> None:
    """The whole analyst loop: update (the fixture), compare, promote for the clinic."""
    version = updated_version(models)
    page = str(tmp_path / "c.html")
    args = ["compare", "--challenger", version, *cohort_args(clinic_cohort), "--clinic", CLINIC]
    assert run([*args, "--out", page, "--models-dir", str(models)]) == 0
    check = check_promotion(Registry(models).index(), version, CLINIC)
    assert check.refusals == ()
    assert _promote(models, version, "--clinic", CLINIC) == 0
    (event,) = Registry(models).index().history
    assert (event.forced, event.reason, event.overridden) == (False, None, [])


def test_the_first_champion_and_the_current_one_need_no_comparison() -> None:
    empty = RegistryFile()
    assert check_promotion(empty, "v1", None).allowed
    one = RegistryFile(champion="v1")
    assert check_promotion(one, "v1", None).allowed
    assert check_promotion(one, "v1", "site-b").allowed  # the clinic is served v1 already
    assert not check_promotion(one, "v2", "site-b").allowed


def test_train_promote_is_the_network_bootstrap_path(small_cohort: Path, tmp_path: Path) -> None:
    """train --promote names the network default without a comparison and records it."""
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    assert train(small_cohort, models, "--seed", "3", "--promote") == 0
    index = Registry(models).index()
    assert index.champion != SHIPPED
    (event,) = index.history
    assert (event.version, event.previous, event.clinic) == (index.champion, SHIPPED, None)
    assert (event.path, event.actor, event.forced) == (
        "train --promote (network bootstrap)",
        getpass.getuser(),
        False,
    )


def test_the_cli_states_the_rule_s_own_margins(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI leaves the margins to PromotionRule (one definition); its help says them."""
    assert run(["models", "promote", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    rule = PromotionRule()
    assert f"the rule's, {rule.subgroup_auc_margin:.2f})" in text
    assert f"the rule's, {rule.subgroup_calibration_margin:.2f})" in text
    assert f"the rule's, {rule.min_group_clients})" in text
