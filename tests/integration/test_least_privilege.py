"""Least privilege in the database: the service connects as a member of `wallet_app`, which has only
the DML it needs; the ledger's entries cannot be updated, deleted or truncated by it, and not even
truncated by their owner; every balance stays below 2^53."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import _libpq, ensure_app_login

MAX_BALANCE = 2**53 - 1


@pytest.fixture
def as_app(database_url: str):
    with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
        yield connection


def test_the_service_connects_as_a_member_of_wallet_app_without_superpowers(database_url):
    from wallet_core.adapters.db import get_pool

    pool = get_pool()
    pooled = pool.checkout()
    try:
        user, member, superuser, owns = pooled.connection.execute(
            "SELECT current_user, pg_has_role(current_user, 'wallet_app', 'member'),"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
            " (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user)"
        ).fetchone()
    finally:
        pool.checkin(pooled)
    assert (member, superuser, owns) == (True, False, 0), user


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1",
        "DELETE FROM entries",
        "TRUNCATE entries",
        "UPDATE transactions SET amount = amount + 1",
        "DELETE FROM transactions",
        "UPDATE wallets SET owner_id = 'thief'",
        "UPDATE wallets SET external_ref = 'acme-acct-stolen'",
        "DELETE FROM provider_events",
        "ALTER TABLE entries DISABLE TRIGGER entries_append_only",
        "DROP TABLE idempotency_keys",
        "CREATE TABLE mine (id int)",
    ],
)
def test_the_app_role_cannot_rewrite_the_ledger(api, as_app, statement):
    api.funded_wallet(100)  # something to change, were it allowed

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app.execute(statement)


def test_a_transfer_through_the_service_works_as_the_app_role(api, invariants):
    source = api.funded_wallet(1_000)
    destination = api.create_wallet()

    result = api.transfer(source["id"], destination["id"], 400)

    assert result.status == 201, result.body
    assert api.get_wallet(destination["id"])["balance"] == 400
    assert invariants() == []


def test_not_even_the_owner_can_truncate_entries_or_transactions(api, db):
    api.funded_wallet(100)

    for table in ("entries", "transactions"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute(f"TRUNCATE {table} CASCADE")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE transactions SET description = 'rewritten'")


def test_a_balance_above_2_to_the_53_is_refused_by_the_database(api, db):
    wallet = api.create_wallet()

    with pytest.raises(psycopg.errors.CheckViolation, match="wallets_balance_ceiling"):
        db.execute("UPDATE wallets SET balance = %s WHERE id = %s", (MAX_BALANCE + 1, wallet["id"]))
    db.execute("UPDATE wallets SET balance = %s, held = 0 WHERE id = %s", (MAX_BALANCE, wallet["id"]))
    db.execute("UPDATE wallets SET balance = 0 WHERE id = %s", (wallet["id"],))


def test_the_roles_are_created_once_per_server_so_a_second_database_migrates(postgres_server):
    from tests.conftest import reset_caches
    from tests.support.lambda_runtime import FakeLambdaContext, load_handler

    url = postgres_server.create_database("wallet_second")
    import os

    saved = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = url
    reset_caches()
    try:
        result = load_handler("migrations")({"action": "upgrade"}, FakeLambdaContext(function_name="m"))
    finally:
        os.environ["DATABASE_URL"] = saved
        reset_caches()
    assert result["status"] == "ok", result
    app_url = ensure_app_login(url)
    with psycopg.connect(_libpq(app_url), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM wallets").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM entries")
