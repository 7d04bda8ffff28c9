"""GET /v1/wallets (functions/wallet_list): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE


def test_listing_pages_through_own_wallets_newest_first(api):
    owner = {"sub": f"lister-{uuid.uuid4()}", "scope": ""}
    created = [api.create_wallet(owner)["id"] for _ in range(5)]

    first = api.get("/v1/wallets", as_user=owner, query={"limit": "2"})
    second = api.get("/v1/wallets", as_user=owner, query={"limit": "2", "cursor": first.body["next_cursor"]})
    third = api.get("/v1/wallets", as_user=owner, query={"limit": "2", "cursor": second.body["next_cursor"]})

    seen = [w["id"] for page in (first, second, third) for w in page.body["items"]]
    assert seen == list(reversed(created))
    assert third.body["next_cursor"] is None


def test_listing_another_owners_wallets_is_for_admins(api):
    owner = f"owner-{uuid.uuid4()}"
    api.create_wallet(ADMIN, owner_id=owner)

    as_admin = api.get("/v1/wallets", as_user=ADMIN, query={"owner_id": owner})
    as_user = api.get("/v1/wallets", as_user=ALICE, query={"owner_id": owner})

    assert [w["owner_id"] for w in as_admin.body["items"]] == [owner]
    assert (as_user.status, as_user.code) == (403, "forbidden")


def test_a_garbled_cursor_is_a_validation_error(api):
    result = api.get("/v1/wallets", as_user=ALICE, query={"cursor": "not-a-cursor!"})

    assert (result.status, result.code) == (400, "validation_error")
