"""The repository stands alone: what its code and docs cite is in it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITED_MD = re.compile(r"(?<![\w/.:-])((?:\.\./|/)?[\w./-]*[\w-]\.md)\b")
MACHINE_PATH = re.compile(r"(?<![\w.])/work/|\.\./shared")
# Named in code and docs as a file of every model artifact: written by training, not stored.
WRITTEN_BY_TRAINING = {"model_card.md": REPO / "training" / "train.py"}


def _texts() -> list[Path]:
    code = [p for d in ("training", "service", "bench", "tests") for p in (REPO / d).rglob("*.py")]
    return [*code, *(REPO / "docs").glob("*.md"), REPO / "README.md", REPO / "Makefile"]


def _resolves(cited: str, source: Path) -> bool:
    if cited in WRITTEN_BY_TRAINING:
        return f'"{cited}"' in WRITTEN_BY_TRAINING[cited].read_text()
    relative = cited.lstrip("/")
    return any(
        (base / relative).is_file() for base in (REPO, REPO / "docs", source.parent, REPO / "bench")
    )


def test_every_cited_markdown_file_is_in_the_repository() -> None:
    missing = [
        f"{path.relative_to(REPO)}: {cited}"
        for path in _texts()
        if path != Path(__file__)
        for cited in CITED_MD.findall(path.read_text())
        if not _resolves(cited, path)
    ]
    assert missing == []


def test_no_code_or_doc_points_outside_the_repository() -> None:
    outside = [
        f"{path.relative_to(REPO)}:{n}"
        for path in _texts()
        if path != Path(__file__)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if MACHINE_PATH.search(line)
    ]
    assert outside == []


def test_every_packaged_data_pattern_matches_a_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]
    empty = [
        f"{package}: {pattern}"
        for package, globs in patterns.items()
        for pattern in globs
        if not any((REPO / package.replace(".", "/")).glob(pattern))
    ]
    assert empty == []
