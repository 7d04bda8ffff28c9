"""The layer ships exactly the runtime dependencies pyproject declares, and nothing heavy."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _requirements(path: Path) -> set[str]:
    return {
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    }


def test_layer_requirements_match_the_project_runtime_dependencies():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])

    assert _requirements(ROOT / "layers/common/requirements.txt") == declared


def test_alembic_ships_only_with_the_migration_function():
    layer = " ".join(_requirements(ROOT / "layers/common/requirements.txt"))

    assert "alembic" not in layer
    assert any(line.startswith("alembic") for line in _requirements(ROOT / "migrations/requirements.txt"))
