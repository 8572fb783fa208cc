"""What may import what (docs/architecture.md, "The rooms" and "The CLI").

The rules:
- no module under training/ imports service/, at module level or inside a function, except
  `training.cli.service_command`, the single place where the command tree loads a service
  command (serve, keys, db, export, audit, demo) when it is run. So the analysts' package
  can be used, and `dropout-risk validate` run, without SQLAlchemy, Alembic or FastAPI;
- inside service/, a room imports only the rooms ROOMS allows it (every room may import
  training/);
- no test module imports another test module (shared code is in tests/support/, shared
  fixtures in conftest.py files).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TRAINING = REPO / "training"
SERVICE = REPO / "service"
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


# Room -> the other rooms of service/ it may import. "app" is service/app.py and
# service/warmup.py, which assemble the application from every room.
ROOMS: dict[str, set[str]] = {
    "core": set(),
    "storage": {"core"},
    "scoring": {"core", "storage"},
    "security": {"core", "storage", "scoring"},
    "interop": {"core"},
    "api": {"core", "storage", "scoring", "security", "interop"},
    "ui": {"core", "storage", "scoring", "security", "api"},
    "commands": {"core", "storage", "scoring", "security"},
    "app": {"core", "storage", "scoring", "security", "interop", "api", "ui", "commands"},
}
# None left: the WAI-SR item map, once read by storage from scoring, is training.vocabulary's.
EXCEPTIONS: set[tuple[str, str]] = set()


def _room_of_file(path: Path) -> str:
    parts = path.relative_to(SERVICE).parts
    return parts[0] if len(parts) > 1 else "app"


def _room_of_module(name: str) -> str:
    parts = name.split(".")
    return parts[1] if (SERVICE / parts[1]).is_dir() else "app"


def _imported_services(path: Path) -> list[str]:
    """Every service module `path` imports (`from service import x` names service.x)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("service.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "service":
                found += [f"service.{a.name}" for a in node.names]
            elif node.module.startswith("service."):
                found.append(node.module)
    return found


def test_every_service_module_is_in_a_room_with_rules() -> None:
    modules = sorted(SERVICE.rglob("*.py"))
    assert len(modules) > 40
    assert {_room_of_file(path) for path in modules} == set(ROOMS)


def test_each_room_imports_only_the_rooms_it_may() -> None:
    broken = []
    seen = set()
    for path in sorted(SERVICE.rglob("*.py")):
        room = _room_of_file(path)
        for name in _imported_services(path):
            target = _room_of_module(name)
            if target == room or target in ROOMS[room]:
                continue
            where = (str(path.relative_to(SERVICE)), name)
            if where in EXCEPTIONS:
                seen.add(where)
            else:
                broken.append(f"service/{where[0]} ({room}) imports {name} ({target})")
    assert broken == []
    assert seen == EXCEPTIONS  # an exception that no longer occurs is taken off the list


def test_the_room_checker_sees_every_import_form(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        "import service.storage.engine\nfrom service import app\n"
        "def f():\n    from service.api.deps import Db\n"
    )
    found = _imported_services(source)
    assert found == ["service.storage.engine", "service.app", "service.api.deps"]
    assert [_room_of_module(n) for n in found] == ["storage", "app", "api"]


def test_no_test_module_imports_another() -> None:
    tests = REPO / "tests"
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []
