"""The contract's "Money safety" rules through the real handlers on PostgreSQL: external_ref is an
operator's link, admin-only routes answer 403 before anything else, a transfer checks its source
before it locks anything and names no id, and no posted balance crosses 2^53 - 1."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.conftest import ADMIN, ALICE, BOB, _libpq, empty_ledger
from wallet_core.domain.money import MAX_BALANCE

MALLORY = {"sub": "mallory", "scope": "wallet:read"}


def _without_request_id(body: dict) -> dict:
    # request_id differs per request by design; everything else must be identical.
    return {name: value for name, value in body.items() if name != "request_id"}


# --- external_ref is admin-only -------------------------------------------------------------------


def test_a_user_cannot_link_a_provider_reference_nor_learn_whether_one_is_linked(api, db):
    # Given an operator linked a real customer's wallet to a provider account
    linked = f"acme-acct-{uuid.uuid4()}"
    api.create_wallet(ADMIN, owner_id="carol", external_ref=linked)
    unlinked = f"acme-acct-{uuid.uuid4()}"
    wallets_before = db.execute("SELECT count(*) FROM wallets").fetchone()[0]

    # When a user tries to open a wallet carrying the linked and an unlinked reference
    taken = api.call(
        "wallet_create",
        "POST",
        "/v1/wallets",
        claims=MALLORY,
        body={"currency": "USD", "external_ref": linked},
    )
    free = api.call(
        "wallet_create",
        "POST",
        "/v1/wallets",
        claims=MALLORY,
        body={"currency": "USD", "external_ref": unlinked},
    )

    # Then both are forbidden, indistinguishably, and nothing was opened
    assert (taken.status, taken.code) == (free.status, free.code) == (403, "forbidden")
    assert _without_request_id(taken.body) == _without_request_id(free.body)
    assert db.execute("SELECT count(*) FROM wallets").fetchone()[0] == wallets_before
    # and the operator can still link the reference the user went for
    assert api.create_wallet(ADMIN, owner_id="dave", external_ref=unlinked)["external_ref"] == unlinked


def test_a_user_may_still_open_a_wallet_without_a_reference(api):
    result = api.call(
        "wallet_create", "POST", "/v1/wallets", claims=MALLORY, body={"currency": "USD", "external_ref": None}
    )

    assert result.status == 201
    assert result.body["external_ref"] is None


def test_the_admin_parts_of_opening_a_wallet_are_checked_before_the_key_and_on_every_replay(api):
    # Given an operator opened a linked wallet for someone else with a key
    operator = {"sub": f"operator-{uuid.uuid4()}", "scope": "wallet:admin"}
    body = {"currency": "USD", "owner_id": "carol", "external_ref": f"acme-acct-{uuid.uuid4()}"}
    key = str(uuid.uuid4())
    assert api.call("wallet_create", "POST", "/v1/wallets", claims=operator, body=body, key=key).status == 201

    # When the same subject, no longer an admin, replays it, or sends it without a key
    demoted = {"sub": operator["sub"], "scope": "wallet:read"}
    replay = api.call("wallet_create", "POST", "/v1/wallets", claims=demoted, body=body, key=key)
    keyless = api.call("wallet_create", "POST", "/v1/wallets", claims=demoted, body=body, key="")

    # Then both are forbidden
    assert (replay.status, replay.code) == (403, "forbidden")
    assert (keyless.status, keyless.code) == (403, "forbidden")


# --- admin-only routes answer 403 first ----------------------------------------------------------


def _admin_only_routes(wallet_id: str) -> list[tuple[str, str, str]]:
    """(function, method, path template): `{id}` is a real wallet's id or a random one."""
    return [
        ("credit_create", "POST", "/v1/wallets/{id}/credits"),
        ("debit_create", "POST", "/v1/wallets/{id}/debits"),
        ("reversal_create", "POST", "/v1/transactions/{id}/reversals"),
        ("wallet_freeze", "POST", "/v1/wallets/{id}/freeze"),
        ("wallet_unfreeze", "POST", "/v1/wallets/{id}/unfreeze"),
        ("wallet_close", "POST", "/v1/wallets/{id}/close"),
        ("hold_create", "POST", "/v1/holds"),
        ("hold_capture", "POST", "/v1/holds/{id}/capture"),
        ("hold_void", "POST", "/v1/holds/{id}/void"),
        ("balance_snapshot_list", "GET", "/v1/wallets/{id}/balance-snapshots"),
    ]


