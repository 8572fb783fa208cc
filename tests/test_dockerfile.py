"""The Dockerfile agrees with the repository, pyproject.toml, the CLI and the Makefile.

No Docker engine is needed (none exists in CI): the Dockerfile is parsed as text, and its
start command is run by /bin/sh with a stand-in `dropout-risk` that prints its arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from service.commands.db import DEFAULT_DATABASE_URL
from training.cli import app as cli_app

REPO = Path(__file__).resolve().parents[1]
PORT = 8000


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM it belongs to
    name: str  # upper case: FROM, COPY, ...
    args: str


def _instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continuation
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continuation"
    result: list[Instruction] = []
    stage = -1
    for line in logical:
        name, _, args = line.partition(" ")
        stage += name.upper() == "FROM"
        result.append(Instruction(stage, name.upper(), args.strip()))
    return result


DOCKERFILE = _instructions((REPO / "Dockerfile").read_text())
FINAL = max(i.stage for i in DOCKERFILE)
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _all(name: str, stage: int | None = None) -> list[str]:
    return [i.args for i in DOCKERFILE if i.name == name and stage in (None, i.stage)]


def _one(name: str, stage: int = FINAL) -> str:
    found = _all(name, stage)
    assert len(found) == 1, f"expected one {name} in the final stage, found {found}"
    return found[0]


def _words(args: str) -> list[str]:
    """Exec (JSON) form or shell form, as a list of words."""
    if args.startswith("["):
        words = json.loads(args)
        assert isinstance(words, list)
        return [str(w) for w in words]
    return shlex.split(args)


def _flags_and_rest(words: list[str]) -> tuple[dict[str, str], list[str]]:
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words


def _copies() -> list[tuple[int, dict[str, str], list[str], str]]:
    """(stage, flags, sources, destination) of every COPY."""
    result = []
    for item in DOCKERFILE:
        if item.name in ("COPY", "ADD"):
            assert item.name == "COPY", "use COPY, not ADD"
            flags, rest = _flags_and_rest(_words(item.args))
            assert len(rest) >= 2, item.args
            result.append((item.stage, flags, rest[:-1], rest[-1]))
    return result


def _env(stage: int = FINAL) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all("ENV", stage):
        for word in shlex.split(args):
            name, sep, value = word.partition("=")
            assert sep, f"ENV {args!r}: use the NAME=value form"
            env[name] = value
    return env


def _start_command() -> str:
    """The final stage's CMD, an exec-form `/bin/sh -c SCRIPT` (no ENTRYPOINT)."""
    assert _all("ENTRYPOINT", FINAL) == []
    words = _words(_one("CMD"))
    assert words[:2] == ["/bin/sh", "-c"]
    assert len(words) == 3
    return words[2]


def _stage_names() -> dict[str, int]:
    names = {}
    for item in DOCKERFILE:
        words = item.args.split()
        if item.name == "FROM" and len(words) == 3 and words[1].upper() == "AS":
            names[words[2]] = item.stage
    return names


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    ignore = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"  # an allow-list: keys, .venv, .git, data never enter the context
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed.isdisjoint({"var", ".venv", ".git", "build", "data"})
    stages = _stage_names()
    context_sources = []
    for stage, flags, sources, _ in _copies():
        if "from" in flags:
            assert stages.get(flags["from"], FINAL) < stage, f"unknown stage {flags['from']}"
            continue
        for source in sources:
            assert "*" not in source, f"COPY {source}: name files, no wildcards"
            assert ".." not in source, f"COPY {source}: outside the build context"
            path = REPO / source
            assert path.exists(), f"COPY source {source} is not in the repository"
            context_sources.append(source.rstrip("/"))
            top = Path(source).parts[0]
            assert top in allowed, f"{source} is excluded by .dockerignore"
    assert sorted(context_sources) == sorted(
        ["pyproject.toml", "README.md", "training", "service", "models"]
    )


