"""`dropout-risk`: the command line for analysts (validate, simulate, train, evaluate,
predict, models). Every command answers --help. Errors the user can fix print one clear
message on stderr and exit with status 2; stdout carries only results, so scripts can
capture them (train prints the new version on its last line).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer import _click as click  # typer 0.29 runs on its own copy of click
from typer.core import TyperCommand

from training.cli_support import (
    DomainErrorGroup,
    command_group,
    err,
    fail,
    out,
    output_file,
    output_folder,
)

if TYPE_CHECKING:
    from training.artifact_schema import ModelMetadata
    from training.compare import Comparison
    from training.figures import Estimate, Evaluation
    from training.provenance_schema import TrainingData
    from training.simulate import SimulationParams
    from training.train import TrainResult
    from training.update import UpdateConfig, UpdateResult

# Service commands: (module under service/, attribute). Loaded only when one of them runs
# or shows its help, so the analysts' commands never load SQLAlchemy, Alembic or FastAPI.
SERVICE_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "serve"),
    "keys": ("keys", "keys_app"),
    "db": ("db", "db_app"),
    "export": ("db", "export"),
    "audit": ("db", "audit"),
    "demo": ("db", "demo"),
    "monitor": ("monitor", "monitor"),
    "retrain": ("retrain", "retrain"),
}


def service_command(name: str) -> click.Command:
    """The one place training/ imports service/ (tests/test_import_graph.py allows no
    other): a service command, imported (its module only) when it is run."""
    file, attribute = SERVICE_COMMANDS[name]
    if file == "serve":
        import service.commands.serve

        target = getattr(service.commands.serve, attribute)
    elif file == "keys":
        import service.commands.keys

        target = getattr(service.commands.keys, attribute)
    elif file == "monitor":
        import service.commands.monitor

        target = getattr(service.commands.monitor, attribute)
    elif file == "retrain":
        import service.commands.retrain

        target = getattr(service.commands.retrain, attribute)
    else:
        import service.commands.db

        target = getattr(service.commands.db, attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command(name)(target)
    return typer.main.get_command(single)


def service_help(name: str) -> str:
    """A service command's help read from its source without importing it (the docstring
    of a command function, the help= of a command group), for `dropout-risk --help`."""
    file, attribute = SERVICE_COMMANDS[name]
    spec = importlib.util.find_spec("service")  # finds the package without importing it
    assert spec is not None
    assert spec.submodule_search_locations is not None
    source = Path(next(iter(spec.submodule_search_locations))) / "commands" / f"{file}.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return ast.get_docstring(node) or ""
        names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if attribute in names and isinstance(node.value, ast.Call):  # type: ignore[attr-defined]
            call: ast.Call = node.value  # type: ignore[attr-defined]
            values = [*call.args, *(k.value for k in call.keywords if k.arg == "help")]
            return str(ast.literal_eval(values[0])) if values else ""
    return ""


class LazyCommands(dict[str, click.Command]):
    """A group's commands where a service command missing so far is loaded on first
    lookup by name (`commands["serve"]`, as tests/test_dockerfile.py reads it)."""

    def __missing__(self, name: str) -> click.Command:
        if name not in SERVICE_COMMANDS:
            raise KeyError(name)
        self[name] = command = service_command(name)
        return command


class CommandTree(DomainErrorGroup):
    """`dropout-risk`: the analysts' commands defined here, the service's loaded lazily."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        eager = super().list_commands(ctx)
        return [*eager, *(name for name in SERVICE_COMMANDS if name not in eager)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SERVICE_COMMANDS:
            return self.commands[cmd_name]
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing, with the service commands' help read without importing them."""
        placeholders = {
            name: TyperCommand(name, help=service_help(name))
            for name in SERVICE_COMMANDS
            if name not in self.commands
        }
        rows = [(n, placeholders.get(n) or self.commands[n]) for n in self.list_commands(ctx)]
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])


