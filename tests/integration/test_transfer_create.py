"""POST /v1/transfers (functions/transfer_create): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ALICE, BOB


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
