"""The authorization matrix: for every route, a foreign non-admin principal gets 404 (403 on admin-only
routes) and nothing changes; a request without verified claims gets 401."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import ADMIN, ALICE

MALLORY = {"sub": "mallory", "scope": "wallet:read"}


@pytest.fixture
def alices_world(api):
    wallet = api.funded_wallet(500, ALICE)
    other = api.funded_wallet(0, ALICE)
    transfer = api.transfer(wallet["id"], other["id"], 100, claims=ALICE).body
    return {"wallet": wallet["id"], "other": other["id"], "transaction": transfer["id"]}


def _routes(world):
    w, t = world["wallet"], world["transaction"]
    transfer_body = {
        "source_wallet_id": w,
        "destination_wallet_id": world["other"],
        "amount": 1,
        "currency": "USD",
    }
    return [
        # (function, method, path, body, expected status for a foreign non-admin)
        ("wallet_get", "GET", f"/v1/wallets/{w}", None, 404),
        ("wallet_history", "GET", f"/v1/wallets/{w}/transactions", None, 404),
        ("transaction_get", "GET", f"/v1/transactions/{t}", None, 404),
        ("transfer_create", "POST", "/v1/transfers", transfer_body, 404),
        ("credit_create", "POST", f"/v1/wallets/{w}/credits", {"amount": 1}, 403),
        ("debit_create", "POST", f"/v1/wallets/{w}/debits", {"amount": 1}, 403),
        ("reversal_create", "POST", f"/v1/transactions/{t}/reversals", None, 403),
        ("wallet_freeze", "POST", f"/v1/wallets/{w}/freeze", None, 403),
        ("wallet_unfreeze", "POST", f"/v1/wallets/{w}/unfreeze", None, 403),
        ("wallet_close", "POST", f"/v1/wallets/{w}/close", None, 403),
        ("wallet_list", "GET", "/v1/wallets", None, 403),  # with ?owner_id=alice
        ("wallet_create", "POST", "/v1/wallets", {"currency": "USD", "owner_id": "alice"}, 403),
    ]


def _snapshot(db):
    return (
        db.execute("SELECT id, balance, held, status, version FROM wallets ORDER BY id").fetchall(),
        db.execute("SELECT count(*) FROM transactions").fetchone()[0],
        db.execute("SELECT count(*) FROM entries").fetchone()[0],
    )


def test_a_foreign_principal_sees_nothing_and_changes_nothing(api, db, alices_world):
    before = _snapshot(db)

    for function, method, path, body, expected in _routes(alices_world):
        query = {"owner_id": "alice"} if function == "wallet_list" else None
        result = api.call(function, method, path, claims=MALLORY, body=body, query=query)
        assert result.status == expected, (function, result.body)
        assert result.code == ("not_found" if expected == 404 else "forbidden"), function

    assert _snapshot(db) == before


def test_not_found_for_an_invisible_wallet_is_indistinguishable_from_a_missing_one(api, alices_world):
    invisible = api.call("wallet_get", "GET", f"/v1/wallets/{alices_world['wallet']}", claims=MALLORY)
    missing = api.call("wallet_get", "GET", f"/v1/wallets/{alices_world['wallet'][:-4]}beef", claims=MALLORY)

    assert invisible.status == missing.status == 404
    per_request = ("detail", "request_id")
    assert {k: v for k, v in invisible.body.items() if k not in per_request} == {
        k: v for k, v in missing.body.items() if k not in per_request
    }


def test_without_verified_claims_every_v1_route_is_unauthorized(api, db, alices_world):
    before = _snapshot(db)

    for function, method, path, body, _ in _routes(alices_world):
        result = api.call(function, method, path, claims=None, body=body)
        assert (result.status, result.code) == (401, "unauthorized"), function

    assert _snapshot(db) == before


def test_admins_may_do_everything(api, alices_world):
    w = alices_world["wallet"]
    for function, method, path in [
        ("wallet_get", "GET", f"/v1/wallets/{w}"),
        ("wallet_history", "GET", f"/v1/wallets/{w}/transactions"),
        ("transaction_get", "GET", f"/v1/transactions/{alices_world['transaction']}"),
    ]:
        assert api.call(function, method, path, claims=ADMIN).status == 200, function
    assert api.transfer(w, alices_world["other"], 1, claims=ADMIN).status == 201


def test_a_scope_claim_rendered_as_a_json_array_is_understood(api):
    owner = f"owner-{uuid.uuid4()}"
    as_array = {"sub": "ops", "scope": "[wallet:admin wallet:read]"}

    result = api.call(
        "wallet_create", "POST", "/v1/wallets", claims=as_array, body={"currency": "USD", "owner_id": owner}
    )

    assert result.status == 201
