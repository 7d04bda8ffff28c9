"""Schema facts for the probes: the revision the database is at and which tables exist."""

from __future__ import annotations

from sqlalchemy import Engine, text

from wallet_core.adapters.db import get_engine


def inspect_schema(engine: Engine | None = None) -> tuple[str | None, set[str]]:
    """One round trip: (alembic revision or None, names of the public tables)."""
    with (engine or get_engine()).connect() as connection:
        tables = set(
            connection.execute(
                text("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()")
            ).scalars()
        )
        revision = None
        if "alembic_version" in tables:
            revision = connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar_one_or_none()
        return revision, tables
