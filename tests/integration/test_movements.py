"""Credits, debits, transfers, reversals and transaction reads through the real handlers."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.conftest import ADMIN, ALICE, BOB


def test_credit_and_debit_move_money_against_the_system_account(api, db, invariants):
    wallet = api.create_wallet(ALICE)

    credit = api.credit(wallet["id"], 1_000)
    debit = api.call(
        "debit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/debits",
        claims=ADMIN,
        body={"amount": 400, "reference": "payout-1", "description": "cash out", "metadata": {"k": "v"}},
    )

    assert (credit.status, credit.body["kind"], credit.body["source_wallet_id"]) == (201, "credit", None)
    assert (debit.status, debit.body["kind"], debit.body["destination_wallet_id"]) == (201, "debit", None)
    assert (debit.body["reference"], debit.body["description"], debit.body["metadata"]) == (
        "payout-1",
        "cash out",
        {"k": "v"},
    )
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["available"], after["version"]) == (600, 600, 3)
    system_entries = db.execute(
        "SELECT sum(amount) FROM entries WHERE transaction_id = ANY(%s) AND system_account_id IS NOT NULL",
        ([uuid.UUID(credit.body["id"]), uuid.UUID(debit.body["id"])],),
    ).fetchone()[0]
    assert system_entries == -600
    assert invariants() == []


def test_a_debit_beyond_the_available_balance_is_refused_and_writes_nothing(api, db):
    wallet = api.funded_wallet(100, ALICE)
    entries_before = db.execute("SELECT count(*) FROM entries").fetchone()[0]

    result = api.call(
        "debit_create", "POST", f"/v1/wallets/{wallet['id']}/debits", claims=ADMIN, body={"amount": 101}
    )

    assert (result.status, result.code) == (422, "insufficient_funds")
    assert result.headers["content-type"] == "application/problem+json"
    assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == entries_before
    assert api.get_wallet(wallet["id"])["balance"] == 100


def test_crediting_an_unknown_wallet_is_not_found(api):
    assert api.credit(str(uuid.uuid4()), 5).code == "not_found"


def test_transfer_rules_same_wallet_currency_and_funds(api):
    usd = api.funded_wallet(100, ALICE)
    eur = api.create_wallet(BOB, currency="EUR")
    usd_bob = api.create_wallet(BOB)

    assert api.transfer(usd["id"], usd["id"], 1, claims=ALICE).code == "same_wallet"
    assert api.transfer(usd["id"], eur["id"], 1, claims=ALICE).code == "currency_mismatch"
    assert api.transfer(usd["id"], usd_bob["id"], 1, claims=ALICE, currency="EUR").code == "currency_mismatch"
    assert api.transfer(usd["id"], usd_bob["id"], 101, claims=ALICE).code == "insufficient_funds"
    assert api.transfer(usd["id"], str(uuid.uuid4()), 1, claims=ALICE).code == "not_found"
    assert api.transfer(usd["id"], usd_bob["id"], 100, claims=ALICE).status == 201
    assert api.get_wallet(usd["id"])["available"] == 0


def test_a_user_cannot_transfer_from_someone_elses_wallet(api):
    bobs = api.funded_wallet(100, BOB)
    alices = api.create_wallet(ALICE)

    result = api.transfer(bobs["id"], alices["id"], 10, claims=ALICE)

    assert (result.status, result.code) == (404, "not_found")
    assert api.get_wallet(bobs["id"])["balance"] == 100


def test_transaction_is_visible_to_involved_owners_and_admins_only(api):
    source = api.funded_wallet(100, ALICE)
    destination = api.create_wallet(BOB)
    transfer = api.transfer(source["id"], destination["id"], 10, claims=ALICE).body
    path = f"/v1/transactions/{transfer['id']}"

    assert api.call("transaction_get", "GET", path, claims=ALICE).body == transfer
    assert api.call("transaction_get", "GET", path, claims=BOB).status == 200
    assert api.call("transaction_get", "GET", path, claims=ADMIN).status == 200
    assert api.call("transaction_get", "GET", path, claims={"sub": "mallory"}).code == "not_found"
    assert (
        api.call("transaction_get", "GET", f"/v1/transactions/{uuid.uuid4()}", claims=ADMIN).code
        == "not_found"
    )


def test_reversing_a_transfer_moves_the_money_back_once(api, invariants):
    source = api.funded_wallet(100, ALICE)
    destination = api.create_wallet(BOB)
    original = api.transfer(source["id"], destination["id"], 60, claims=ALICE).body
    path = f"/v1/transactions/{original['id']}/reversals"

    reversal = api.call("reversal_create", "POST", path, claims=ADMIN, body={"reason": "customer dispute"})
    again = api.call("reversal_create", "POST", path, claims=ADMIN, body={"reason": "customer dispute"})

    assert reversal.status == 201
    assert reversal.body["kind"] == "reversal"
    assert (reversal.body["source_wallet_id"], reversal.body["destination_wallet_id"]) == (
        destination["id"],
        source["id"],
    )
    assert reversal.body["reverses_transaction_id"] == original["id"]
    assert reversal.body["description"] == "customer dispute"
    assert (again.status, again.code) == (409, "already_reversed")
    reread = api.call("transaction_get", "GET", f"/v1/transactions/{original['id']}", claims=ADMIN).body
    assert reread["reversed_by_transaction_id"] == reversal.body["id"]
    assert api.get_wallet(source["id"])["balance"] == 100
    assert api.get_wallet(destination["id"])["balance"] == 0
    assert invariants() == []


def test_reversing_a_credit_whose_money_is_gone_fails_with_insufficient_funds(api):
    wallet = api.funded_wallet(0, ALICE)
    credit = api.credit(wallet["id"], 50).body
    other = api.create_wallet(BOB)
    api.transfer(wallet["id"], other["id"], 30, claims=ALICE)

    result = api.call("reversal_create", "POST", f"/v1/transactions/{credit['id']}/reversals", claims=ADMIN)

    assert (result.status, result.code) == (422, "insufficient_funds")
    assert api.get_wallet(wallet["id"])["balance"] == 20


def test_a_debit_reversal_credits_the_wallet_back(api):
    wallet = api.funded_wallet(80, ALICE)
    debit = api.call(
        "debit_create", "POST", f"/v1/wallets/{wallet['id']}/debits", claims=ADMIN, body={"amount": 30}
    )

    result = api.call(
        "reversal_create", "POST", f"/v1/transactions/{debit.body['id']}/reversals", claims=ADMIN
    )

    assert (result.body["source_wallet_id"], result.body["destination_wallet_id"]) == (None, wallet["id"])
    assert api.get_wallet(wallet["id"])["balance"] == 80


def test_a_reversal_cannot_be_reversed(api):
    wallet = api.funded_wallet(0, ALICE)
    credit = api.credit(wallet["id"], 50).body
    reversal = api.call(
        "reversal_create", "POST", f"/v1/transactions/{credit['id']}/reversals", claims=ADMIN
    ).body

    result = api.call("reversal_create", "POST", f"/v1/transactions/{reversal['id']}/reversals", claims=ADMIN)

    assert (result.status, result.code) == (409, "invalid_state")


def test_reversing_an_unknown_transaction_is_not_found(api):
    result = api.call("reversal_create", "POST", f"/v1/transactions/{uuid.uuid4()}/reversals", claims=ADMIN)

    assert result.code == "not_found"


def test_a_frozen_wallet_can_still_be_corrected_by_a_reversal(api):
    wallet = api.funded_wallet(0, ALICE)
    credit = api.credit(wallet["id"], 50).body
    api.call("wallet_freeze", "POST", f"/v1/wallets/{wallet['id']}/freeze", claims=ADMIN)

    result = api.call("reversal_create", "POST", f"/v1/transactions/{credit['id']}/reversals", claims=ADMIN)

    assert result.status == 201
    assert api.get_wallet(wallet["id"])["balance"] == 0


def test_entries_are_append_only(api, db):
    wallet = api.funded_wallet(10, ALICE)

    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE entries SET amount = amount + 1 WHERE wallet_id = %s", (uuid.UUID(wallet["id"]),))
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM entries WHERE wallet_id = %s", (uuid.UUID(wallet["id"]),))


def test_the_database_refuses_a_negative_available_balance_even_without_the_service(api, db):
    wallet = api.funded_wallet(10, ALICE)

    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE wallets SET balance = -1 WHERE id = %s", (uuid.UUID(wallet["id"]),))
