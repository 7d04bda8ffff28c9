"""GET /v1/wallets/{wallet_id} (functions/wallet_get): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE, BOB


def test_owner_and_admin_read_a_wallet_others_get_not_found(api):
    wallet = api.create_wallet(ALICE)

    assert api.get(f"/v1/wallets/{wallet['id']}", as_user=ALICE).status == 200
    assert api.get(f"/v1/wallets/{wallet['id']}", as_user=ADMIN).status == 200
    hidden = api.get(f"/v1/wallets/{wallet['id']}", as_user=BOB)
    missing = api.get(f"/v1/wallets/{uuid.uuid4()}", as_user=BOB)
    assert (hidden.status, hidden.code) == (404, "not_found")
    assert hidden.body["title"] == missing.body["title"]