def _key_rows(db: psycopg.Connection, principal: str) -> int:
    return db.execute("SELECT count(*) FROM idempotency_keys WHERE principal = %s", (principal,)).fetchone()[
        0
    ]


def test_admin_only_routes_answer_403_before_validating_the_request_or_reading_the_key(api, db):
    # Given a wallet, and a non-admin whose requests are wrong in every other way too
    wallet = api.create_wallet(ALICE)["id"]
    caller = {"sub": f"user-{uuid.uuid4()}", "scope": "wallet:read"}

    for function, method, template in _admin_only_routes(wallet):
        # When the body is not even JSON, the id is not a UUID, the query is out of range and
        # there is no Idempotency-Key
        result = api.call(
            function,
            method,
            template.format(id="not-a-uuid"),
            claims=caller,
            raw_body='{"amount": "lots", "bogus": 1' if method == "POST" else None,
            query={"limit": "0"},
            key="",
        )

        # Then the answer is 403 forbidden, not 400
        assert (result.status, result.code) == (403, "forbidden"), (function, result.body)
        assert result.body["detail"] == "This operation requires the wallet:admin scope.", function

    # and a well-formed request with a key stores no key
    for function, method, template in _admin_only_routes(wallet):
        body = {"amount": 1, "wallet_id": wallet} if function == "hold_create" else {"amount": 1}
        result = api.call(
            function,
            method,
            template.format(id=wallet),
            claims=caller,
            body=body if method == "POST" else None,
            key=str(uuid.uuid4()) if method == "POST" else None,
        )
        assert (result.status, result.code) == (403, "forbidden"), (function, result.body)
    assert _key_rows(db, caller["sub"]) == 0


def test_without_claims_an_admin_only_route_is_unauthorized_before_validation(api):
    wallet = api.create_wallet(ALICE)["id"]

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet}/credits", claims=None, raw_body="{", key=""
    )

    assert (result.status, result.code) == (401, "unauthorized")


def test_a_replay_on_an_admin_only_route_checks_the_scope_again(api):
    # Given an operator credited a wallet with a key
    wallet = api.create_wallet(ALICE)["id"]
    operator = {"sub": f"operator-{uuid.uuid4()}", "scope": "wallet:admin"}
    key = str(uuid.uuid4())
    path = f"/v1/wallets/{wallet}/credits"
    first = api.call("credit_create", "POST", path, claims=operator, body={"amount": 40}, key=key)
    assert first.status == 201

    # When the same subject, no longer an admin, sends the same request with the same key
    demoted = {"sub": operator["sub"], "scope": "wallet:read"}
    replay = api.call("credit_create", "POST", path, claims=demoted, body={"amount": 40}, key=key)

    # Then it is forbidden, not the stored 201
    assert (replay.status, replay.code) == (403, "forbidden")
    assert "idempotent-replayed" not in replay.headers
    # and the admin still gets the replay
    again = api.call("credit_create", "POST", path, claims=operator, body={"amount": 40}, key=key)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.raw_body == first.raw_body


def test_a_scope_list_with_commas_is_one_unknown_scope_not_admin(api):
    wallet = api.create_wallet(ALICE)["id"]
    comma = {"sub": "ops", "scope": "wallet:read,wallet:admin"}

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet}/credits", claims=comma, body={"amount": 1}
    )

    assert (result.status, result.code) == (403, "forbidden")


# --- subjects the database cannot store are a clean 401 -----------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["x" * 256, "", "alice\x00", "alice\nadmin", "bob\x7f", "\ud800"],
    ids=["256 chars", "empty", "NUL", "newline", "DEL", "lone surrogate"],
)
def test_a_subject_the_service_cannot_store_is_unauthorized_on_every_kind_of_route(api, subject):
    wallet = api.create_wallet(ALICE)["id"]
    claims = {"sub": subject, "scope": "wallet:read"}

    for function, method, path, body in [
        ("wallet_create", "POST", "/v1/wallets", {"currency": "USD"}),
        ("wallet_list", "GET", "/v1/wallets", None),
        ("wallet_get", "GET", f"/v1/wallets/{wallet}", None),
        ("transfer_create", "POST", "/v1/transfers", _transfer_body(wallet, wallet, 1)),
        ("credit_create", "POST", f"/v1/wallets/{wallet}/credits", {"amount": 1}),
    ]:
        result = api.call(function, method, path, claims=claims, body=body)

        assert (result.status, result.code) == (401, "unauthorized"), (function, result.body)
        assert "subject" in result.body["detail"], function


