"""POST /v1/transactions/{transaction_id}/reversals (functions/reversal_create): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE, BOB


def test_reversing_a_transfer_moves_the_money_back_once(api, invariants):
    source = api.funded_wallet(100, ALICE)
    destination = api.create_wallet(BOB)
    original = api.transfer(source["id"], destination["id"], 60, claims=ALICE).body
    path = f"/v1/transactions/{original['id']}/reversals"

    reversal = api.post(path, {"reason": "customer dispute"}, as_user=ADMIN)
    again = api.post(path, {"reason": "customer dispute"}, as_user=ADMIN)

    assert reversal.status == 201
    assert reversal.body["kind"] == "reversal"
    assert (reversal.body["source_wallet_id"], reversal.body["destination_wallet_id"]) == (
        destination["id"],
        source["id"],
    )
    assert reversal.body["reverses_transaction_id"] == original["id"]
    assert reversal.body["description"] == "customer dispute"
    assert (again.status, again.code) == (409, "already_reversed")
    reread = api.get(f"/v1/transactions/{original['id']}", as_user=ADMIN).body
    assert reread["reversed_by_transaction_id"] == reversal.body["id"]
    assert api.get_wallet(source["id"])["balance"] == 100
    assert api.get_wallet(destination["id"])["balance"] == 0
    assert invariants() == []


def test_reversing_a_credit_whose_money_is_gone_fails_with_insufficient_funds(api):
    wallet = api.funded_wallet(0, ALICE)
    credit = api.credit(wallet["id"], 50).body
    other = api.create_wallet(BOB)
    api.transfer(wallet["id"], other["id"], 30, claims=ALICE)

    result = api.post(f"/v1/transactions/{credit['id']}/reversals", as_user=ADMIN)

    assert (result.status, result.code) == (422, "insufficient_funds")
    assert api.get_wallet(wallet["id"])["balance"] == 20


def test_a_debit_reversal_credits_the_wallet_back(api):
    wallet = api.funded_wallet(80, ALICE)
    debit = api.post(f"/v1/wallets/{wallet['id']}/debits", {"amount": 30}, as_user=ADMIN)

    result = api.post(f"/v1/transactions/{debit.body['id']}/reversals", as_user=ADMIN)

    assert (result.body["source_wallet_id"], result.body["destination_wallet_id"]) == (None, wallet["id"])
    assert api.get_wallet(wallet["id"])["balance"] == 80


def test_a_reversal_cannot_be_reversed(api):
    wallet = api.funded_wallet(0, ALICE)
    credit = api.credit(wallet["id"], 50).body
    reversal = api.post(f"/v1/transactions/{credit['id']}/reversals", as_user=ADMIN).body

    result = api.post(f"/v1/transactions/{reversal['id']}/reversals", as_user=ADMIN)

    assert (result.status, result.code) == (409, "invalid_state")


def test_reversing_an_unknown_transaction_is_not_found(api):
    result = api.post(f"/v1/transactions/{uuid.uuid4()}/reversals", as_user=ADMIN)

    assert result.code == "not_found"


def test_a_frozen_wallet_can_still_be_corrected_by_a_reversal(api):
    wallet = api.funded_wallet(0, ALICE)
    credit = api.credit(wallet["id"], 50).body
    api.post(f"/v1/wallets/{wallet['id']}/freeze", as_user=ADMIN)

    result = api.post(f"/v1/transactions/{credit['id']}/reversals", as_user=ADMIN)

    assert result.status == 201
    assert api.get_wallet(wallet["id"])["balance"] == 0
