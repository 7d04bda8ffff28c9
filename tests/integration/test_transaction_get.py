"""GET /v1/transactions/{transaction_id} (functions/transaction_get): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE, BOB


def test_transaction_is_visible_to_involved_owners_and_admins_only(api):
    source = api.funded_wallet(100, ALICE)
    destination = api.create_wallet(BOB)
    transfer = api.transfer(source["id"], destination["id"], 10, claims=ALICE).body
    path = f"/v1/transactions/{transfer['id']}"

    assert api.get(path, as_user=ALICE).body == transfer
    assert api.get(path, as_user=BOB).status == 200
    assert api.get(path, as_user=ADMIN).status == 200
    assert api.get(path, as_user={"sub": "mallory"}).code == "not_found"
    assert api.get(f"/v1/transactions/{uuid.uuid4()}", as_user=ADMIN).code == "not_found"
