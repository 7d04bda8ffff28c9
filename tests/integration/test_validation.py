"""Bad input gets 400 validation_error with field details, and writes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, ALICE

BAD_AMOUNTS = [0, -1, 10**15 + 1, 1.5, 10.0, "10", None, True, [5], {"v": 5}]


@pytest.fixture
def wallet(api, clean_ledger):
    return api.create_wallet(ALICE)


def _counts(db):
    return tuple(
        db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("transactions", "entries", "idempotency_keys")
    )


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_credit_rejects_amounts_that_are_not_positive_integers_within_range(api, db, wallet, amount):
    before = _counts(db)

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet['id']}/credits", claims=ADMIN, body={"amount": amount}
    )

    assert (result.status, result.code) == (400, "validation_error")
    assert result.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in result.body["errors"]] == ["amount"]
    assert _counts(db) == before


def test_the_largest_amount_is_accepted(api, wallet):
    assert api.credit(wallet["id"], 10**15).status == 201


@pytest.mark.parametrize("amount", [0, -5, 2.5, "1"])
def test_transfer_rejects_bad_amounts(api, db, wallet, amount):
    before = _counts(db)
    body = {
        "source_wallet_id": wallet["id"],
        "destination_wallet_id": wallet["id"],
        "amount": amount,
        "currency": "USD",
    }

    result = api.call("transfer_create", "POST", "/v1/transfers", claims=ADMIN, body=body)

    assert (result.status, result.code) == (400, "validation_error")
    assert _counts(db) == before


@pytest.mark.parametrize("currency", ["XYZ", "usd", "US", "", 840, None])
def test_wallet_create_rejects_unknown_or_malformed_currencies(api, db, clean_ledger, currency):
    result = api.call("wallet_create", "POST", "/v1/wallets", claims=ALICE, body={"currency": currency})

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "currency"
    assert db.execute("SELECT count(*) FROM wallets").fetchone()[0] == 0


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(21)},
        {"k" * 41: "v"},
        {"k": "v" * 501},
        {"k": 5},
        {"k": {"nested": "v"}},
        ["not", "an", "object"],
    ],
)
def test_oversized_or_nested_metadata_is_rejected(api, db, wallet, metadata):
    before = _counts(db)

    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        body={"amount": 5, "metadata": metadata},
    )

    assert (result.status, result.code) == (400, "validation_error")
    assert _counts(db) == before


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        ('{"amount": 5, "colour": "red"}', "colour"),
        ('{"amount": 5, "reference": "' + "r" * 129 + '"}', "reference"),
        ('{"amount": 5, "description": "' + "d" * 513 + '"}', "description"),
        ('{"amount": 5', "body"),
        ("[]", "body"),
        ("", "body"),
    ],
)
def test_malformed_documents_and_unknown_fields_are_rejected(api, db, wallet, raw_body, field):
    before = _counts(db)

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet['id']}/credits", claims=ADMIN, raw_body=raw_body
    )

    assert (result.status, result.code) == (400, "validation_error")
    assert field in [e["field"] for e in result.body["errors"]]
    assert "Traceback" not in result.raw_body
    assert _counts(db) == before


def test_a_malformed_path_id_is_a_validation_error(api):
    result = api.call("wallet_get", "GET", "/v1/wallets/not-a-uuid", claims=ALICE)

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "wallet_id"


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_list_limits_outside_1_to_100_are_rejected(api, limit):
    result = api.call("wallet_list", "GET", "/v1/wallets", claims=ALICE, query={"limit": limit})

    assert (result.status, result.code) == (400, "validation_error")