app = command_group(__doc__ or "", CommandTree)
models_app = command_group("List registered model versions, promote one, find reports.")
app.add_typer(models_app, name="models")

SessionsOpt = Annotated[Path, typer.Option("--sessions", help="sessions.csv (cohort contract)")]
ClientsOpt = Annotated[Path, typer.Option("--clients", help="clients.csv (cohort contract)")]
ModelsDirOpt = Annotated[Path, typer.Option("--models-dir", help="Model registry directory.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Version or 'champion'.")]
DEFAULT_MODELS = Path("models")


@contextmanager
def _steps(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner per long step on stderr (quiet when stderr is not a terminal)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task: list[Any] = []

        def step(description: str) -> None:
            if task:
                progress.update(task[0], completed=1, total=1)
            task[:] = [progress.add_task(description, total=None)]

        step(title)
        yield step
        if task:
            progress.update(task[0], completed=1, total=1)


@contextmanager
def _warnings_shown(warnings: list[str]) -> Iterator[None]:
    """Print collected warnings when the block ends, whether it failed or not."""
    try:
        yield
    finally:
        for line in warnings:
            err.print(line, markup=False)


def _parse_pair(text: str, option: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"{option}: value {text!r} is not two numbers separated by a comma")
    if not 0 < low < high < 1 and option == "--thresholds":
        fail(f"{option}: value {text!r} must satisfy 0 < moderate < high < 1")
    if option == "--flag-rates" and not 0 < high < low < 1:
        fail(f"{option}: value {text!r} must satisfy 0 < high rate < moderate rate < 1")
    return low, high


@app.command()
def validate(
    sessions: SessionsOpt,
    clients: ClientsOpt,
    labels: Annotated[
        bool,
        typer.Option("--labels/--no-labels", help="Require the dropout label (as train does)."),
    ] = False,
) -> None:
    """Check sessions.csv and clients.csv against the cohort contract (exit 2 if broken)."""
    from training.contract import load_cohort

    warnings: list[str] = []
    with _warnings_shown(warnings):
        cohort = load_cohort(sessions, clients, need_labels=labels, warnings=warnings)
    out.print(
        f"ok: {len(cohort.clients)} clients, {len(cohort.sessions)} sessions "
        "follow the cohort contract"
    )


def _simulation_params(settings: list[str]) -> SimulationParams:
    from training.simulate import SimulationParams

    fields = {f.name: f for f in dataclasses.fields(SimulationParams)}
    values: dict[str, Any] = {}
    for item in settings:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            fail(f"--set: {item!r} is not NAME=VALUE with NAME one of: {', '.join(fields)}")
        default = getattr(SimulationParams(), name)
        try:
            parsed = json.loads(f"[{raw}]") if isinstance(default, tuple) else json.loads(raw)
            values[name] = tuple(parsed) if isinstance(default, tuple) else type(default)(parsed)
        except (ValueError, TypeError):
            fail(f"--set {name}: value {raw!r} is not a {type(default).__name__}")
    try:
        return SimulationParams(**values)
    except ValueError as exc:
        fail(f"--set: {exc}")


@app.command()
def simulate(
    clients: Annotated[
        int, typer.Option("--clients", min=1, max=5_000_000, help="Number of treatment episodes.")
    ],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
    max_sessions: Annotated[
        int | None,
        typer.Option("--max-sessions", min=1, help="Keep only each client's first sessions."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a simulator parameter, e.g. --set dropout_rate=0.3 "
            "(names in docs/simulator.md).",
        ),
    ] = None,
    worlds: Annotated[
        list[int] | None,
        typer.Option(
            "--world",
            min=0,
            help="Draw world K from the plausible ranges (docs/simulator.md, Worlds) instead "
            "of the literature-centred default; repeat for a mixture of --clients per world.",
        ),
    ] = None,
) -> None:
    """Write a literature-calibrated simulated cohort (sessions.csv, clients.csv)."""
    from training.simulate import write_cohort
    from training.worlds import draw_world, write_mixture

    chosen = worlds or []
    output_folder("--out", out_dir)
    if chosen and settings:
        fail("--set: cannot be combined with --world (a world draws every open parameter)")
    if len(set(chosen)) != len(chosen):
        fail(f"--world: each world may be given once, got {sorted(chosen)}")
    with _steps(f"simulating {clients:,} clients" + (" per world" if len(chosen) > 1 else "")):
        if len(chosen) > 1:
            written = write_mixture(out_dir, chosen, clients, seed, max_sessions)
            clients_path, sessions_path = written
        else:
            world = chosen[0] if chosen else None
            params = _simulation_params(settings or []) if world is None else draw_world(world)
            clients_path, sessions_path = write_cohort(
                out_dir, clients, seed, max_sessions, params, world
            )
    out.print(f"wrote {sessions_path} and {clients_path}")


@app.command()
def train(
    sessions: SessionsOpt,
    clients: ClientsOpt,
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make the new version the champion.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for splits and models.")] = 0,
    landmarks: Annotated[
        str, typer.Option("--landmarks", help="Landmark sessions, comma-separated.")
    ] = "1,2,3",
    flag_rates: Annotated[
        str,
        typer.Option(
            "--flag-rates",
            help="Share of validation examples flagged moderate-or-high and high: MOD,HIGH.",
        ),
    ] = "0.40,0.15",
    thresholds: Annotated[
        str | None,
        typer.Option(
            "--thresholds", help="Fixed probability cut-offs MOD,HIGH instead of flag rates."
        ),
    ] = None,
    allow_small: Annotated[
        bool,
        typer.Option(
            "--allow-small",
            help="Train even below the Riley et al. 2020 minimum sample size (recorded on the "
            "model card).",
        ),
    ] = False,
) -> None:
    """Select, calibrate, evaluate and register a dropout model; prints its version last."""
    from training.contract import load_cohort
    from training.registry import Registry
    from training.simulate import read_sidecar
    from training.train import TrainConfig, TrainInputs
    from training.train import train as run_training

    output_folder("--models-dir", models_dir)
    config = TrainConfig(
        landmarks=_parse_landmarks(landmarks),
        seed=seed,
        flag_rates=_parse_pair(flag_rates, "--flag-rates"),
        thresholds=_parse_pair(thresholds, "--thresholds") if thresholds else None,
        allow_small=allow_small,
    )
    started = time.perf_counter()
    warnings: list[str] = []
    with _warnings_shown(warnings), _steps("validating the cohort") as step:
        cohort = load_cohort(sessions, clients, need_labels=True, warnings=warnings)
        inputs = TrainInputs(cohort, sessions, clients, read_sidecar(sessions.parent))
        result = run_training(inputs, Registry(models_dir), config, promote, step, actor())
    _print_baseline_warnings(result.metrics)
    _print_summary(result, time.perf_counter() - started)
    out.print(result.version)


def _parse_landmarks(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(x) for x in text.split(",")}))
    except ValueError:
        fail(f"--landmarks: value {text!r} is not comma-separated session numbers")
    if not values or values[0] < 1 or values[-1] > 12:
        fail(f"--landmarks: value {text!r} must be session numbers from 1 to 12")
    return values


