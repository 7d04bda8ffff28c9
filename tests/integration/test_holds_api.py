"""Holds through their handlers: authorize, read, capture (partial, repeated, to a wallet or out of
the ledger), void, and the rules around them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ADMIN, ALICE, BOB


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_hold_reduces_available_at_once_and_reads_back(api, invariants):
    wallet = api.funded_wallet(1_000)

    created = api.create_hold(wallet["id"], 300, reference="withdrawal-1")

    assert created.status == 201, created.body
    hold = created.body
    assert (hold["wallet_id"], hold["amount"], hold["captured_amount"]) == (wallet["id"], 300, 0)
    assert (hold["status"], hold["reference"]) == ("active", "withdrawal-1")
    expires_at = datetime.fromisoformat(hold["expires_at"])
    assert timedelta(days=6, hours=23) < expires_at - datetime.now(UTC) <= timedelta(days=7)
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"], after["available"]) == (1_000, 300, 700)
    assert after["version"] == wallet["version"] + 1
    assert api.get_hold(hold["id"]).body == hold
    assert invariants() == []


def test_a_hold_may_name_its_own_expiry(api):
    wallet = api.funded_wallet(100)
    expires_at = datetime.now(UTC) + timedelta(hours=2)

    # A reservation: a payout hold may not expire before the provider's settlement window.
    created = api.create_hold(wallet["id"], 10, expires_at=_rfc3339(expires_at), purpose="reservation")

    assert created.status == 201, created.body
    assert abs(datetime.fromisoformat(created.body["expires_at"]) - expires_at) < timedelta(seconds=1)


@pytest.mark.parametrize(
    "expires_at",
    [
        _rfc3339(datetime.now(UTC) - timedelta(minutes=1)),
        _rfc3339(datetime.now(UTC) + timedelta(days=31)),
        "2030-01-01T00:00:00",  # no offset
        1_900_000_000,  # a Unix time is not RFC 3339
    ],
)
def test_an_expiry_in_the_past_too_far_ahead_or_not_rfc3339_is_a_validation_error(api, expires_at):
    wallet = api.funded_wallet(100)

    result = api.create_hold(wallet["id"], 10, expires_at=expires_at)

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "expires_at"


def test_a_hold_cannot_exceed_the_available_balance(api):
    wallet = api.funded_wallet(500)
    assert api.create_hold(wallet["id"], 400).status == 201

    result = api.create_hold(wallet["id"], 101)

    assert (result.status, result.code) == (422, "insufficient_funds")
    assert api.get_wallet(wallet["id"])["held"] == 400


def test_frozen_and_closed_wallets_take_no_new_hold_and_unknown_ones_are_404(api):
    frozen = api.funded_wallet(100)
    api.call("wallet_freeze", "POST", f"/v1/wallets/{frozen['id']}/freeze", claims=ADMIN)
    closed = api.create_wallet()
    api.call("wallet_close", "POST", f"/v1/wallets/{closed['id']}/close", claims=ADMIN)

    assert api.create_hold(frozen["id"], 10).code == "wallet_frozen"
    assert api.create_hold(closed["id"], 10).code == "wallet_closed"
    missing = api.create_hold("00000000-0000-4000-8000-000000000000", 10)
    assert (missing.status, missing.code) == (404, "not_found")


def test_only_admins_manage_holds_and_only_the_owner_or_an_admin_reads_one(api):
    wallet = api.funded_wallet(100, ALICE)
    hold = api.create_hold(wallet["id"], 10).body

    assert api.create_hold(wallet["id"], 10, claims=ALICE).code == "forbidden"
    assert api.capture_hold(hold["id"], claims=ALICE).code == "forbidden"
    assert api.void_hold(hold["id"], claims=ALICE).code == "forbidden"
    assert api.get_hold(hold["id"], claims=ALICE).status == 200
    assert (api.get_hold(hold["id"], claims=BOB).status, api.get_hold(hold["id"], claims=BOB).code) == (
        404,
        "not_found",
    )
    assert api.get_hold("00000000-0000-4000-8000-000000000000").status == 404


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
    assert (
        api.call("transaction_get", "GET", f"/v1/transactions/{first.body['id']}", claims=ALICE).status == 200
    )
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
    api.call("wallet_close", "POST", f"/v1/wallets/{closed['id']}/close", claims=ADMIN)
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


def test_void_releases_what_was_not_captured(api, invariants):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body
    api.capture_hold(hold["id"], amount=100)

    voided = api.void_hold(hold["id"])

    assert voided.status == 200, voided.body
    assert (voided.body["status"], voided.body["captured_amount"]) == ("voided", 100)
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"], after["available"]) == (900, 0, 900)
    assert invariants() == []


def test_capture_after_void_and_void_after_full_capture_are_invalid_state(api):
    wallet = api.funded_wallet(1_000)
    voided = api.create_hold(wallet["id"], 100).body
    captured = api.create_hold(wallet["id"], 100).body
    api.void_hold(voided["id"])
    api.capture_hold(captured["id"])

    late_capture = api.capture_hold(voided["id"], amount=10)
    late_void = api.void_hold(captured["id"])
    second_void = api.void_hold(voided["id"])

    assert (late_capture.status, late_capture.code) == (409, "invalid_state")
    assert (late_void.status, late_void.code) == (409, "invalid_state")
    assert second_void.code == "invalid_state"


def test_a_retried_capture_is_replayed_with_one_effect(api):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body

    first = api.call(
        "hold_capture",
        "POST",
        f"/v1/holds/{hold['id']}/capture",
        claims=ADMIN,
        body={"amount": 50},
        key="cap-1",
    )
    again = api.call(
        "hold_capture",
        "POST",
        f"/v1/holds/{hold['id']}/capture",
        claims=ADMIN,
        body={"amount": 50},
        key="cap-1",
    )

    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body
    assert again.headers.get("idempotent-replayed") == "true"
    assert api.get_hold(hold["id"]).body["captured_amount"] == 50


def test_a_hold_made_before_a_freeze_can_still_settle_or_be_voided(api):
    wallet = api.funded_wallet(1_000)
    settling = api.create_hold(wallet["id"], 300).body
    cancelled = api.create_hold(wallet["id"], 200).body
    api.call("wallet_freeze", "POST", f"/v1/wallets/{wallet['id']}/freeze", claims=ADMIN)

    assert api.capture_hold(settling["id"]).status == 201
    assert api.void_hold(cancelled["id"]).status == 200
    assert api.create_hold(wallet["id"], 1).code == "wallet_frozen"
    assert api.get_wallet(wallet["id"])["balance"] == 700


def test_a_wallet_with_an_active_hold_cannot_close_until_the_hold_settles(api):
    wallet = api.create_wallet()
    api.credit(wallet["id"], 100)
    hold = api.create_hold(wallet["id"], 100).body

    def close():
        return api.call("wallet_close", "POST", f"/v1/wallets/{wallet['id']}/close", claims=ADMIN)

    while_held = close()
    api.capture_hold(hold["id"])  # everything leaves: balance 0, held 0
    after_capture = close()

    assert (while_held.status, while_held.code) == (409, "invalid_state")
    assert after_capture.status == 200, after_capture.body


def test_the_sample_events_drive_the_hold_routes(api, db):
    from tests.support.lambda_runtime import FakeLambdaContext, load_handler, parse_result, sample_event

    wallet = api.funded_wallet(100_000)
    create = sample_event("hold_create")
    create["body"] = create["body"].replace("3f2b6c1e-8a4d-4f7b-9c2e-5d1a0b7e6f41", wallet["id"])
    create["headers"]["idempotency-key"] = f"sample-{wallet['id']}"

    made = parse_result(load_handler("functions/hold_create")(create, FakeLambdaContext()))
    assert made.status == 201, made.body
    results = {}
    for name in ("hold_get", "hold_capture", "hold_void"):
        event = sample_event(name)
        sample_id = event["pathParameters"]["hold_id"]
        event["rawPath"] = event["rawPath"].replace(sample_id, made.body["id"])
        event["requestContext"]["http"]["path"] = event["rawPath"]
        if "idempotency-key" in event["headers"]:
            event["headers"]["idempotency-key"] += wallet["id"]
        results[name] = parse_result(load_handler(f"functions/{name}")(event, FakeLambdaContext()))

    assert results["hold_get"].body["amount"] == 40_000
    assert (results["hold_capture"].status, results["hold_capture"].body["amount"]) == (201, 15_000)
    assert (results["hold_void"].status, results["hold_void"].body["status"]) == (200, "voided")
    assert api.get_wallet(wallet["id"])["balance"] == 85_000
