"""The process's connections (db.ConnectionPool) without a server: what is reused, recycled,
waited for and let go, and the URLs and credentials a connection is opened with."""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest

from wallet_core.adapters import db
from wallet_core.domain import errors


class _FakeConnection:
    """Stands in for a psycopg connection: the pool only opens, keeps and closes it."""

    numbers = itertools.count(1)

    def __init__(self, credentials: dict) -> None:
        self.number = next(self.numbers)
        self.credentials = credentials
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _pool(size: int = 1, logins: list | None = None) -> db.ConnectionPool:
    def login(open_connection):  # the pool's `login` hook: here it opens a fake instead
        connection = _FakeConnection({})
        if logins is not None:
            logins.append(connection)
        return connection

    return db.ConnectionPool("postgresql+psycopg://u@h:5432/d", size=size, connect_args={}, login=login)


def test_a_connection_given_back_is_the_one_the_next_request_gets():
    pool = _pool()
    first = pool.checkout()
    pool.checkin(first)

    again = pool.checkout()

    assert again is first
    assert again.last_used is not None


def test_a_connection_older_than_the_recycle_age_is_closed_and_replaced(monkeypatch):
    pool = _pool()
    first = pool.checkout()
    pool.checkin(first)
    monkeypatch.setattr(db, "RECYCLE_SECONDS", -1.0)

    fresh = pool.checkout()

    assert fresh is not first
    assert first.connection.closed


def test_a_request_that_finds_every_connection_taken_waits_then_answers_503(monkeypatch):
    pool = _pool(size=1)
    taken = pool.checkout()
    monkeypatch.setattr(db, "CHECKOUT_TIMEOUT_SECONDS", 0.05)

    with pytest.raises(errors.ServiceUnavailableError):
        pool.checkout()

    pool.discard(taken)  # a broken one gives its place back, closed
    assert taken.connection.closed
    assert pool.checkout() is not taken


def test_a_failed_login_gives_its_place_back():
    def refused(open_connection):
        raise psycopg.OperationalError("connection refused")

    pool = db.ConnectionPool("postgresql+psycopg://u@h/d", size=1, connect_args={}, login=refused)
    for _ in range(2):  # the second attempt is not kept waiting for a slot the first never used
        with pytest.raises(psycopg.OperationalError):
            pool.checkout()


def test_dispose_closes_idle_connections_unless_told_to_only_let_go():
    logins: list = []
    pool = _pool(size=2, logins=logins)
    one, two = pool.checkout(), pool.checkout()
    pool.checkin(one)
    pool.checkin(two)

    pool.dispose(close=False)  # after a SnapStart restore: nothing is said on those sockets
    assert not one.connection.closed
    third = pool.checkout()
    assert third not in (one, two)

    pool.checkin(third)
    pool.dispose()
    assert third.connection.closed


def test_reopen_replaces_a_dead_connection_in_the_same_slot():
    pool = _pool(size=1)
    dead = pool.checkout()

    fresh = pool.reopen(dead)

    assert dead.connection.closed
    assert fresh is not dead
    pool.checkin(fresh)
    assert pool.checkout() is fresh


def test_the_pool_hands_libpq_the_url_without_the_driver_name(monkeypatch):
    seen = []

    def connect(conninfo, **kwargs):
        seen.append((conninfo, kwargs))
        return _FakeConnection(kwargs)

    monkeypatch.setattr(psycopg.Connection, "connect", staticmethod(connect))
    pool = db.ConnectionPool(
        "postgresql+psycopg://app@h:5432/d?sslmode=verify-full",
        size=1,
        connect_args={"application_name": "wallet-test"},
        login=lambda open_connection: open_connection({"user": "from-the-login"}),
    )

    pool.checkout()

    assert seen == [
        (
            "postgresql://app@h:5432/d?sslmode=verify-full",
            {"autocommit": True, "application_name": "wallet-test", "user": "from-the-login"},
        )
    ]


def test_urls_quote_what_libpq_would_misread():
    awkward = "p/w:?"  # characters a URL would read as its own
    url = db._url(
        user="app@x", password=awkward, host="::1", port=5432, database="wallet", query={"sslmode": "disable"}
    )

    assert url == "postgresql+psycopg://app%40x" + ":p%2Fw%3A%3F" + "@[::1]:5432/wallet?sslmode=disable"
    assert db.libpq_url(url).startswith("postgresql://app%40x:")
    assert db.libpq_url("host=h dbname=d") == "host=h dbname=d"  # a keyword conninfo stays as it is


def test_iam_auth_opens_each_connection_with_a_fresh_token(monkeypatch):
    from wallet_core.config import get_settings

    dummy = "testing"  # moto's and botocore's usual stand-in: signing needs some credentials
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": dummy,
        "AWS_SECRET_ACCESS_KEY": dummy,
        "DATABASE_IAM_AUTH": "true",
        "DATABASE_HOST": "proxy.internal",
        "DATABASE_USER": "wallet_app",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    db._rds_client.cache_clear()
    db.get_pool.cache_clear()
    try:
        pool = db.get_pool()
        credentials = db._iam_login(lambda given: given)
    finally:
        get_settings.cache_clear()
        db._rds_client.cache_clear()
        db.get_pool.cache_clear()

    assert pool._login is db._iam_login
    assert pool._conninfo.startswith(
        "postgresql://wallet_app@proxy.internal:5432/postgres?sslmode=verify-full"
    )
    assert credentials["password"].startswith("proxy.internal:5432/?Action=connect&DBUser=wallet_app")


def test_a_database_error_says_its_parameters_were_left_out_once():
    error = psycopg.errors.DivisionByZero("division by zero")

    db.note_hidden_parameters(error)
    db.note_hidden_parameters(error)
    db.note_hidden_parameters(ValueError("not from the database"))

    assert error.__notes__ == [db.HIDDEN_PARAMETERS_NOTE]


def test_concurrent_requests_never_share_a_connection():
    pool = _pool(size=4)
    barrier = threading.Barrier(4)
    held: list = []
    lock = threading.Lock()

    def request() -> None:
        pooled = pool.checkout()
        with lock:
            held.append(pooled)
        barrier.wait(timeout=5)
        pool.checkin(pooled)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(pooled) for pooled in held}) == 4