def _print_baseline_warnings(results: Evaluation) -> None:
    """Say first, on stderr, when a clinic rule does as well as the model (see the report)."""
    from training.comparison import baseline_warnings

    for line in baseline_warnings(results):
        err.print(f"warning: {line}", markup=False)


def _baseline_lines(results: Evaluation) -> list[str]:
    """The model against each clinic rule (model / rule), as in the report."""
    from training.comparison import baseline_lines

    return [f"rules       {line}" for line in baseline_lines(results)]


def _calibration_lines(results: Evaluation) -> list[str]:
    """Calibration per landmark first; pooled figures are only a secondary line."""
    lines = [
        f"cal. k={row.landmark:<3} slope {_fmt(row.calibration_slope)}   "
        f"intercept {_fmt(row.calibration_intercept)}"
        for row in results.per_landmark
    ]
    overall = results.overall
    lines.append(
        f"cal. pooled slope {_fmt(overall.calibration_slope)}   "
        f"intercept {_fmt(overall.calibration_intercept)}  (secondary)"
    )
    return lines


def _fmt(metric: Estimate | None) -> str:
    from training.evaluation import TOO_FEW

    if metric is not None and metric.too_few:
        return TOO_FEW
    if metric is None or metric.estimate is None:
        return "n/a"
    est, (lo, hi) = metric.estimate, metric.ci95
    return (
        f"{est:.3f} (95% CI {lo:.3f} to {hi:.3f})"
        if lo is not None and hi is not None
        else f"{est:.3f}"
    )


