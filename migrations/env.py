"""Alembic environment. Migrations run on a connection handed over by runner.py (which holds the
advisory lock); the URL fallback is only for developers calling `alembic` by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

config = context.config


def run_migrations(connection: Connection) -> None:
    # One transaction for every pending revision: see runner.py for why.
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: set sqlalchemy.url (or run through migrations/runner.py)")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as fresh_connection:
        run_migrations(fresh_connection)
        fresh_connection.commit()
