"""POST /v1/holds (functions/hold_create): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ADMIN


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
    api.post(f"/v1/wallets/{frozen['id']}/freeze", as_user=ADMIN)
    closed = api.create_wallet()
    api.post(f"/v1/wallets/{closed['id']}/close", as_user=ADMIN)

    assert api.create_hold(frozen["id"], 10).code == "wallet_frozen"
    assert api.create_hold(closed["id"], 10).code == "wallet_closed"
    missing = api.create_hold("00000000-0000-4000-8000-000000000000", 10)
    assert (missing.status, missing.code) == (404, "not_found")
