"""A pooled connection the server dropped (Lambda container frozen, proxy idle timeout, failover) must
not turn into a 500: the request runs again on a new connection, or answers a retryable 503."""

from __future__ import annotations

import time
import uuid

import pytest

from wallet_core.adapters import uow as uow_module
from wallet_core.adapters.db import ConnectionPool
from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.domain import errors
from wallet_core.service import idempotency

APP_NAME = "wallet-connection-loss-test"


@pytest.fixture
def engine(database_url):
    """A pool of one connection, as in a Lambda container."""
    pool = ConnectionPool(database_url, size=1, connect_args={"application_name": APP_NAME})
    yield pool
    pool.dispose()


def _open_then_kill(engine, db) -> SqlUnitOfWork:
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.wallets.get(uuid.uuid4())  # the pool now holds one open connection
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,)
    )
    time.sleep(0.1)
    return uow


def _command(uow: SqlUnitOfWork) -> idempotency.Outcome:
    return idempotency.execute(
        uow,
        idempotency.IdempotentRequest(principal="conn-test", key=str(uuid.uuid4()), fingerprint="f"),
        lambda unit: unit.wallets.get(uuid.uuid4()),
        render=lambda _: (200, "{}"),
        render_rejection=lambda error: (500, error.code),
        wait_seconds=1,
    )


def test_a_command_on_a_dropped_connection_runs_again_on_a_new_one(engine, db):
    # Given a pooled connection the server has terminated
    uow = _open_then_kill(engine, db)

    # When an idempotent command uses it
    outcome = _command(uow)

    # Then the lost attempt is retried on a fresh connection and the command succeeds
    assert (outcome.status, outcome.replayed) == (200, False)


def test_a_dropped_connection_outside_a_retrying_command_is_a_retryable_503(engine, db):
    # Given a pooled connection the server has terminated
    uow = _open_then_kill(engine, db)

    # When a plain read uses it, Then it fails as "service unavailable", never as an unknown error
    with pytest.raises(errors.ServiceUnavailableError), uow:
        uow.wallets.get(uuid.uuid4())

    # and the next unit of work has a working connection again
    with uow:
        assert uow.wallets.get(uuid.uuid4()) is None


def test_a_connection_idle_for_long_is_pinged_and_replaced_before_use(engine, db, monkeypatch):
    # Given a pooled connection the server has terminated, idle for longer than the ping threshold
    uow = _open_then_kill(engine, db)
    monkeypatch.setattr(uow_module, "IDLE_PING_SECONDS", 0.0)

    # When a plain read starts, Then the ping notices and it runs on a new connection
    with uow:
        assert uow.wallets.get(uuid.uuid4()) is None


def test_a_live_connection_idle_for_long_passes_the_ping_and_is_kept(engine, db, monkeypatch):
    # Given a pooled connection that is alive, idle for longer than the ping threshold
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.wallets.get(uuid.uuid4())
        before = uow.wallets._session.connection.info.backend_pid
    monkeypatch.setattr(uow_module, "IDLE_PING_SECONDS", 0.0)

    # When the next unit of work starts, Then the ping answers and the same server session serves it
    with uow:
        assert uow.wallets.get(uuid.uuid4()) is None
        assert uow.wallets._session.connection.info.backend_pid == before


def test_a_dead_connection_that_cannot_be_replaced_is_a_503_and_gives_its_place_back(
    database_url, db, monkeypatch
):
    # Given a pool of one whose connection the server terminated, and a server that refuses the
    # replacement
    from psycopg import OperationalError

    from wallet_core.adapters import db as adapters_db

    refusing: list[bool] = []

    def login(open_connection):
        if refusing:
            raise OperationalError("connection refused")
        return open_connection({})

    pool = ConnectionPool(database_url, size=1, connect_args={"application_name": APP_NAME}, login=login)
    uow = _open_then_kill(pool, db)
    monkeypatch.setattr(uow_module, "IDLE_PING_SECONDS", 0.0)
    monkeypatch.setattr(adapters_db, "CHECKOUT_TIMEOUT_SECONDS", 1.0)
    refusing.append(True)

    # When a request starts, Then it answers a retryable 503
    with pytest.raises(errors.ServiceUnavailableError), uow:
        pass

    # and once the server takes logins again, the next request gets the pool's one place
    refusing.clear()
    with uow:
        assert uow.wallets.get(uuid.uuid4()) is None
    pool.dispose()


def test_a_probe_on_a_dropped_connection_fails_once_and_the_next_one_reconnects(engine, db):
    from psycopg import OperationalError

    from wallet_core.adapters.schema import REQUIRED_TABLES, inspect_schema

    # Given a pooled connection the server has terminated
    _open_then_kill(engine, db)

    # When the probes inspect the schema, Then the first sees the database as unreachable (raises)
    with pytest.raises(OperationalError):
        inspect_schema(engine)

    # and the next one runs on a new connection
    revision, tables = inspect_schema(engine)
    assert revision is not None
    assert set(REQUIRED_TABLES) <= tables
