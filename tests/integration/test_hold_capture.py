"""POST /v1/holds/{hold_id}/capture (functions/hold_capture): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE, BOB


def test_partial_captures_out_of_the_ledger_until_the_hold_is_fully_captured(api, db, invariants):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 600, reference="payout-9").body

    first = api.capture_hold(hold["id"], amount=200)
    second = api.capture_hold(hold["id"])  # the rest: 400

    assert first.status == 201, first.body
    assert (first.body["kind"], first.body["amount"], first.body["currency"]) == ("hold_capture", 200, "USD")
    assert (first.body["source_wallet_id"], first.body["destination_wallet_id"]) == (wallet["id"], None)
    assert first.body["reference"] == "payout-9"
    assert (second.status, second.body["amount"]) == (201, 400)
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"], after["available"]) == (400, 0, 400)
    read = api.get_hold(hold["id"]).body
    assert (read["status"], read["captured_amount"]) == ("captured", 600)
    stored = db.execute(
        "SELECT count(*) FROM transactions WHERE hold_id = %s AND kind = 'hold_capture'", (hold["id"],)
    ).fetchone()[0]
    assert stored == 2
    assert api.get(f"/v1/transactions/{first.body['id']}", as_user=ALICE).status == 200
    assert invariants() == []


def test_a_capture_can_pay_another_wallet_of_the_same_currency(api, invariants):
    source = api.funded_wallet(1_000, ALICE)
    destination = api.create_wallet(BOB)
    hold = api.create_hold(source["id"], 500).body

    result = api.capture_hold(hold["id"], amount=300, destination_wallet_id=destination["id"])

    assert result.status == 201, result.body
    assert result.body["destination_wallet_id"] == destination["id"]
    paid = api.get_wallet(destination["id"])
    payer = api.get_wallet(source["id"])
    assert paid["balance"] == 300
    assert (payer["balance"], payer["held"], payer["available"]) == (700, 200, 500)
    assert api.get_hold(hold["id"]).body["status"] == "active"
    assert invariants() == []


def test_capture_destination_rules(api):
    source = api.funded_wallet(1_000)
    euros = api.create_wallet(BOB, currency="EUR")
    closed = api.create_wallet(BOB)
    api.post(f"/v1/wallets/{closed['id']}/close", as_user=ADMIN)
    hold = api.create_hold(source["id"], 500).body

    assert api.capture_hold(hold["id"], destination_wallet_id=euros["id"]).code == "currency_mismatch"
    assert api.capture_hold(hold["id"], destination_wallet_id=closed["id"]).code == "wallet_closed"
    assert api.capture_hold(hold["id"], destination_wallet_id=source["id"]).code == "same_wallet"
    missing = api.capture_hold(hold["id"], destination_wallet_id="00000000-0000-4000-8000-000000000000")
    assert (missing.status, missing.code) == (404, "not_found")
    assert api.capture_hold("00000000-0000-4000-8000-000000000000").status == 404
    assert api.get_wallet(source["id"])["held"] == 500


def test_capturing_more_than_remains_is_amount_exceeds_hold(api):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body
    assert api.capture_hold(hold["id"], amount=300).status == 201

    result = api.capture_hold(hold["id"], amount=201)

    assert (result.status, result.code) == (422, "amount_exceeds_hold")
    assert api.get_hold(hold["id"]).body["captured_amount"] == 300


def test_a_retried_capture_is_replayed_with_one_effect(api):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body

    first = api.post(f"/v1/holds/{hold['id']}/capture", {"amount": 50}, as_user=ADMIN, key="cap-1")
    again = api.post(f"/v1/holds/{hold['id']}/capture", {"amount": 50}, as_user=ADMIN, key="cap-1")

    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body
    assert again.headers.get("idempotent-replayed") == "true"
    assert api.get_hold(hold["id"]).body["captured_amount"] == 50


def test_a_hold_made_before_a_freeze_can_still_settle_or_be_voided(api):
    wallet = api.funded_wallet(1_000)
    settling = api.create_hold(wallet["id"], 300).body
    cancelled = api.create_hold(wallet["id"], 200).body
    api.post(f"/v1/wallets/{wallet['id']}/freeze", as_user=ADMIN)

    assert api.capture_hold(settling["id"]).status == 201
    assert api.void_hold(cancelled["id"]).status == 200
    assert api.create_hold(wallet["id"], 1).code == "wallet_frozen"
    assert api.get_wallet(wallet["id"])["balance"] == 700