def _print_summary(result: TrainResult, seconds: float) -> None:
    meta, champion, folder = result.meta, result.champion, result.folder
    overall = result.metrics.overall
    data, th = _training_data(meta), meta.thresholds
    high = th.validation["high"] if th.validation else None
    lines = [
        f"model       {meta.version}  ({meta.estimator}, {meta.calibration} "
        f"calibration){'  [champion]' if champion else ''}",
        f"data        {data.n_clients:,} clients, {data.n_sessions:,} sessions, "
        f"dropout {data.dropout_rate:.1%}{'  (SIMULATED cohort)' if data.simulated else ''}",
        f"held out    {data.test_clients:,} clients (metrics with 95% cluster-bootstrap intervals)",
        f"AUC         {_fmt(overall.auc)}",
        f"Brier       {_fmt(overall.brier)}",
        *_calibration_lines(result.metrics),
        *_baseline_lines(result.metrics),
        f"thresholds  moderate >= {th.moderate:.3f}, high >= {th.high:.3f}"
        + (
            f"  (validation: high flags {high.flag_rate:.0%}, sensitivity {high.sensitivity:.0%})"
            if high
            else ""
        ),
    ]
    size = meta.sample_size
    if size and not size.met:
        lines.append(
            f"sample size BELOW the minimum: {size.development_clients:,} development "
            f"clients, {size.minimum:,} needed (Riley et al. 2020; trained with --allow-small)"
        )
    for row in meta.selection.candidates if meta.selection else []:
        lines.append(
            f"  candidate {row['estimator']:<24} {row['calibration']:<9} "
            f"Brier {row['brier']:.4f}  log loss {row['log_loss']:.4f}  "
            f"AUC {row['auc']:.3f}"
        )
    lines += [
        f"report      {folder / 'report.html'}",
        f"model card  {folder / 'model_card.md'}",
        f"took        {seconds:.1f} s",
    ]
    for line in lines:
        out.print(line, markup=False)


ClinicOpt = Annotated[
    str | None,
    typer.Option("--clinic", help="Clinic (tenant id): 'champion' is then this clinic's champion."),
]


def _clinic(clinic: str | None) -> str | None:
    """A clinic id by the project's id rule (training/vocabulary.py), or None."""
    from training.vocabulary import ID_RULE, is_id

    if clinic is not None and not is_id(clinic):
        fail(f"--clinic: value {clinic!r} is not a clinic id ({ID_RULE})")
    return clinic