def test_a_subject_of_255_characters_is_a_normal_caller(api):
    claims = {"sub": "s" * 255, "scope": "wallet:read"}

    assert api.create_wallet(claims)["owner_id"] == "s" * 255


# --- transfers: the source is checked before anything is locked ---------------------------------


def _transfer_body(source: str, destination: str, amount: int, currency: str = "USD") -> dict:
    return {
        "source_wallet_id": source,
        "destination_wallet_id": destination,
        "amount": amount,
        "currency": currency,
    }


@pytest.fixture
def short_lock_waits(monkeypatch) -> Iterator[None]:
    """Lock waits end after 300 ms instead of IDEMPOTENCY_WAIT_SECONDS, so a request that queues
    behind a row lock fails fast (and visibly) instead of answering late."""
    from wallet_core.config import get_settings

    monkeypatch.setenv("IDEMPOTENCY_WAIT_SECONDS", "0.3")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def row_locked(database_url: str) -> Iterator[Callable[[str], None]]:
    """Another session that holds wallet rows FOR UPDATE until the test ends."""
    holder = psycopg.connect(_libpq(database_url))
    try:
        yield lambda wallet_id: holder.execute(
            "SELECT id FROM wallets WHERE id = %s FOR UPDATE", (wallet_id,)
        ).fetchone()
    finally:
        holder.rollback()
        holder.close()


def test_a_transfer_from_a_foreign_wallet_takes_no_lock(api, db, row_locked, short_lock_waits):
    # Given Alice's wallet, and another session holding its row lock
    alices = api.funded_wallet(100, ALICE)["id"]
    mallorys = api.create_wallet(MALLORY)["id"]
    row_locked(alices)

    # When Mallory tries to move money out of it
    result = api.transfer(alices, mallorys, 10, claims=MALLORY)

    # Then she gets not_found without queueing for the lock (queueing ends in a lock timeout,
    # which is a 409 concurrency_conflict)
    assert (result.status, result.code) == (404, "not_found"), result.body


def test_the_owner_of_a_locked_wallet_does_queue_for_it(api, row_locked, short_lock_waits):
    # The control for the test above: a request that does take the lock is seen to wait for it.
    alices = api.funded_wallet(100, ALICE)["id"]
    bobs = api.create_wallet(BOB)["id"]
    row_locked(alices)

    result = api.transfer(alices, bobs, 10, claims=ALICE)

    assert (result.status, result.code) == (409, "concurrency_conflict"), result.body


def test_a_transfer_from_a_foreign_wallet_is_answered_like_one_from_a_missing_wallet(api):
    alices = api.funded_wallet(100, ALICE)["id"]
    mallorys = api.create_wallet(MALLORY)["id"]

    foreign = api.transfer(alices, mallorys, 10, claims=MALLORY)
    missing = api.transfer(str(uuid.uuid4()), mallorys, 10, claims=MALLORY)
    missing_destination = api.transfer(mallorys, str(uuid.uuid4()), 10, claims=MALLORY)

    assert foreign.status == missing.status == missing_destination.status == 404
    assert _without_request_id(foreign.body) == _without_request_id(missing.body)
    assert _without_request_id(missing_destination.body) == _without_request_id(missing.body)
    for answer in (foreign, missing, missing_destination):
        assert alices not in answer.raw_body
        assert mallorys not in answer.raw_body


def test_a_rejected_transfer_never_describes_the_destination(api):
    # Given Alice's USD wallet, Bob's EUR wallet and Bob's closed USD wallet
    alices = api.funded_wallet(100, ALICE)["id"]
    bobs_eur = api.create_wallet(BOB, currency="EUR")["id"]
    bobs_closed = api.create_wallet(BOB)["id"]
    assert api.call("wallet_close", "POST", f"/v1/wallets/{bobs_closed}/close", claims=ADMIN).status == 200

    # When Alice sends USD to each
    mismatch = api.transfer(alices, bobs_eur, 10, claims=ALICE)
    closed = api.transfer(alices, bobs_closed, 10, claims=ALICE)

    # Then the codes are the contract's, and the details name neither the wallet nor what it holds
    assert (mismatch.status, mismatch.code) == (422, "currency_mismatch")
    assert (closed.status, closed.code) == (422, "wallet_closed")
    assert bobs_eur not in mismatch.raw_body
    assert "EUR" not in mismatch.body["detail"]
    assert bobs_closed not in closed.raw_body


