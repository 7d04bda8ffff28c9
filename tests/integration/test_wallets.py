"""Wallet routes through their real handlers: open, read, list, history, freeze, unfreeze, close."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE, BOB


def test_opening_a_wallet_returns_the_contract_resource(api):
    result = api.call(
        "wallet_create",
        "POST",
        "/v1/wallets",
        claims=ALICE,
        body={"currency": "EUR", "metadata": {"tier": "gold"}},
    )

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
    by_user = api.call(
        "wallet_create", "POST", "/v1/wallets", claims=ALICE, body={"currency": "EUR", "external_ref": ref}
    )

    linked = api.create_wallet(ADMIN, currency="EUR", owner_id="alice", external_ref=ref)

    assert (by_user.status, by_user.code) == (403, "forbidden")
    assert (linked["owner_id"], linked["external_ref"]) == ("alice", ref)


def test_admin_opens_a_wallet_for_another_owner(api):
    wallet = api.create_wallet(ADMIN, owner_id="carol")

    assert wallet["owner_id"] == "carol"


def test_a_user_cannot_open_a_wallet_for_someone_else(api, db, clean_ledger):
    result = api.call(
        "wallet_create", "POST", "/v1/wallets", claims=ALICE, body={"currency": "USD", "owner_id": "bob"}
    )

    assert (result.status, result.code) == (403, "forbidden")
    assert db.execute("SELECT count(*) FROM wallets").fetchone()[0] == 0


def test_an_external_ref_names_one_wallet_only(api):
    ref = f"ext-{uuid.uuid4()}"
    api.create_wallet(ADMIN, owner_id="carol", external_ref=ref)

    result = api.call(
        "wallet_create", "POST", "/v1/wallets", claims=ADMIN, body={"currency": "USD", "external_ref": ref}
    )

    assert (result.status, result.code) == (409, "external_ref_in_use")


def test_owner_and_admin_read_a_wallet_others_get_not_found(api):
    wallet = api.create_wallet(ALICE)

    assert api.call("wallet_get", "GET", f"/v1/wallets/{wallet['id']}", claims=ALICE).status == 200
    assert api.call("wallet_get", "GET", f"/v1/wallets/{wallet['id']}", claims=ADMIN).status == 200
    hidden = api.call("wallet_get", "GET", f"/v1/wallets/{wallet['id']}", claims=BOB)
    missing = api.call("wallet_get", "GET", f"/v1/wallets/{uuid.uuid4()}", claims=BOB)
    assert (hidden.status, hidden.code) == (404, "not_found")
    assert hidden.body["title"] == missing.body["title"]


def test_listing_pages_through_own_wallets_newest_first(api):
    owner = {"sub": f"lister-{uuid.uuid4()}", "scope": ""}
    created = [api.create_wallet(owner)["id"] for _ in range(5)]

    first = api.call("wallet_list", "GET", "/v1/wallets", claims=owner, query={"limit": "2"})
    second = api.call(
        "wallet_list",
        "GET",
        "/v1/wallets",
        claims=owner,
        query={"limit": "2", "cursor": first.body["next_cursor"]},
    )
    third = api.call(
        "wallet_list",
        "GET",
        "/v1/wallets",
        claims=owner,
        query={"limit": "2", "cursor": second.body["next_cursor"]},
    )

    seen = [w["id"] for page in (first, second, third) for w in page.body["items"]]
    assert seen == list(reversed(created))
    assert third.body["next_cursor"] is None


def test_listing_another_owners_wallets_is_for_admins(api):
    owner = f"owner-{uuid.uuid4()}"
    api.create_wallet(ADMIN, owner_id=owner)

    as_admin = api.call("wallet_list", "GET", "/v1/wallets", claims=ADMIN, query={"owner_id": owner})
    as_user = api.call("wallet_list", "GET", "/v1/wallets", claims=ALICE, query={"owner_id": owner})

    assert [w["owner_id"] for w in as_admin.body["items"]] == [owner]
    assert (as_user.status, as_user.code) == (403, "forbidden")


def test_a_garbled_cursor_is_a_validation_error(api):
    result = api.call("wallet_list", "GET", "/v1/wallets", claims=ALICE, query={"cursor": "not-a-cursor!"})

    assert (result.status, result.code) == (400, "validation_error")


def test_history_lists_entries_newest_first_with_running_balance(api):
    wallet = api.funded_wallet(1_000, ALICE)
    other = api.create_wallet(BOB)
    api.transfer(wallet["id"], other["id"], 300, claims=ALICE)
    api.call("debit_create", "POST", f"/v1/wallets/{wallet['id']}/debits", claims=ADMIN, body={"amount": 200})

    first = api.call(
        "wallet_history",
        "GET",
        f"/v1/wallets/{wallet['id']}/transactions",
        claims=ALICE,
        query={"limit": "2"},
    )
    rest = api.call(
        "wallet_history",
        "GET",
        f"/v1/wallets/{wallet['id']}/transactions",
        claims=ALICE,
        query={"limit": "2", "cursor": first.body["next_cursor"]},
    )

    items = first.body["items"] + rest.body["items"]
    assert [(i["kind"], i["entry_amount"], i["balance_after"]) for i in items] == [
        ("debit", -200, 500),
        ("transfer", -300, 700),
        ("credit", 1_000, 1_000),
    ]
    assert rest.body["next_cursor"] is None


def test_freeze_blocks_sending_but_not_receiving_and_unfreeze_restores(api):
    wallet = api.funded_wallet(500, ALICE)
    other = api.funded_wallet(500, BOB)

    frozen = api.call("wallet_freeze", "POST", f"/v1/wallets/{wallet['id']}/freeze", claims=ADMIN)
    assert (frozen.status, frozen.body["status"], frozen.body["version"]) == (
        200,
        "frozen",
        wallet["version"] + 1,
    )

    assert api.transfer(wallet["id"], other["id"], 10, claims=ALICE).code == "wallet_frozen"
    assert api.call(
        "debit_create", "POST", f"/v1/wallets/{wallet['id']}/debits", claims=ADMIN, body={"amount": 1}
    ).code == ("wallet_frozen")
    assert api.transfer(other["id"], wallet["id"], 10, claims=BOB).status == 201
    assert api.credit(wallet["id"], 5).status == 201

    again = api.call("wallet_freeze", "POST", f"/v1/wallets/{wallet['id']}/freeze", claims=ADMIN)
    assert (again.status, again.code) == (409, "invalid_state")
    thawed = api.call("wallet_unfreeze", "POST", f"/v1/wallets/{wallet['id']}/unfreeze", claims=ADMIN)
    assert thawed.body["status"] == "active"
    assert api.transfer(wallet["id"], other["id"], 10, claims=ALICE).status == 201


def test_unfreezing_an_active_wallet_is_an_invalid_state(api):
    wallet = api.create_wallet(ALICE)

    result = api.call("wallet_unfreeze", "POST", f"/v1/wallets/{wallet['id']}/unfreeze", claims=ADMIN)

    assert (result.status, result.code) == (409, "invalid_state")


def test_close_needs_a_zero_balance_and_then_accepts_nothing(api):
    wallet = api.funded_wallet(100, ALICE)
    other = api.create_wallet(BOB)

    refused = api.call("wallet_close", "POST", f"/v1/wallets/{wallet['id']}/close", claims=ADMIN)
    assert (refused.status, refused.code) == (409, "invalid_state")

    api.transfer(wallet["id"], other["id"], 100, claims=ALICE)
    closed = api.call("wallet_close", "POST", f"/v1/wallets/{wallet['id']}/close", claims=ADMIN)
    assert (closed.status, closed.body["status"]) == (200, "closed")

    assert api.credit(wallet["id"], 1).code == "wallet_closed"
    assert api.transfer(other["id"], wallet["id"], 1, claims=BOB).code == "wallet_closed"
    for action in ("freeze", "unfreeze", "close"):
        result = api.call(f"wallet_{action}", "POST", f"/v1/wallets/{wallet['id']}/{action}", claims=ADMIN)
        assert result.code == "wallet_closed", action