def actor() -> str:
    """Who runs the command, for the registry's history: the OS user."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return f"uid:{os.getuid()}"


@app.command()
def update(
    model: ModelOpt,
    sessions: SessionsOpt,
    clients: ClientsOpt,
    clinic: ClinicOpt = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="auto (closed test, Vergouwe et al. 2017) or one of keep, intercept, "
            "recalibrate, revise, refit (docs/updating.md).",
        ),
    ] = "auto",
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
    seed: Annotated[int, typer.Option("--seed", help="Seed for folds and refits.")] = 0,
    thresholds: Annotated[
        str | None,
        typer.Option("--thresholds", help="Probability cut-offs MOD,HIGH (default: the parent's)."),
    ] = None,
) -> None:
    """Update a registered model on a clinic's labelled clients; prints the new version
    last (registered, never promoted)."""
    from training.update import UpdateConfig

    output_folder("--models-dir", models_dir)
    config = UpdateConfig(
        method=method,
        clinic=_clinic(clinic),
        seed=seed,
        thresholds=_parse_pair(thresholds, "--thresholds") if thresholds else None,
    )
    started = time.perf_counter()
    result = run_update(models_dir, model, sessions, clients, config)
    out.print(f"took        {time.perf_counter() - started:.1f} s", markup=False)
    out.print(result.version)


def run_update(
    models_dir: Path, model: str, sessions: Path, clients: Path, config: UpdateConfig
) -> UpdateResult:
    """`update` without its timing line: validate the cohort, update `model`, register the
    result (never promoted) and print what it found; `retrain` runs it too."""
    from training.contract import load_cohort
    from training.registry import Registry
    from training.simulate import read_sidecar
    from training.train import TrainInputs
    from training.update import update as update_model

    registry = Registry(models_dir)
    registry.entry(model, config.clinic)  # an unknown version fails before the cohort is read
    warnings: list[str] = []
    with _warnings_shown(warnings), _steps("validating the cohort") as step:
        cohort = load_cohort(sessions, clients, need_labels=True, warnings=warnings)
        inputs = TrainInputs(cohort, sessions, clients, read_sidecar(sessions.parent))
        result = update_model(registry, model, inputs, config, step)
    _print_baseline_warnings(result.metrics)
    for line in _update_lines(result):
        out.print(line, markup=False)
    return result


def _update_lines(result: UpdateResult) -> list[str]:
    """What update found and did: sample, allowed methods, each test, the choice and why,
    the estimates, and the out-of-fold figures next to the parent's on the same clients."""
    meta, plan = result.meta, result.plan
    data, update = _training_data(meta), meta.update
    lineage = meta.lineage
    assert lineage is not None  # update writes both
    assert update is not None
    where = f" for clinic {lineage.clinic}" if lineage.clinic else ""
    lines = [
        f"update      {lineage.parent} -> {result.version}{where}: {plan.method} "
        "(registered, not promoted: compare it with the champion, then models promote)",
        f"data        {data.n_clients:,} clients, {data.n_sessions:,} sessions, dropout "
        f"{data.dropout_rate:.1%}{'  (SIMULATED cohort)' if data.simulated else ''}",
        "sample      "
        + "; ".join(
            f"landmark {s.landmark}: {s.clients:,} clients, {s.dropouts:,} dropouts"
            for s in plan.sample.per_landmark
        ),
        "allowed     "
        + "; ".join(
            f"{a.method} {'yes' if a.allowed else 'no'} ({a.rule})" for a in plan.allowances
        ),
    ]
    from training.updating import p_text

    for t in plan.test.tests:
        lines.append(
            f"test        {t.hypothesis} vs {t.against}: LR {t.statistic:.1f} on {t.df} df, "
            f"Rao-Scott LR/{t.design_effect:.2f} on {t.effective_df:.1f} df: "
            f"{p_text(t.p_value)} -> {'rejected' if t.rejected else 'not rejected'}"
        )
    lines.append(f"chosen      {plan.method}: {plan.why}")
    params = update.parameters
    for step in params.per_landmark:
        lines.append(
            f"update k={step.landmark:<2} logit p = {step.intercept:.3f} + "
            f"{step.slope:.3f} x parent logit" + (" + revision terms" if params.revision else "")
        )
    if params.revision:
        lines.append(
            f"revision    {len(params.revision.terms)} terms, shrunk by "
            f"{params.shrinkage:.3f} towards the parent (heuristic shrinkage; listed on the "
            "model card)"
        )
    overall, parent_figures = result.metrics.overall, result.parent_results
    lines += [
        f"figures     {update.evaluation}",
        f"AUC         {_fmt(overall.auc)}  (parent on these clients "
        f"{_num(parent_figures.overall.auc.estimate)})",
        f"Brier       {_fmt(overall.brier)}  "
        f"(parent {_num(parent_figures.overall.brier.estimate)})",
    ]
    for row in result.metrics.per_landmark:
        old = parent_figures.landmark(row.landmark)
        lines.append(
            f"cal. k={row.landmark:<3} slope {_fmt(row.calibration_slope)}   intercept "
            f"{_fmt(row.calibration_intercept)}  (parent: slope "
            f"{_num(None if old is None else old.calibration_slope.estimate)}, intercept "
            f"{_num(None if old is None else old.calibration_intercept.estimate)})"
        )
    lines += _baseline_lines(result.metrics)
    lines += [
        f"report      {result.folder / 'report.html'}",
        f"model card  {result.folder / 'model_card.md'}",
    ]
    return lines


