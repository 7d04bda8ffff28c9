"""Schemathesis hooks for `make fuzz` (loaded through SCHEMATHESIS_HOOKS=tools.fuzz_hooks).

Generated Idempotency-Key values repeat a lot (Hypothesis favours short strings and the document's
example), and a repeated key with a different body is, correctly, 422 idempotency_key_reused: most
generated commands never reached the ledger, and the stateful phase had no wallets to follow links
from. Every *valid* key is therefore made unique just before the call; invalid ones (negative
cases: empty, too long, control characters) are sent as generated. Replays are covered by
tests/integration/test_idempotency.py.

A transfer needs two wallets, and an OpenAPI link carries values from one response only: the
document links a credit to a transfer out of the credited wallet (`TransferCredit`), but its
destination is generated, an unknown wallet (404) nearly every time. In the stateful phase, a
transfer whose destination is a well-formed id of no wallet this run created goes to the newest
wallet of its currency created so far instead, so linked scenarios can complete a transfer (and
follow its links: read, reverse). Every other phase keeps the generated destination (unknown
wallets stay covered there).
"""

from __future__ import annotations

import re
import uuid

import schemathesis
from schemathesis.generation.meta import TestPhase

_VALID_KEY = re.compile(r"^[!-~]{1,255}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Wallets created in this run (one Schemathesis process, one role), by currency, oldest first.
_WALLETS: dict[str, list[str]] = {}


def _unique_idempotency_keys(case) -> None:
    headers = case.headers
    if not headers:
        return
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and _VALID_KEY.match(value):
            headers[name] = f"fuzz-{uuid.uuid4()}"


def _stateful(case) -> bool:
    meta = case.meta
    return meta is not None and meta.phase.name == TestPhase.STATEFUL


def transfer_destination(body: object, wallets: dict[str, list[str]]) -> str | None:
    """The known wallet a stateful transfer should go to, or None to keep the generated body."""
    if not isinstance(body, dict):
        return None
    destination, currency = body.get("destination_wallet_id"), body.get("currency")
    if not (isinstance(destination, str) and _UUID.match(destination) and isinstance(currency, str)):
        return None  # a negative case: sent as generated
    if any(destination in created for created in wallets.values()):
        return None  # a wallet of this run (of another currency: currency_mismatch, kept)
    candidates = [wallet for wallet in wallets.get(currency, []) if wallet != body.get("source_wallet_id")]
    return candidates[-1] if candidates else None


@schemathesis.hook
def before_call(context, case, kwargs):
    _unique_idempotency_keys(case)
    if case.method.upper() == "POST" and case.path == "/v1/transfers" and _stateful(case):
        destination = transfer_destination(case.body, _WALLETS)
        if destination is not None:
            case.body["destination_wallet_id"] = destination


@schemathesis.hook
def after_call(context, case, response):
    if case.method.upper() == "POST" and case.path == "/v1/wallets" and response.status_code == 201:
        wallet = response.json()
        _WALLETS.setdefault(wallet["currency"], []).append(wallet["id"])
