"""A transfer is one call to wallet_transfer and one round trip: the key, the effect and the stored
response commit together, and no wallet lock waits on the network or on the client."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import ALICE, BOB


@contextlib.contextmanager
def round_trips() -> Iterator[Callable[[], int]]:
    """Counts the waits for the server on the handlers' pooled connection, from libpq's protocol
    trace: every switch from messages sent (F) to messages received (B) is one round trip."""
    from psycopg.pq import Trace

    from wallet_core.adapters.db import get_pool

    pool = get_pool()
    pooled = pool.checkout()  # the connection the next request takes (the most recently used)
    pool.checkin(pooled)
    pgconn = pooled.connection.pgconn
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(os.dup(trace.fileno()))
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)

        def count() -> int:
            pgconn.untrace()  # flushes
            trace.seek(0)
            sides = [line[:1] for line in trace.read().decode(errors="replace").splitlines()]
            return sum(1 for pair in itertools.pairwise(s for s in sides if s in "FB") if pair == ("F", "B"))

        try:
            yield count
        finally:
            pgconn.untrace()


@pytest.fixture
def pair(api) -> tuple[str, str]:
    source = api.funded_wallet(1_000, ALICE)["id"]
    destination = api.create_wallet(BOB)["id"]
    api.transfer(source, destination, 1, claims=ALICE)  # the pooled connection exists and is warm
    return source, destination


def test_a_transfer_is_one_round_trip_that_stores_its_response(api, db, pair):
    source, destination = pair

    with round_trips() as counted:
        first = api.transfer(source, destination, 25, claims=ALICE)
        trips = counted()

    assert (first.status, trips) == (201, 1)
    stored = db.execute(
        "SELECT status_code, response_body FROM idempotency_keys WHERE response_body LIKE %s",
        (f"%{first.body['id']}%",),
    ).fetchone()
    assert stored == (201, first.raw_body)


def test_a_description_that_contains_the_time_mark_is_stored_as_sent(api, db, pair):
    # Given a caller whose text happens to contain the mark the response is rendered around
    source, destination = pair
    key = str(uuid.uuid4())
    body = {
        "source_wallet_id": source,
        "destination_wallet_id": destination,
        "amount": 5,
        "currency": "USD",
        "description": "at 2001-02-03T04:05:06.789012Z",
    }

    # When it transfers (the key is then completed after the call, in the same transaction), twice
    with round_trips() as counted:
        first = api.call("transfer_create", "POST", "/v1/transfers", claims=ALICE, body=body, key=key)
        trips = counted()
    retry = api.call("transfer_create", "POST", "/v1/transfers", claims=ALICE, body=body, key=key)

    # Then the answer is the transfer, with its own time and the caller's text, and the replay is it
    assert first.status == 201
    assert first.body["description"] == "at 2001-02-03T04:05:06.789012Z"
    assert first.body["created_at"] != "2001-02-03T04:05:06.789012Z"
    assert trips == 2
    assert (retry.status, retry.raw_body) == (201, first.raw_body)
    assert api.get_wallet(destination)["balance"] == 1 + 5


def test_a_refused_transfer_leaves_only_its_refusal_on_the_key(api, db, pair):
    source, destination = pair
    key = str(uuid.uuid4())
    body = {
        "source_wallet_id": source,
        "destination_wallet_id": destination,
        "amount": 10**6,
        "currency": "USD",
    }

    refused = api.call("transfer_create", "POST", "/v1/transfers", claims=ALICE, body=body, key=key)

    assert (refused.status, refused.code) == (422, "insufficient_funds")
    assert db.execute(
        "SELECT status_code, response_body FROM idempotency_keys WHERE principal = %s AND key = %s",
        (ALICE["sub"], key),
    ).fetchone() == (422, refused.raw_body)
    assert db.execute(
        "SELECT count(*) FROM transactions WHERE source_wallet_id = %s AND amount = %s",
        (uuid.UUID(source), 10**6),
    ).fetchone() == (0,)


def test_the_database_still_refuses_a_second_reversal_of_one_transaction(api, db, pair):
    # The index behind it is partial now (transfers reverse nothing): the guarantee is the same.
    import psycopg

    source, destination = pair
    original = api.transfer(source, destination, 3, claims=ALICE).body["id"]
    insert = (
        "INSERT INTO transactions (id, kind, status, amount, currency, source_wallet_id,"
        " destination_wallet_id, reverses_transaction_id, created_at)"
        " VALUES (%s, 'reversal', 'posted', 3, 'USD', %s, %s, %s, now())"
    )
    wallets = (uuid.UUID(destination), uuid.UUID(source), uuid.UUID(original))
    db.execute(insert, (uuid.uuid4(), *wallets))

    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(insert, (uuid.uuid4(), *wallets))


def test_a_transfer_whose_key_is_held_by_a_request_in_flight_answers_409_after_the_wait(
    api, pair, database_url, monkeypatch
):
    # The key is claimed inside wallet_transfer: its wait must still end as "in progress", not as
    # the concurrency conflict a wallet lock waited out would be.
    import psycopg

    from tests.conftest import _libpq, reset_caches

    source, destination = pair
    key = str(uuid.uuid4())
    monkeypatch.setenv("IDEMPOTENCY_WAIT_SECONDS", "0.2")
    reset_caches()
    body = {"source_wallet_id": source, "destination_wallet_id": destination, "amount": 5, "currency": "USD"}
    try:
        with psycopg.connect(_libpq(database_url)) as in_flight:
            in_flight.execute(
                "INSERT INTO idempotency_keys (principal, key, fingerprint) VALUES (%s, %s, %s)",
                (ALICE["sub"], key, "0" * 64),
            )
            result = api.call("transfer_create", "POST", "/v1/transfers", claims=ALICE, body=body, key=key)
            in_flight.rollback()
    finally:
        monkeypatch.undo()
        reset_caches()

    assert (result.status, result.code) == (409, "idempotency_request_in_progress")
    assert api.get_wallet(destination)["balance"] == 1


def test_a_response_rendered_differently_after_the_call_is_the_one_stored(api, db, pair, database_url):
    # Given a renderer that does not give the same body twice (the stored one must be what was sent)
    from wallet_core.adapters.db import ConnectionPool
    from wallet_core.adapters.uow import SqlUnitOfWork
    from wallet_core.domain.principal import Principal
    from wallet_core.http.presenters import timestamp
    from wallet_core.service import idempotency, ledger

    source, destination = pair
    renders = itertools.count(1)
    engine = ConnectionPool(database_url, size=1, connect_args={})
    request = idempotency.IdempotentRequest(principal=ALICE["sub"], key=str(uuid.uuid4()), fingerprint="f")
    try:
        # When a transfer runs through the idempotent executor with it
        outcome = idempotency.execute(
            SqlUnitOfWork(engine),
            request,
            lambda uow: ledger.transfer(
                uow,
                Principal(subject=ALICE["sub"], scopes=frozenset()),
                source_wallet_id=uuid.UUID(source),
                destination_wallet_id=uuid.UUID(destination),
                amount=4,
                currency="USD",
                memo=ledger.Memo(),
            ),
            render=lambda result: (
                201,
                f'{{"render":{next(renders)},"at":"{timestamp(result.created_at)}"}}',
            ),
            render_rejection=lambda error: (500, error.code),
            wait_seconds=1,
        )
    finally:
        engine.dispose()

    # Then the key holds the body the caller got (the second rendering), and the money moved once
    assert (outcome.status, json.loads(outcome.body)["render"]) == (201, 2)
    assert db.execute(
        "SELECT response_body FROM idempotency_keys WHERE principal = %s AND key = %s",
        (request.principal, request.key),
    ).fetchone() == (outcome.body,)
    assert api.get_wallet(destination)["balance"] == 1 + 4
