"""POST /v1/wallets/{wallet_id}/unfreeze (functions/wallet_unfreeze): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE


def test_unfreezing_an_active_wallet_is_an_invalid_state(api):
    wallet = api.create_wallet(ALICE)

    result = api.post(f"/v1/wallets/{wallet['id']}/unfreeze", as_user=ADMIN)

    assert (result.status, result.code) == (409, "invalid_state")
