"""Migrations (up, down, up; concurrent runs) and the routes' answer when the database is down.
(The probes' own tests: test_health.py, test_ready.py, test_version.py.)"""

from __future__ import annotations

import threading

import psycopg
from alembic.script import ScriptDirectory

import runner
from tests.conftest import _libpq
from tests.support.lambda_runtime import FakeLambdaContext, api_event, load_handler, parse_result
from wallet_core.adapters.schema import REQUIRED_TABLES
from wallet_core.schema_version import SCHEMA_HEAD


def _tables(url: str) -> set[str]:
    with psycopg.connect(_libpq(url)) as connection:
        return {
            row[0]
            for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database):
    assert runner.upgrade_to_head(empty_database) == SCHEMA_HEAD
    assert set(REQUIRED_TABLES) <= _tables(empty_database)

    assert runner.downgrade_to(empty_database, "base") is None
    assert _tables(empty_database) == {"alembic_version"}

    assert runner.upgrade_to_head(empty_database) == SCHEMA_HEAD
    assert set(REQUIRED_TABLES) <= _tables(empty_database)


def test_the_layer_knows_the_head_the_migrations_end_at():
    assert runner.head_revision() == SCHEMA_HEAD


def test_the_probes_require_exactly_the_tables_the_migrations_create(database_url):
    assert _tables(database_url) - {"alembic_version"} == set(REQUIRED_TABLES)


def test_two_concurrent_migration_runs_one_migrates_the_other_finds_nothing_to_do(empty_database):
    results: list = []
    barrier = threading.Barrier(2)

    def migrate() -> None:
        barrier.wait()
        results.append(runner.upgrade_to_head(empty_database))

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [SCHEMA_HEAD, SCHEMA_HEAD]
    with psycopg.connect(_libpq(empty_database)) as connection:
        assert connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


def test_the_migration_handler_reports_the_current_revision(database_url):
    handler = load_handler("migrations")

    current = handler({"action": "current"}, FakeLambdaContext(function_name="migrate"))
    unknown = handler({"action": "explode"}, FakeLambdaContext(function_name="migrate"))

    assert current == {"status": "ok", "revision": SCHEMA_HEAD, "head": SCHEMA_HEAD}
    assert unknown["status"] == "error"


def test_api_routes_answer_503_with_retry_after_when_the_database_is_down(pointed_at):
    from tests.conftest import ADMIN
    from tools.pgserver import free_port

    pointed_at(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    handler = load_handler("functions/wallet_create")
    event = api_event("POST", "/v1/wallets", body={"currency": "USD"}, claims=ADMIN, idempotency_key="k-down")

    result = parse_result(handler(event, FakeLambdaContext()))

    assert (result.status, result.code) == (503, "service_unavailable")
    assert result.headers["retry-after"] == "1"
    assert "127.0.0.1" not in result.raw_body


def test_revision_ids_are_zero_padded_sequence_numbers_so_ready_can_order_them():
    ids = [
        script.revision for script in ScriptDirectory.from_config(runner.alembic_config()).walk_revisions()
    ]
    ordered = sorted(ids)
    assert ordered == [f"{n:04d}" for n in range(1, len(ids) + 1)]
    assert ordered[-1] == SCHEMA_HEAD
