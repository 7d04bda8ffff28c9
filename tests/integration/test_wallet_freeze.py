"""POST /v1/wallets/{wallet_id}/freeze (functions/wallet_freeze): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE, BOB


def test_freeze_blocks_sending_but_not_receiving_and_unfreeze_restores(api):
    wallet = api.funded_wallet(500, ALICE)
    other = api.funded_wallet(500, BOB)

    frozen = api.post(f"/v1/wallets/{wallet['id']}/freeze", as_user=ADMIN)
    assert (frozen.status, frozen.body["status"], frozen.body["version"]) == (
        200,
        "frozen",
        wallet["version"] + 1,
    )

    assert api.transfer(wallet["id"], other["id"], 10, claims=ALICE).code == "wallet_frozen"
    assert api.post(f"/v1/wallets/{wallet['id']}/debits", {"amount": 1}, as_user=ADMIN).code == (
        "wallet_frozen"
    )
    assert api.transfer(other["id"], wallet["id"], 10, claims=BOB).status == 201
    assert api.credit(wallet["id"], 5).status == 201

    again = api.post(f"/v1/wallets/{wallet['id']}/freeze", as_user=ADMIN)
    assert (again.status, again.code) == (409, "invalid_state")
    thawed = api.post(f"/v1/wallets/{wallet['id']}/unfreeze", as_user=ADMIN)
    assert thawed.body["status"] == "active"
    assert api.transfer(wallet["id"], other["id"], 10, claims=ALICE).status == 201