def _training_data(meta: ModelMetadata) -> TrainingData:
    """What train and update wrote about the cohort (every field set by both)."""
    assert meta.training_data is not None  # train and update write it
    return meta.training_data


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@app.command()
def compare(
    challenger: Annotated[str, typer.Option("--challenger", help="Version to compare.")],
    sessions: SessionsOpt,
    clients: ClientsOpt,
    champion: Annotated[
        str, typer.Option("--champion", help="Version, or 'champion' (of --clinic, if given).")
    ] = "champion",
    clinic: ClinicOpt = None,
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the page.")] = Path(
        "compare.html"
    ),
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
) -> None:
    """Compare a challenger with the champion on the same labelled clients: the verdict
    first, the page, and the comparison kept in the registry."""
    output_file("--out", out_path)
    run_compare(models_dir, champion, challenger, sessions, clients, _clinic(clinic), out_path)


def run_compare(
    models_dir: Path,
    champion: str,
    challenger: str,
    sessions: Path,
    clients: Path,
    clinic: str | None,
    out_path: Path,
) -> Comparison:
    """`compare`: both models on the cohort, the page written whole (never half), the
    comparison kept in the registry, the lines printed; `retrain` runs it too."""
    import os

    from training.compare import compare as compare_models
    from training.compare_report import render_comparison
    from training.contract import load_cohort
    from training.registry import Registry

    registry = Registry(models_dir)
    for version, scope in ((champion, clinic), (challenger, None)):
        registry.entry(version, scope)  # an unknown version fails before the cohort is read
    warnings: list[str] = []
    with _warnings_shown(warnings), _steps("validating the cohort") as step:
        cohort = load_cohort(sessions, clients, need_labels=True, warnings=warnings)
        result = compare_models(
            registry, champion, challenger, cohort, (sessions, clients), clinic, step
        )
        step("writing the page")
        tmp = out_path.with_name(f".{out_path.name}.partial")
        page = render_comparison(result)
        tmp.write_text(page)
        os.replace(tmp, out_path)
        # the registry keeps a copy, which /ui/monitoring links for the clinic
        registry.record_comparison(result.record(), page)
    for line in _compare_lines(result):
        out.print(line, markup=False)
    out.print(f"page        {out_path}", markup=False)
    return result


