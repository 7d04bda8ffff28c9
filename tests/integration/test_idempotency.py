"""Idempotency-Key semantics of every POST: replay, mismatch, in-flight, exactly one effect."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from tests.conftest import ADMIN, ALICE, BOB


def test_a_retry_replays_the_identical_response(api, db):
    wallet = api.create_wallet(ALICE)
    key = str(uuid.uuid4())

    first = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        body={"amount": 70},
        key=key,
    )
    retry = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        body={"amount": 70},
        key=key,
    )

    assert first.status == retry.status == 201
    assert retry.raw_body == first.raw_body
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true"
    assert api.get_wallet(wallet["id"])["balance"] == 70


def test_the_same_document_with_different_formatting_is_the_same_request(api):
    wallet = api.create_wallet(ALICE)
    key = str(uuid.uuid4())
    path = f"/v1/wallets/{wallet['id']}/credits"

    first = api.call(
        "credit_create", "POST", path, claims=ADMIN, raw_body='{"amount": 5, "reference": "r"}', key=key
    )
    retry = api.call(
        "credit_create", "POST", path, claims=ADMIN, raw_body='{"reference":"r","amount":5}', key=key
    )

    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.raw_body == first.raw_body


def test_the_same_key_with_a_different_request_is_rejected(api):
    wallet = api.create_wallet(ALICE)
    key = str(uuid.uuid4())
    path = f"/v1/wallets/{wallet['id']}/credits"
    api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 5}, key=key)

    other_body = api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 6}, key=key)
    other_path = api.call(
        "debit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/debits",
        claims=ADMIN,
        body={"amount": 5},
        key=key,
    )

    assert (other_body.status, other_body.code) == (422, "idempotency_key_reused")
    assert (other_path.status, other_path.code) == (422, "idempotency_key_reused")
    assert api.get_wallet(wallet["id"])["balance"] == 5


def test_keys_are_scoped_to_the_principal(api):
    key = str(uuid.uuid4())

    alices = api.call("wallet_create", "POST", "/v1/wallets", claims=ALICE, body={"currency": "USD"}, key=key)
    bobs = api.call("wallet_create", "POST", "/v1/wallets", claims=BOB, body={"currency": "USD"}, key=key)

    assert alices.status == bobs.status == 201
    assert alices.body["id"] != bobs.body["id"]
    assert "idempotent-replayed" not in bobs.headers


def test_a_business_rejection_is_replayed_not_reevaluated(api):
    wallet = api.funded_wallet(10, ALICE)
    key = str(uuid.uuid4())
    path = f"/v1/wallets/{wallet['id']}/debits"

    refused = api.call("debit_create", "POST", path, claims=ADMIN, body={"amount": 50}, key=key)
    api.credit(wallet["id"], 100)  # now the debit would succeed if it were evaluated again
    retry = api.call("debit_create", "POST", path, claims=ADMIN, body={"amount": 50}, key=key)

    assert (refused.status, refused.code) == (422, "insufficient_funds")
    assert retry.raw_body == refused.raw_body
    assert retry.status == 422
    assert retry.headers["idempotent-replayed"] == "true"
    assert api.get_wallet(wallet["id"])["balance"] == 110


def test_a_missing_or_malformed_key_is_rejected_before_any_write(api, db):
    wallet = api.create_wallet(ALICE)
    path = f"/v1/wallets/{wallet['id']}/credits"

    missing = api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 5}, key="")
    too_long = api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 5}, key="k" * 256)
    not_visible = api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 5}, key="has space")

    assert (missing.status, missing.code) == (400, "idempotency_key_missing")
    assert (too_long.status, too_long.code) == (400, "validation_error")
    assert (not_visible.status, not_visible.code) == (400, "validation_error")
    assert api.get_wallet(wallet["id"])["balance"] == 0


def test_concurrent_requests_with_one_key_have_exactly_one_effect(api, db):
    wallet = api.create_wallet(ALICE)
    key = str(uuid.uuid4())
    barrier = threading.Barrier(8)
    results = []

    def send() -> None:
        barrier.wait()
        results.append(
            api.call(
                "credit_create",
                "POST",
                f"/v1/wallets/{wallet['id']}/credits",
                claims=ADMIN,
                body={"amount": 9},
                key=key,
            )
        )

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status for r in results] == [201] * 8
    assert len({r.raw_body for r in results}) == 1
    assert sum(1 for r in results if "idempotent-replayed" not in r.headers) == 1
    assert api.get_wallet(wallet["id"])["balance"] == 9
    assert (
        db.execute(
            "SELECT count(*) FROM transactions WHERE destination_wallet_id = %s", (uuid.UUID(wallet["id"]),)
        ).fetchone()[0]
        == 1
    )


def test_a_request_still_in_flight_answers_409_after_the_wait(api, database_url, monkeypatch):
    """Given a first request holding the key uncommitted (as if still running), a retry waits for
    IDEMPOTENCY_WAIT_SECONDS and then answers 409 idempotency_request_in_progress."""
    from tests.conftest import _libpq, reset_caches

    wallet = api.create_wallet(ALICE)
    key = str(uuid.uuid4())
    monkeypatch.setenv("IDEMPOTENCY_WAIT_SECONDS", "0.2")
    reset_caches()
    try:
        with psycopg.connect(_libpq(database_url)) as in_flight:
            in_flight.execute(
                "INSERT INTO idempotency_keys (principal, key, fingerprint) VALUES (%s, %s, %s)",
                (ADMIN["sub"], key, "0" * 64),
            )
            result = api.call(
                "credit_create",
                "POST",
                f"/v1/wallets/{wallet['id']}/credits",
                claims=ADMIN,
                body={"amount": 5},
                key=key,
            )
            in_flight.rollback()
    finally:
        monkeypatch.undo()
        reset_caches()

    assert (result.status, result.code) == (409, "idempotency_request_in_progress")
    assert api.get_wallet(wallet["id"])["balance"] == 0


def test_a_request_that_crashed_before_commit_can_be_retried(api, database_url):
    """The key row and the effect share one transaction: a crash before commit leaves neither."""
    from tests.conftest import _libpq

    wallet = api.create_wallet(ALICE)
    key = str(uuid.uuid4())
    with psycopg.connect(_libpq(database_url)) as crashed:
        crashed.execute(
            "INSERT INTO idempotency_keys (principal, key, fingerprint) VALUES (%s, %s, %s)",
            (ADMIN["sub"], key, "0" * 64),
        )
        crashed.rollback()  # the process died: the transaction never committed

    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        body={"amount": 5},
        key=key,
    )

    assert result.status == 201
    assert "idempotent-replayed" not in result.headers
    assert api.get_wallet(wallet["id"])["balance"] == 5


@pytest.mark.parametrize(
    ("function", "path_template", "body"),
    [
        ("wallet_create", "/v1/wallets", {"currency": "USD"}),
        ("transfer_create", "/v1/transfers", None),
        ("wallet_freeze", "/v1/wallets/{wallet}/freeze", None),
    ],
)
def test_every_post_requires_a_key(api, function, path_template, body):
    wallet = api.create_wallet(ALICE)
    path = path_template.format(wallet=wallet["id"])
    if function == "transfer_create":
        body = {
            "source_wallet_id": wallet["id"],
            "destination_wallet_id": str(uuid.uuid4()),
            "amount": 1,
            "currency": "USD",
        }

    result = api.call(function, "POST", path, claims=ADMIN, body=body, key="")

    assert (result.status, result.code) == (400, "idempotency_key_missing")