def test_project_is_installed_with_pip_from_the_copied_sources() -> None:
    runs = " ".join(_all("RUN"))
    assert "pip install --no-cache-dir ." in runs
    readme = PYPROJECT["project"]["readme"]
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {s.rstrip("/") for stage, flags, sources, _ in _copies() for s in sources}
    assert readme in copied
    assert {p.rstrip("*") for p in packages} <= copied


def test_base_image_is_a_slim_python_allowed_by_requires_python() -> None:
    allowed = SpecifierSet(PYPROJECT["project"]["requires-python"])
    stages = _stage_names()
    versions = set()
    for args in _all("FROM"):
        image = args.split()[0]
        if image in stages:
            continue
        match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim(?:-[a-z]+)?", image)
        assert match is not None, f"{image} is not a slim Python image"
        assert Version(match[1]) in allowed, f"{image} is not allowed by {allowed}"
        versions.add(match[1])
    assert versions == {"3.11"}  # one interpreter: the build stage's venv runs in the final one


def test_start_command_is_the_declared_console_script() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["dropout-risk"] == "training.cli:main"
    command = _start_command()
    serve = command[command.index("exec dropout-risk serve ") + len("exec ") :]
    words = shlex.split(serve.replace('"${DROPOUT_RISK_WORKERS:-$cores}"', "N"))
    assert words[:2] == ["dropout-risk", "serve"]
    options = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
    click_app = typer.main.get_command(cli_app)
    serve_command = click_app.commands["serve"]  # type: ignore[attr-defined]
    accepted = {opt for param in serve_command.params for opt in param.opts}
    assert options <= accepted, f"serve does not accept {options - accepted}"
    assert options == {"--host", "--port", "--models-dir", "--workers"}


def _serve_args() -> list[str]:
    command = _start_command()
    return shlex.split(command[command.index("dropout-risk serve") :].split(";")[0])


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_served_port_is_the_exposed_and_health_checked_port() -> None:
    args = _serve_args()
    assert _option(args, "--host") == "0.0.0.0"
    assert int(_option(args, "--port")) == PORT
    assert [int(p.split("/")[0]) for p in _one("EXPOSE").split()] == [PORT]
    match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)", _one("HEALTHCHECK"))
    assert match is not None, "HEALTHCHECK [--option=value ...] CMD ..."
    flags = {flag.split("=")[0] for flag in match[1].split()}
    assert flags <= {"--interval", "--timeout", "--start-period", "--start-interval", "--retries"}
    probe = _words(match[2])
    assert probe[:2] == ["python", "-c"]  # slim has no curl
    urls = re.findall(r"https?://[^'\"\s]+", probe[2])
    assert urls == [f"http://127.0.0.1:{PORT}/healthz"]
    assert "urllib.request.urlopen" in probe[2]


