"""Schema facts for the probes: the revision the database is at and which tables exist."""

from __future__ import annotations

from wallet_core.adapters.db import ConnectionPool, get_pool

# The tables every build of this code needs (the migrations create them); /ready reports any that
# are missing. A test checks the list against a freshly migrated database.
REQUIRED_TABLES = (
    "balance_snapshots",
    "entries",
    "holds",
    "idempotency_keys",
    "provider_events",
    "system_accounts",
    "transactions",
    "unresolved_settlements",
    "wallets",
)


def inspect_schema(pool: ConnectionPool | None = None) -> tuple[str | None, set[str]]:
    """(alembic revision or None, names of the tables in the connection's schema)."""
    pool = pool or get_pool()
    pooled = pool.checkout()
    try:
        connection = pooled.connection  # autocommit: each statement on its own, no transaction left
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
            )
        }
        revision = None
        if "alembic_version" in tables:
            found = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = found[0] if found else None
    except BaseException:
        pool.discard(pooled)
        raise
    pool.checkin(pooled)
    return revision, tables
