"""The layer ships nothing heavy (its lock is checked against pyproject.toml in test_lock.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _requirements(path: Path) -> set[str]:
    # Requirement lines only: not comments, not the lock's `--hash` continuation lines.
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line for line in lines if line and not line.startswith(("#", "--"))}


def test_alembic_ships_only_with_the_migration_function():
    layer = " ".join(_requirements(ROOT / "layers/common/requirements.txt"))

    assert "alembic" not in layer
    assert any(line.startswith("alembic") for line in _requirements(ROOT / "migrations/requirements.txt"))


def test_sqlalchemy_ships_only_with_the_migration_function():
    # The service reaches PostgreSQL through psycopg alone (test_cold_import.py checks the imports).
    layer = " ".join(_requirements(ROOT / "layers/common/requirements.txt"))

    assert "sqlalchemy" not in layer.lower()
    assert any(line.startswith("sqlalchemy") for line in _requirements(ROOT / "migrations/requirements.txt"))
