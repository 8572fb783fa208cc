"""What may import what (docs/architecture.md, The CLI).

The rule: no module under training/ imports service/, at module level or inside a
function, except `training.cli.service_command`, the single place where the command tree
loads a service command (serve, keys, db, export, audit, demo) when it is run. So the
analysts' package can be used, and `dropout-risk validate` run, without SQLAlchemy,
Alembic or FastAPI.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parent.parent / "training"
ALLOWED = {("cli.py", "service_command")}
HEAVY = ("sqlalchemy", "service", "numba", "fastapi", "alembic")


def _service_imports(path: Path) -> list[tuple[str, str, int]]:
    """(file, enclosing function or '<module>', line) of every import of service."""
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef) else where
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module or ""]
            if any(n == "service" or n.startswith("service.") for n in names):
                found.append((path.name, where, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>")
    return found


def test_training_imports_service_only_where_the_cli_dispatches() -> None:
    modules = sorted(TRAINING.rglob("*.py"))
    assert len(modules) > 20  # the package, not an empty glob
    imports = [hit for path in modules for hit in _service_imports(path)]
    assert [hit for hit in imports if hit[:2] not in ALLOWED] == []
    assert {hit[:2] for hit in imports} == ALLOWED  # the documented place is still the one


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("import os\n\ndef f():\n    from service.storage import repository\n")
    assert _service_imports(source) == [("x.py", "f", 4)]


def _modules_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    return [name for name in HEAVY if name in loaded]


@pytest.mark.parametrize(
    "code",
    [
        "import training.cli",
        "from training.cli import run\nrun(['--help'])",
        "from training.cli import run\nrun(['validate', '--help'])",
    ],
    ids=["import", "help", "validate-help"],
)
def test_the_cli_loads_no_service_stack(code: str) -> None:
    assert _modules_after(code) == []


def test_a_service_command_loads_it_when_run() -> None:
    assert "sqlalchemy" in _modules_after("from training.cli import run\nrun(['db', '--help'])")
