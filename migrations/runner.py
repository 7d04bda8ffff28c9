"""Apply the Alembic migrations under a PostgreSQL advisory lock, all pending revisions in ONE
transaction.

Two concurrent runs (two deployments, a retry while the first is still going) serialise on the
lock: one migrates, the other waits and then finds nothing to do.

One transaction for the whole run (env.py: transaction_per_migration=False), not one per revision:
a deploy's migrations land together or not at all, so a failing revision, or a run cut short by the
Lambda timeout, leaves the database at the head it had, on which the previous build is known to
run; PostgreSQL's DDL is transactional, and CREATE ROLE and GRANT are too. A future revision that
cannot run in a transaction (CREATE INDEX CONCURRENTLY) opens `op.get_context().autocommit_block()`
for that statement and must be written to be rerun safely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, pool, text

from wallet_core.adapters.db import resolve_database_url, with_iam_token
from wallet_core.config import Settings, get_settings

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


def use_iam_tokens(engine: Engine, settings: Settings) -> Engine:
    """With IAM database auth, every new connection of the engine signs a fresh token as its
    password (the service's connections do the same without SQLAlchemy: wallet_core.adapters.db)."""
    if settings.database_iam_auth and not settings.database_url:
        event.listen(engine, "do_connect", iam_token_listener)
    return engine


def iam_token_listener(dialect: Any, connection_record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    """SQLAlchemy's `do_connect` hook: the new connection's parameters get a fresh token."""
    with_iam_token(cparams)


def _engine(database_url: str) -> Engine:
    # hide_parameters: a failed statement's values never reach the migration function's log.
    engine = create_engine(database_url, poolclass=pool.NullPool, hide_parameters=True)
    return use_iam_tokens(engine, get_settings())


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


# The application's login (APP_DATABASE_SECRET_ARN: JSON with username and password) is created or
# updated here, by the migration role, so the functions never need the master secret. The password
# travels as a hidden bind parameter into a transaction-local setting and is applied by the server
# (format %L), so it is never part of a statement's text, in an error or in a log.
_ENSURE_APP_LOGIN_SQL = """
DO $$
DECLARE
    login text := current_setting('wallet.app_login');
    existing pg_catalog.pg_roles%ROWTYPE;
BEGIN
    SELECT * INTO existing FROM pg_catalog.pg_roles WHERE rolname = login;
    IF FOUND AND (existing.rolsuper OR existing.rolcreaterole OR existing.rolcreatedb
                  OR existing.rolreplication OR existing.rolbypassrls OR login = current_user
                  OR login = 'wallet_app') THEN
        RAISE EXCEPTION 'the application login must be an unprivileged role';
    END IF;
    IF NOT FOUND THEN
        EXECUTE format('CREATE ROLE %I LOGIN', login);
    END IF;
    EXECUTE format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
                   login, current_setting('wallet.app_password'));
    EXECUTE format('GRANT wallet_app TO %I', login);
END $$
"""


def app_login_secret() -> dict[str, Any] | None:
    """The application's login from APP_DATABASE_SECRET_ARN, read straight from Secrets Manager."""
    secret_arn = os.environ.get("APP_DATABASE_SECRET_ARN")
    if not secret_arn:
        return None
    import boto3

    response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    secret: dict[str, Any] = json.loads(response["SecretString"])
    return secret


def ensure_app_login(database_url: str, secret: dict[str, Any] | None = None) -> str | None:
    """Create or update the application's login role (a member of wallet_app, nothing more).
    Returns its name, or None when no app secret is configured."""
    secret = secret if secret is not None else app_login_secret()
    if secret is None:
        return None
    with _engine(database_url).connect() as connection:
        if not connection.execute(
            text("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'wallet_app'")
        ).first():
            return None  # a schema older than 0003: nothing to be a member of yet
        connection.execute(
            text(
                "SELECT set_config('wallet.app_login', :login, true),"
                " set_config('wallet.app_password', :password, true)"
            ),
            {"login": secret["username"], "password": secret["password"]},
        )
        connection.execute(text(_ENSURE_APP_LOGIN_SQL))
        connection.commit()
    login: str = secret["username"]
    return login


def upgrade_to_head(database_url: str) -> str | None:
    return _run_locked(database_url, lambda config: command.upgrade(config, "head"))


def downgrade_to(database_url: str, revision: str) -> str | None:
    """For tests and emergencies only: deployments never downgrade (expand/contract instead)."""
    return _run_locked(database_url, lambda config: command.downgrade(config, revision))
