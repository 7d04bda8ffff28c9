"""Migrations (up, down, up; concurrent runs) and the probes that report on them."""

from __future__ import annotations

import threading

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

import runner
from tests.conftest import _libpq, reset_caches
from tests.support.lambda_runtime import FakeLambdaContext, api_event, load_handler, parse_result
from wallet_core.adapters.tables import REQUIRED_TABLES, metadata
from wallet_core.schema_version import SCHEMA_HEAD


@pytest.fixture
def empty_database(postgres_server) -> str:
    return postgres_server.create_database("wallet_migrations")


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


def test_table_descriptions_match_the_migrated_columns(database_url):
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            columns = {
                row[0]
                for row in connection.exec_driver_sql(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table.name,)
                )
            }
            assert columns == set(table.columns.keys()), table.name


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


def _probe(name: str):
    handler = load_handler(f"functions/{name}")
    return parse_result(
        handler(api_event("GET", f"/{name}", claims=None), FakeLambdaContext(function_name=name))
    )


@pytest.fixture
def pointed_at(monkeypatch):
    """Point the service at another database for one test."""

    def point(url: str) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
        reset_caches()

    yield point
    monkeypatch.undo()
    reset_caches()


def test_health_and_ready_are_ok_at_head(database_url):
    health, ready = _probe("health"), _probe("ready")

    assert (health.status, health.body) == (
        200,
        {"status": "ok", "database": "ok", "schema_revision": SCHEMA_HEAD},
    )
    assert (ready.status, ready.body["status"], ready.body["schema_revision"]) == (200, "ready", SCHEMA_HEAD)


def test_ready_is_503_unless_the_schema_is_at_head(empty_database, pointed_at):
    pointed_at(empty_database)

    unmigrated = _probe("ready")
    runner.upgrade_to_head(empty_database)
    with psycopg.connect(_libpq(empty_database)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0000'")
    behind = _probe("ready")
    with psycopg.connect(_libpq(empty_database)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    ahead = _probe("ready")
    with psycopg.connect(_libpq(empty_database)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = %s", (SCHEMA_HEAD,))
        connection.execute("DROP TABLE idempotency_keys")
    missing = _probe("ready")

    assert (unmigrated.status, unmigrated.body["reason"]) == (503, "missing_tables")
    assert (behind.status, behind.body["reason"]) == (503, "schema_behind")
    assert (ahead.status, ahead.body["reason"]) == (503, "schema_ahead")
    assert (missing.status, missing.body["missing_tables"]) == (503, ["idempotency_keys"])


def test_health_and_ready_are_503_when_the_database_is_down(pointed_at):
    from tools.pgserver import free_port

    pointed_at(f"postgresql+psycopg://postgres:not-a-real-password@127.0.0.1:{free_port()}/nowhere")

    health, ready = _probe("health"), _probe("ready")

    assert (health.status, health.body) == (503, {"status": "error", "database": "unreachable"})
    assert (ready.status, ready.body["reason"]) == (503, "database_unreachable")
    assert "not-a-real-password" not in health.raw_body + ready.raw_body


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


def test_version_reports_the_build_and_no_secrets(monkeypatch, pointed_at):
    pointed_at("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x")
    monkeypatch.setenv("APP_VERSION", "1.2.3")
    monkeypatch.setenv("GIT_SHA", "abc1234")
    monkeypatch.setenv("STAGE", "staging")
    monkeypatch.setenv("CI_RUN_NUMBER", "4711")
    monkeypatch.setenv("GIT_BRANCH", "main")
    reset_caches()

    result = _probe("version")

    assert result.status == 200
    assert result.body == {
        "version": "1.2.3",
        "git_sha": "abc1234",
        "build_time": "unknown",
        "ci_run_number": "4711",
        "git_branch": "main",
        "stage": "staging",
        "function_version": "$LATEST",
        "schema_head": SCHEMA_HEAD,
    }
    assert "s3cret" not in result.raw_body


def test_version_says_unknown_for_a_build_outside_ci(monkeypatch, pointed_at):
    pointed_at("postgresql+psycopg://postgres@127.0.0.1:1/x")
    for name in ("CI_RUN_NUMBER", "GIT_BRANCH"):
        monkeypatch.delenv(name, raising=False)
    reset_caches()

    body = _probe("version").body

    assert (body["ci_run_number"], body["git_branch"]) == ("unknown", "unknown")


def test_revision_ids_are_zero_padded_sequence_numbers_so_ready_can_order_them():
    ids = [
        script.revision for script in ScriptDirectory.from_config(runner.alembic_config()).walk_revisions()
    ]
    ordered = sorted(ids)
    assert ordered == [f"{n:04d}" for n in range(1, len(ids) + 1)]
    assert ordered[-1] == SCHEMA_HEAD