def _compare_lines(c: Any) -> list[str]:
    """The verdict first, then the paired differences and calibration per landmark."""
    from training.vocabulary import FLAG_LEVELS

    def diff(d: Any, digits: int = 3) -> str:
        if d.estimate is None:
            return "n/a"
        interval = (
            f" (95% CI {d.low:+.{digits}f} to {d.high:+.{digits}f})" if d.low is not None else ""
        )
        return (
            f"{_num(d.champion)} -> {_num(d.challenger)}, difference "
            f"{d.estimate:+.{digits}f}{interval}"
        )

    oof = [s.version for s in (c.champion, c.challenger) if s.out_of_fold]
    lines = [
        c.verdict_line(),
        f"data        {c.n_clients:,} clients, {c.n_examples:,} examples ({c.prevalence:.1%} "
        f"of them of clients who dropped out); paired by {c.unit} ({c.clusters:,} clusters)"
        + (f"; out of fold (updated on these clients): {', '.join(oof)}" if oof else ""),
        f"AUC         {diff(c.auc)}  [DeLong, clustered]",
        f"Brier       {diff(c.brier, 4)}",
        f"log loss    {diff(c.log_loss, 4)}",
        f"cal. error  {diff(c.calibration, 4)}  [log loss removable by recalibrating]",
    ]
    for a in sorted(c.champion.results.per_landmark, key=lambda row: row.landmark):
        b = c.challenger.results.landmark(a.landmark)
        lines.append(
            f"cal. k={a.landmark:<3} intercept {_fmt(a.calibration_intercept)} -> "
            f"{_fmt(None if b is None else b.calibration_intercept)}; slope "
            f"{_fmt(a.calibration_slope)} -> {_fmt(None if b is None else b.calibration_slope)}"
        )
    for level in FLAG_LEVELS:
        first = c.champion.results.overall.level(level)
        second = c.challenger.results.overall.level(level)
        lines.append(
            f"{level:<11} flagged {_fmt(first.flag_rate)} -> {_fmt(second.flag_rate)}; "
            f"sensitivity {_fmt(first.sensitivity)} -> {_fmt(second.sensitivity)}"
        )
    return lines


@app.command()
def evaluate(
    model: ModelOpt,
    sessions: SessionsOpt,
    clients: ClientsOpt,
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
    report_path: Annotated[Path, typer.Option("--out", help="Where to write the report.")] = Path(
        "report.html"
    ),
) -> None:
    """Write the evaluation report of a registered model on any labelled cohort."""
    from training.cohort_report import evaluate_cohort
    from training.contract import load_cohort

    output_file("--out", report_path)
    warnings: list[str] = []
    with _warnings_shown(warnings), _steps("validating the cohort") as step:
        cohort = load_cohort(sessions, clients, need_labels=True, warnings=warnings)
        results = evaluate_cohort(models_dir, model, cohort, report_path, step, warnings=warnings)
    _print_baseline_warnings(results)
    out.print(f"AUC {_fmt(results.overall.auc)}, Brier {_fmt(results.overall.brier)}")
    for line in _calibration_lines(results) + _baseline_lines(results):
        out.print(line, markup=False)
    out.print(f"report {report_path}")


