"""What the handlers answer conforms to the committed document, resource by resource: every field a
presenter writes is declared (the schemas forbid extra properties) and every declared, required
field is there. `make fuzz` checks the same thing at random; this checks each resource for sure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ADMIN, ALICE

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "openapi.json").read_text())


def assert_conforms(document: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    operation = document["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    # The response schema's $refs point into the document: validate with its components at the root.
    jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    ).validate(body)


def test_every_resource_the_handlers_present_is_the_documented_one(api, document):
    source = api.funded_wallet(10_000)
    destination = api.create_wallet(ALICE)
    assert_conforms(document, "GET", "/v1/wallets/{wallet_id}", 200, source)

    transfer = api.transfer(source["id"], destination["id"], 2_500, claims=ALICE, reference="rent")
    assert transfer.status == 201, transfer.body
    assert_conforms(document, "POST", "/v1/transfers", 201, transfer.body)
    reversal = api.call(
        "reversal_create",
        "POST",
        f"/v1/transactions/{transfer.body['id']}/reversals",
        claims=ADMIN,
        body={"reason": "dispute"},
    )
    assert reversal.status == 201, reversal.body
    assert_conforms(document, "POST", "/v1/transactions/{transaction_id}/reversals", 201, reversal.body)

    for purpose in ("payout", "reservation"):
        hold = api.create_hold(source["id"], 300, purpose=purpose)
        assert hold.status == 201, hold.body
        assert_conforms(document, "POST", "/v1/holds", 201, hold.body)
        assert_conforms(document, "GET", "/v1/holds/{hold_id}", 200, api.get_hold(hold.body["id"]).body)
    capture = api.capture_hold(hold.body["id"], amount=100)
    assert capture.status == 201, capture.body
    assert_conforms(document, "POST", "/v1/holds/{hold_id}/capture", 201, capture.body)
    voided = api.void_hold(hold.body["id"])
    assert voided.status == 200, voided.body
    assert_conforms(document, "POST", "/v1/holds/{hold_id}/void", 200, voided.body)

    history = api.call("wallet_history", "GET", f"/v1/wallets/{source['id']}/transactions", claims=ALICE)
    assert history.status == 200, history.body
    assert_conforms(document, "GET", "/v1/wallets/{wallet_id}/transactions", 200, history.body)
    wallets = api.call("wallet_list", "GET", "/v1/wallets", claims=ALICE)
    assert_conforms(document, "GET", "/v1/wallets", 200, wallets.body)
    frozen = api.call("wallet_freeze", "POST", f"/v1/wallets/{destination['id']}/freeze", claims=ADMIN)
    assert frozen.status == 200, frozen.body
    assert_conforms(document, "POST", "/v1/wallets/{wallet_id}/freeze", 200, frozen.body)
