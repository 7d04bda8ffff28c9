"""GET /ready (functions/ready): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import psycopg

import runner
from tests.conftest import _libpq
from tests.integration.conftest import probe
from wallet_core.schema_version import SCHEMA_HEAD


def test_ready_is_503_unless_the_schema_is_at_head(empty_database, pointed_at):
    pointed_at(empty_database)

    unmigrated = probe("ready")
    runner.upgrade_to_head(empty_database)
    with psycopg.connect(_libpq(empty_database)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0000'")
    behind = probe("ready")
    with psycopg.connect(_libpq(empty_database)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    ahead = probe("ready")
    with psycopg.connect(_libpq(empty_database)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = %s", (SCHEMA_HEAD,))
        connection.execute("DROP TABLE idempotency_keys")
    missing = probe("ready")

    assert (unmigrated.status, unmigrated.body["reason"]) == (503, "missing_tables")
    assert (behind.status, behind.body["reason"]) == (503, "schema_behind")
    assert (ahead.status, ahead.body["reason"]) == (503, "schema_ahead")
    assert (missing.status, missing.body["missing_tables"]) == (503, ["idempotency_keys"])