@app.command()
def predict(
    model: ModelOpt,
    sessions: SessionsOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Output CSV.")],
    clients: Annotated[
        Path | None, typer.Option("--clients", help="clients.csv for age and gender (optional).")
    ] = None,
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1000, help="Session rows read at a time.")
    ] = 500_000,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Processes (default: up to 2 cores)."),
    ] = None,
) -> None:
    """Score every client at the latest landmark it reached (labels not needed)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from training.predict import predict_file
    from training.registry import Registry

    output_file("--out", out_path)
    loaded = Registry(models_dir).load(model)
    warnings: list[str] = []
    with (
        _warnings_shown(warnings),
        Progress(
            SpinnerColumn(),
            TextColumn("scoring"),
            BarColumn(),
            TextColumn("{task.completed:,} session rows"),
            TimeElapsedColumn(),
            console=err,
        ) as progress,
    ):
        task = progress.add_task("scoring", total=None)
        stats = predict_file(
            loaded,
            sessions,
            clients,
            out_path,
            warnings,
            chunk_rows,
            lambda n: progress.advance(task, n),
            workers,
        )
    if stats.not_scored:
        first = min(loaded.meta.landmarks)
        err.print(
            f"warning: {stats.not_scored:,} client(s) have not reached session "
            f"{first}, the model's first landmark, and were not scored",
            markup=False,
        )
    out.print(f"scored {stats.clients:,} clients with model {loaded.version} -> {out_path}")


@models_app.command("list")
def models_list(models_dir: ModelsDirOpt = DEFAULT_MODELS) -> None:
    """List registered versions and the champions: * marks the network default, [clinic C]
    a clinic's own champion (a clinic without one is served the network default)."""
    from training.registry import Registry

    index = Registry(models_dir).index()
    if not index.versions:
        out.print(f"no models registered in {models_dir}")
        return
    clinics: dict[str, list[str]] = {}
    for clinic, version in sorted(index.clinic_champions.items()):
        clinics.setdefault(version, []).append(clinic)
    out.print(f"champions   network default: {index.champion or 'none'}", markup=False)
    for clinic, version in sorted(index.clinic_champions.items()):
        out.print(f"            clinic {clinic}: {version}", markup=False)
    for item in index.versions:
        mark = "*" if item.version == index.champion else " "
        parts = [f"{mark} {item.version}"]
        if item.auc is not None:
            parts.append(f"{item.created_at}  {item.estimator}  AUC {item.auc:.3f}")
        if item.parent:
            parts.append(f"updated from {item.parent} ({item.method})")
        parts += [f"[clinic {c}]" for c in clinics.get(item.version, [])]
        out.print("  ".join(parts), markup=False)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    clinic: Annotated[
        str | None,
        typer.Option("--clinic", help="Promote for this clinic only (default: network default)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Override the promotion rule (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in the registry history).")
    ] = None,
    auc_margin: Annotated[
        float | None,
        typer.Option(
            "--subgroup-auc-margin",
            min=0.0,
            help="Largest AUC drop allowed in a subgroup (default: the rule's, 0.05).",
        ),
    ] = None,
    calibration_margin: Annotated[
        float | None,
        typer.Option(
            "--subgroup-calibration-margin",
            min=0.0,
            help="Largest extra distance of a subgroup's observed/expected from 1 "
            "(default: the rule's, 0.10).",
        ),
    ] = None,
    min_group_clients: Annotated[
        int | None,
        typer.Option(
            "--min-group-clients",
            min=1,
            help="Subgroups with fewer clients are not checked (default: the rule's, 100).",
        ),
    ] = None,
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
) -> None:
    """Make a registered version the champion of a clinic or the network default, if its
    last comparison against the current champion allows it (docs/updating.md)."""
    from training.promotion import PromotionRule, promote, scope
    from training.registry import Registry

    given = {
        "subgroup_auc_margin": auc_margin,
        "subgroup_calibration_margin": calibration_margin,
        "min_group_clients": min_group_clients,
    }
    rule = PromotionRule(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    done = promote(
        Registry(models_dir),
        version,
        _clinic(clinic),
        actor(),
        "models promote",
        force,
        reason,
        rule,
    )
    was = f" (was {done.previous})" if done.previous and done.previous != version else ""
    forced = " [forced: " + "; ".join(done.check.refusals) + "]" if done.forced else ""
    out.print(f"champion of {scope(clinic)} is now {version}{was}{forced}", markup=False)


@models_app.command("report-path")
def models_report_path(
    model: Annotated[str, typer.Option("--model")] = "champion",
    models_dir: ModelsDirOpt = DEFAULT_MODELS,
) -> None:
    """Print the path of a version's report.html."""
    from training.registry import Registry

    entry = Registry(models_dir).entry(model)
    out.print(str(models_dir / entry.version / "report.html"))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: 2 for anything the user can fix."""
    try:
        app(args=argv, prog_name="dropout-risk")
    except SystemExit as exc:  # Typer exits on its own: 0, or 2 for usage and domain errors
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
