"""Apply the Alembic migrations under a PostgreSQL advisory lock.

Two concurrent runs (two deployments, a retry while the first is still going) serialise on the
lock: one migrates, the other waits and then finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool, text

from wallet_core.adapters.db import resolve_database_url, use_iam_tokens
from wallet_core.config import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent
# Arbitrary but fixed: every migration run of this service contends for the same lock.
ADVISORY_LOCK_KEY = 7_450_312_211


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    # None only for an empty versions/ directory, or several heads (get_current_head raises then).
    if head is None:
        raise RuntimeError(f"no Alembic head in {MIGRATIONS_DIR / 'versions'}")
    return head


def database_url_for_migrations() -> str:
    """The writer's URL (DATABASE_HOST points the migration function at the writer, not the proxy)."""
    return resolve_database_url(get_settings())


def _engine(database_url: str) -> Engine:
    return use_iam_tokens(create_engine(database_url, poolclass=pool.NullPool), get_settings())


def current_revision(database_url: str) -> str | None:
    with _engine(database_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _run_locked(database_url: str, action: Callable[[Config], None]) -> str | None:
    with _engine(database_url).connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        connection.commit()
        try:
            config = alembic_config()
            config.attributes["connection"] = connection
            action(config)
            connection.commit()
            return MigrationContext.configure(connection).get_current_revision()
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()


def upgrade_to_head(database_url: str) -> str | None:
    return _run_locked(database_url, lambda config: command.upgrade(config, "head"))


def downgrade_to(database_url: str, revision: str) -> str | None:
    """For tests and emergencies only: deployments never downgrade (expand/contract instead)."""
    return _run_locked(database_url, lambda config: command.downgrade(config, revision))
