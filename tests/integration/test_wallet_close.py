"""POST /v1/wallets/{wallet_id}/close (functions/wallet_close): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE, BOB


def test_close_needs_a_zero_balance_and_then_accepts_nothing(api):
    wallet = api.funded_wallet(100, ALICE)
    other = api.create_wallet(BOB)

    refused = api.post(f"/v1/wallets/{wallet['id']}/close", as_user=ADMIN)
    assert (refused.status, refused.code) == (409, "invalid_state")

    api.transfer(wallet["id"], other["id"], 100, claims=ALICE)
    closed = api.post(f"/v1/wallets/{wallet['id']}/close", as_user=ADMIN)
    assert (closed.status, closed.body["status"]) == (200, "closed")

    assert api.credit(wallet["id"], 1).code == "wallet_closed"
    assert api.transfer(other["id"], wallet["id"], 1, claims=BOB).code == "wallet_closed"
    for action in ("freeze", "unfreeze", "close"):
        result = api.post(f"/v1/wallets/{wallet['id']}/{action}", as_user=ADMIN)
        assert result.code == "wallet_closed", action


def test_a_wallet_with_an_active_hold_cannot_close_until_the_hold_settles(api):
    wallet = api.create_wallet()
    api.credit(wallet["id"], 100)
    hold = api.create_hold(wallet["id"], 100).body

    def close():
        return api.post(f"/v1/wallets/{wallet['id']}/close", as_user=ADMIN)

    while_held = close()
    api.capture_hold(hold["id"])  # everything leaves: balance 0, held 0
    after_capture = close()

    assert (while_held.status, while_held.code) == (409, "invalid_state")
    assert after_capture.status == 200, after_capture.body