def _asgi_get(app: Any, path: str) -> int:
    """Status of one plain GET straight through the ASGI interface (no lifespan, no client)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", PORT),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    return int(start["status"])


def test_health_check_path_answers_200_without_a_key() -> None:
    from service.app import create_app
    from service.core.settings import Settings

    app = create_app(Settings())
    assert _asgi_get(app, "/healthz") == 200  # what urlopen needs to exit 0
    assert _asgi_get(app, "/healthz-not-a-route") == 404


def test_user_is_not_root() -> None:
    users = _all("USER", FINAL)
    assert users, "the final stage sets no USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    runs = " ".join(_all("RUN", FINAL))
    assert re.search(rf"useradd .*--uid {user}\b", runs) or re.search(rf"useradd .* {user}$", runs)
    last_user = max(i for i, x in enumerate(DOCKERFILE) if x.name == "USER")
    last_cmd = max(i for i, x in enumerate(DOCKERFILE) if x.name == "CMD")
    assert last_user < last_cmd


def test_runtime_environment() -> None:
    env = _env()
    assert env["OMP_NUM_THREADS"] == "1"
    database = env["DROPOUT_RISK_DATABASE_URL"]
    assert database == "sqlite:////app/var/dropout-risk.db"  # inside the volume
    assert Path(DEFAULT_DATABASE_URL.removeprefix("sqlite:///")).name == Path(database).name
    assert _words(_one("VOLUME")) == ["/app/var"]
    assert _option(_serve_args(), "--models-dir") == "/app/models"
    assert env["DROPOUT_RISK_MODELS_DIR"] == "/app/models"
    model_copies = [
        (sources, dest)
        for stage, flags, sources, dest in _copies()
        if stage == FINAL and dest.rstrip("/") == "/app/models"
    ]
    assert model_copies == [(["models/"], "/app/models/")]


def _run_start_command(tmp_path: Path, extra_env: dict[str, str]) -> list[str]:
    """Run the CMD script with a `dropout-risk` that prints its arguments one per line."""
    fake = tmp_path / "dropout-risk"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", **extra_env}
    done = subprocess.run(
        ["/bin/sh", "-c", _start_command()],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return done.stdout.splitlines()


def test_workers_default_to_one_per_core_and_follow_the_env(tmp_path: Path) -> None:
    # GNU nproc honours OMP_NUM_THREADS (the image sets it to 1): count the cores without it
    cores = int(
        subprocess.run(
            ["env", "-u", "OMP_NUM_THREADS", "nproc"], capture_output=True, text=True, check=True
        ).stdout
    )
    args = _run_start_command(tmp_path, {})
    assert args[:1] == ["serve"]
    assert _option(args, "--workers") == str(min(cores, 64))
    assert _option(args, "--port") == str(PORT)
    args = _run_start_command(tmp_path, {"DROPOUT_RISK_WORKERS": "3"})
    assert _option(args, "--workers") == "3"


def _makefile_variables(text: str) -> dict[str, str]:
    variables = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?=|:=|=)\s*(.*?)\s*", line)
        if match:
            variables[match[1]] = match[2]
    return variables


def _recipe(text: str, target: str) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return " ".join(line.rstrip("\\") for line in recipe)


@pytest.fixture(scope="module")
def makefile() -> str:
    return (REPO / "Makefile").read_text()


def test_make_run_starts_the_same_server_on_the_copied_models(makefile: str) -> None:
    recipe = _recipe(makefile, "run")
    assert "dropout-risk serve" in recipe
    serve = shlex.split(recipe[recipe.index("dropout-risk serve") :])
    models = _option(serve, "--models-dir")
    variables = _makefile_variables(makefile)
    models = re.sub(r"\$\((\w+)\)", lambda m: variables[m[1]], models)
    assert models == "models"
    assert int(_option(serve, "--port")) == PORT
    copied = [s.rstrip("/") for stage, _, sources, dest in _copies() for s in sources]
    assert models in copied


def test_the_numba_cache_is_baked_into_the_image(tmp_path: Path) -> None:
    """Built in the final stage (the kernels' source files, whose stamps key the cache, are
    those the container runs), outside the volume, writable by the service user; and the
    build step really fills a cache."""
    cache = _env()["NUMBA_CACHE_DIR"]
    volume = _words(_one("VOLUME"))[0]
    assert not cache.startswith(volume.rstrip("/") + "/")
    bake = [args for args in _all("RUN", FINAL) if "service.warmup" in args]
    assert len(bake) == 1
    step = [part.strip() for part in bake[0].split("&&")]
    assert step == [
        f"mkdir -p {cache}",
        "python -m service.warmup /app/models",
        f"chown -R 10001:10001 {cache}",
    ]
    order = [i.args for i in DOCKERFILE if i.stage == FINAL]
    assert order.index(bake[0]) > max(
        order.index(i.args) for i in DOCKERFILE if i.stage == FINAL and i.name == "COPY"
    )
    done = subprocess.run(
        [sys.executable, "-m", "service.warmup", str(REPO / "models")],
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        timeout=300,
        check=True,
    )
    assert done.returncode == 0
    kernels = {p.name.split(".")[0] for p in tmp_path.rglob("*.nbi")}
    assert {"features", "publish", "score"} <= {k.split("-")[0] for k in kernels}
