"""Schemathesis hooks for `make fuzz` (loaded through SCHEMATHESIS_HOOKS=tools.fuzz_hooks).

Generated Idempotency-Key values repeat a lot (Hypothesis favours short strings and the document's
example), and a repeated key with a different body is, correctly, 422 idempotency_key_reused: most
generated commands never reached the ledger, and the stateful phase had no wallets to follow links
from. Every *valid* key is therefore made unique just before the call; invalid ones (negative
cases: empty, too long, control characters) are sent as generated. Replays are covered by
tests/integration/test_idempotency.py.

A transfer needs two wallets, one with money, and an OpenAPI link carries values from one response
only: the document links a wallet to a transfer into it and a credit to a transfer out of the
credited wallet, but the other side is generated, an unknown wallet (404) nearly every time. In the
stateful phase, a transfer's well-formed wallet id that this run never created is replaced: the
source by the newest active wallet of its currency the run credited (the amount capped at what was
credited), the destination by the newest active one it created, so linked scenarios complete
transfers (and follow their links: read, reverse). Every other phase keeps the generated ids
(unknown wallets stay covered there).
"""

from __future__ import annotations

import re
import uuid

import schemathesis
from schemathesis.generation.meta import TestPhase

_VALID_KEY = re.compile(r"^[!-~]{1,255}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# What this run did (one Schemathesis process, one role), oldest first: wallets it created, by
# currency; wallets it credited, with the amount, by currency; wallets it froze or closed.
_WALLETS: dict[str, list[str]] = {}
_FUNDED: dict[str, list[tuple[str, int]]] = {}
_INACTIVE: set[str] = set()
_DEACTIVATE = ("/v1/wallets/{wallet_id}/freeze", "/v1/wallets/{wallet_id}/close")


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


def _unknown(value: object, known: set[str]) -> bool:
    """A well-formed wallet id this run never created (anything else is a negative case: kept)."""
    return isinstance(value, str) and bool(_UUID.match(value)) and value not in known


def stateful_transfer(
    body: object,
    wallets: dict[str, list[str]],
    funded: dict[str, list[tuple[str, int]]],
    inactive: set[str] | frozenset[str] = frozenset(),
) -> dict[str, object]:
    """What a stateful transfer should use instead of unknown wallets: the newest active wallet of
    its currency the run credited as the source (and at most the credited amount), the newest
    active one it created as the destination (never the same). Empty: keep what was generated."""
    if not isinstance(body, dict) or not isinstance(body.get("currency"), str):
        return {}
    known = {wallet for created in wallets.values() for wallet in created}
    currency = body["currency"]
    changes: dict[str, object] = {}
    source, destination = body.get("source_wallet_id"), body.get("destination_wallet_id")
    amount = body.get("amount")
    if isinstance(amount, float) and amount.is_integer() and 1 <= amount <= 10**15:
        # JSON Schema's integer admits 2039.0, which Schemathesis sends as valid data; the API takes
        # JSON integers only (400 validation_error, covered by the other phases).
        amount = changes["amount"] = int(amount)
    if _unknown(source, known):
        sources = [
            (w, credited) for w, credited in funded.get(currency, []) if w not in inactive | {destination}
        ]
        if sources:
            source, credited = sources[-1]
            changes["source_wallet_id"] = source
            if isinstance(amount, int) and not isinstance(amount, bool) and amount > credited:
                changes["amount"] = credited
    if _unknown(destination, known):
        others = [wallet for wallet in wallets.get(currency, []) if wallet not in inactive | {source}]
        if others:
            changes["destination_wallet_id"] = others[-1]
    return changes


@schemathesis.hook
def before_call(context, case, kwargs):
    _unique_idempotency_keys(case)
    if case.method.upper() == "POST" and case.path == "/v1/transfers" and _stateful(case):
        changes = stateful_transfer(case.body, _WALLETS, _FUNDED, _INACTIVE)
        if changes:  # only ever for a dict body
            case.body.update(changes)


@schemathesis.hook
def after_call(context, case, response):
    if case.method.upper() != "POST" or response.status_code not in (200, 201):
        return
    resource = response.json()
    if case.path == "/v1/wallets":
        _WALLETS.setdefault(resource["currency"], []).append(resource["id"])
    elif case.path == "/v1/wallets/{wallet_id}/credits":
        _FUNDED.setdefault(resource["currency"], []).append(
            (resource["destination_wallet_id"], resource["amount"])
        )
    elif case.path in _DEACTIVATE:
        _INACTIVE.add(resource["id"])
    elif case.path == "/v1/wallets/{wallet_id}/unfreeze":
        _INACTIVE.discard(resource["id"])
