"""POST /v1/wallets (functions/wallet_create): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE


def test_opening_a_wallet_returns_the_contract_resource(api):
    result = api.post("/v1/wallets", {"currency": "EUR", "metadata": {"tier": "gold"}}, as_user=ALICE)

    assert result.status == 201
    wallet = result.body
    assert uuid.UUID(wallet["id"]).version == 4
    assert wallet["owner_id"] == "alice"
    assert (wallet["currency"], wallet["status"]) == ("EUR", "active")
    assert (wallet["balance"], wallet["held"], wallet["available"], wallet["version"]) == (0, 0, 0, 1)
    assert wallet["metadata"] == {"tier": "gold"}
    assert wallet["external_ref"] is None
    assert wallet["created_at"].endswith("Z")
    assert result.headers["content-type"] == "application/json"


def test_only_an_admin_links_a_wallet_to_a_provider_account(api):
    ref = f"ext-{uuid.uuid4()}"
    by_user = api.post("/v1/wallets", {"currency": "EUR", "external_ref": ref}, as_user=ALICE)

    linked = api.create_wallet(ADMIN, currency="EUR", owner_id="alice", external_ref=ref)

    assert (by_user.status, by_user.code) == (403, "forbidden")
    assert (linked["owner_id"], linked["external_ref"]) == ("alice", ref)


def test_admin_opens_a_wallet_for_another_owner(api):
    wallet = api.create_wallet(ADMIN, owner_id="carol")

    assert wallet["owner_id"] == "carol"


def test_a_user_cannot_open_a_wallet_for_someone_else(api, db, clean_ledger):
    result = api.post("/v1/wallets", {"currency": "USD", "owner_id": "bob"}, as_user=ALICE)

    assert (result.status, result.code) == (403, "forbidden")
    assert db.execute("SELECT count(*) FROM wallets").fetchone()[0] == 0


def test_an_external_ref_names_one_wallet_only(api):
    ref = f"ext-{uuid.uuid4()}"
    api.create_wallet(ADMIN, owner_id="carol", external_ref=ref)

    result = api.post("/v1/wallets", {"currency": "USD", "external_ref": ref}, as_user=ADMIN)

    assert (result.status, result.code) == (409, "external_ref_in_use")