def test_an_owner_still_transfers_to_any_active_wallet_while_the_destination_is_busy(api):
    # The ownership check must not stop legitimate transfers (nor admins' ones).
    alices = api.funded_wallet(100, ALICE)["id"]
    bobs = api.create_wallet(BOB)["id"]

    assert api.transfer(alices, bobs, 30, claims=ALICE).status == 201
    assert api.transfer(bobs, alices, 5, claims=ADMIN).status == 201
    assert api.get_wallet(bobs)["balance"] == 25


# --- the balance ceiling --------------------------------------------------------------------------


@pytest.fixture
def pushed_balance(db: psycopg.Connection) -> Iterator[Callable[[str, int], None]]:
    """Set a wallet's posted balance directly (no credit of 9 quadrillion through the API)."""

    def push(wallet_id: str, balance: int) -> None:
        db.execute("UPDATE wallets SET balance = %s WHERE id = %s", (balance, wallet_id))

    yield push
    # Entries posted on top of a pushed balance replay to other figures than the wallet shows: the
    # ledger is emptied (as clean_ledger does) so later tests' invariant checks start clean.
    empty_ledger(db)


def _state(db: psycopg.Connection, *wallet_ids: str) -> tuple:
    return (
        db.execute(
            "SELECT id, balance, held, version FROM wallets WHERE id = ANY(%s) ORDER BY id",
            ([uuid.UUID(w) for w in wallet_ids],),
        ).fetchall(),
        db.execute(
            "SELECT count(*) FROM entries WHERE wallet_id = ANY(%s)", ([uuid.UUID(w) for w in wallet_ids],)
        ).fetchone()[0],
    )


def test_a_credit_may_reach_the_ceiling_but_never_cross_it(api, db, pushed_balance):
    wallet = api.create_wallet(ALICE)["id"]
    pushed_balance(wallet, MAX_BALANCE - 10)
    before = _state(db, wallet)

    over = api.credit(wallet, 11)

    assert (over.status, over.code) == (422, "balance_limit_exceeded")
    assert _state(db, wallet) == before
    assert api.credit(wallet, 10).status == 201
    assert api.get_wallet(wallet)["balance"] == MAX_BALANCE == 9_007_199_254_740_991


def test_the_schema_itself_refuses_a_balance_above_the_ceiling(api, db):
    """The backstop behind the 422: even a write that bypasses the service cannot store a balance
    JavaScript clients would read wrong (a balance near 2^63 was a 500 on the next credit)."""
    wallet = api.create_wallet(ALICE)["id"]

    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE wallets SET balance = %s WHERE id = %s", (2**63 - 5, wallet))

    assert api.get_wallet(wallet)["balance"] == 0


def test_a_transfer_into_a_full_wallet_is_refused_and_the_source_keeps_its_money(api, db, pushed_balance):
    source = api.funded_wallet(100, ALICE)["id"]
    destination = api.create_wallet(BOB)["id"]
    pushed_balance(destination, MAX_BALANCE - 5)
    before = _state(db, source, destination)

    result = api.transfer(source, destination, 6, claims=ALICE)

    assert (result.status, result.code) == (422, "balance_limit_exceeded")
    assert str(destination) not in result.raw_body  # Bob's wallet: nothing about it in the detail
    assert _state(db, source, destination) == before


def test_a_reversal_that_would_cross_the_ceiling_is_refused(api, db, pushed_balance):
    wallet = api.funded_wallet(100, ALICE)["id"]
    debit = api.call(
        "debit_create", "POST", f"/v1/wallets/{wallet}/debits", claims=ADMIN, body={"amount": 50}
    )
    assert debit.status == 201
    pushed_balance(wallet, MAX_BALANCE - 49)
    before = _state(db, wallet)

    result = api.call(
        "reversal_create", "POST", f"/v1/transactions/{debit.body['id']}/reversals", claims=ADMIN
    )

    assert (result.status, result.code) == (422, "balance_limit_exceeded")
    assert _state(db, wallet) == before


def test_a_capture_into_a_full_wallet_is_refused_and_the_hold_stays_whole(api, db, pushed_balance):
    source = api.funded_wallet(100, ALICE)["id"]
    destination = api.create_wallet(BOB)["id"]
    hold = api.create_hold(source, 60).body
    pushed_balance(destination, MAX_BALANCE - 59)
    before = _state(db, source, destination)

    result = api.capture_hold(hold["id"], destination_wallet_id=destination)

    assert (result.status, result.code) == (422, "balance_limit_exceeded")
    assert _state(db, source, destination) == before
    after = api.get_hold(hold["id"]).body
    assert (after["status"], after["captured_amount"]) == ("active", 0)
