"""What each route tells the OpenAPI document: response models, problem codes, headers, links.

The document is generated from the handlers (tools/openapi.py merges every function's resolver);
the route decorators in functions/*/app.py take their OpenAPI keywords from `query()` and
`command()` here, so a route's declaration and its behaviour live side by side. Nothing in this
module runs per request: the dicts are built once at import, the models are built lazily
(`defer_build`) the first time a schema is asked for, which only the generator does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from wallet_core.domain.money import MAX_AMOUNT, MIN_AMOUNT

PROBLEM_JSON = "application/problem+json"
APPLICATION_JSON = "application/json"
BEARER_SCHEME = "bearerAuth"
ADMIN_SCOPE = "wallet:admin"
IDEMPOTENCY_EXTENSION = "x-idempotency-key"
SCOPE_EXTENSION = "x-required-scope"
REQUEST_EXAMPLES_EXTENSION = "x-request-examples"
MAX_BALANCE = 2**53 - 1  # every posted balance stays exact in JavaScript

# -- resources ------------------------------------------------------------------------------------

Balance = Annotated[int, Field(ge=0, le=MAX_BALANCE, description="minor units (cents), never a float")]
Amount = Annotated[int, Field(ge=MIN_AMOUNT, le=MAX_AMOUNT, description="minor units (cents)")]
SignedAmount = Annotated[
    int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="signed effect on this wallet, minor units")
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 alpha-3", examples=["USD"])]
Timestamp = Annotated[datetime, Field(description="RFC 3339, UTC, with Z")]
Metadata = Annotated[
    dict[str, Annotated[str, Field(max_length=500)]],
    Field(max_length=20, description="flat object of strings: <= 20 keys, keys <= 40 chars, values <= 500"),
]


class _Resource(BaseModel):
    # Built on first use only: Lambda imports this module on every cold start and never needs it.
    model_config = ConfigDict(defer_build=True, extra="forbid")


class Wallet(_Resource):
    """A wallet. `available = balance - held`, never below zero."""

    id: uuid.UUID
    owner_id: str = Field(max_length=255, description="the `sub` of the owning principal")
    currency: Currency
    status: Literal["active", "frozen", "closed"]
    balance: Balance = Field(description="posted balance, minor units")
    held: Balance = Field(description="sum of active holds, minor units")
    available: Balance = Field(description="balance - held, minor units")
    version: int = Field(ge=1, description="increases by one with every change of balances or status")
    external_ref: str | None = Field(
        max_length=128, description="the provider account this wallet is linked to (admin-only)"
    )
    metadata: Metadata
    created_at: Timestamp
    updated_at: Timestamp


class Transaction(_Resource):
    """A posted movement. A credit has no source, a debit (or a capture out of the ledger) no destination."""

    id: uuid.UUID
    kind: Literal["credit", "debit", "transfer", "reversal", "hold_capture"]
    status: Literal["posted"]
    amount: Amount
    currency: Currency
    source_wallet_id: uuid.UUID | None
    destination_wallet_id: uuid.UUID | None
    reference: str | None = Field(max_length=128)
    description: str | None = Field(max_length=512)
    metadata: Metadata
    reverses_transaction_id: uuid.UUID | None
    reversed_by_transaction_id: uuid.UUID | None
    created_at: Timestamp


class HistoryItem(Transaction):
    """A transaction as one wallet saw it."""

    entry_amount: SignedAmount
    balance_after: Balance = Field(description="this wallet's posted balance right after the entry")


class Hold(_Resource):
    """Money reserved on a wallet; it counts in `held` while active and not past `expires_at`."""

    id: uuid.UUID
    wallet_id: uuid.UUID
    amount: Amount
    captured_amount: Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
    status: Literal["active", "captured", "voided", "expired"]
    reference: str | None = Field(max_length=128)
    expires_at: Timestamp
    purpose: Literal["payout", "reservation"] = Field(
        description="`payout`: the provider pays the money out and settles it later, so the hold never"
        " expires before the provider's settlement window; `reservation`: a plain hold"
    )
    created_at: Timestamp
    updated_at: Timestamp


class BalanceSnapshot(_Resource):
    """A balance the provider reported, beside the ledger's balance at that moment."""

    id: uuid.UUID
    wallet_id: uuid.UUID
    provider: str
    event_id: str
    currency: Currency
    reported_balance: int
    ledger_balance: int
    drift: int = Field(description="reported_balance - ledger_balance, minor units")
    reported_at: Timestamp
    created_at: Timestamp


class UnresolvedSettlement(_Resource):
    """A provider settlement the ledger could not post (its hold had lapsed and the wallet could not
    cover it): the money has left at the provider, an operator must resolve it."""

    id: uuid.UUID
    provider: str
    event_id: str
    hold_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int = Field(ge=1, description="minor units")
    currency: Currency
    reason: str
    created_at: Timestamp
    resolved_at: Timestamp | None = None
    resolution: str | None = None


NEXT_CURSOR = Field(description="opaque; pass it as `?cursor=` for the next page; null on the last page")


ItemT = TypeVar("ItemT")


# One page shape for every list; each list names its own (the document names the schema by class).
class _Page(_Resource, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = NEXT_CURSOR


class WalletPage(_Page[Wallet]):
    pass


class HistoryPage(_Page[HistoryItem]):
    pass


class BalanceSnapshotPage(_Page[BalanceSnapshot]):
    pass


class UnresolvedSettlementPage(_Page[UnresolvedSettlement]):
    pass


class FieldError(BaseModel):
    model_config = ConfigDict(defer_build=True)

    field: str = Field(description="dotted path of the field, a query parameter or header name, or `body`")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details. `code` is the stable, machine-readable part."""

    model_config = ConfigDict(defer_build=True)

    type: str = Field(description="URI naming the problem type")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str
    request_id: str = Field(description="the API Gateway request id; quote it to support")
    errors: list[FieldError] | None = Field(
        default=None, description="present on validation_error: one entry per invalid field"
    )


class GatewayMessage(BaseModel):
    """What API Gateway itself answers when no route matches or its JWT authorizer says no."""

    model_config = ConfigDict(defer_build=True)

    message: str


class Health(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    schema_revision: str | None = None


class Readiness(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable"]
    reason: str | None = Field(
        default=None,
        description="when not ready: database_unreachable, missing_tables, schema_behind, "
        "schema_ahead or schema_unknown",
    )
    schema_revision: str | None = None
    schema_head: str | None = None
    missing_tables: list[str] | None = None


class VersionInfo(BaseModel):
    model_config = ConfigDict(defer_build=True)

    version: str
    git_sha: str
    build_time: str
    stage: str
    function_version: str
    schema_head: str


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (Problem, FieldError, GatewayMessage)

# -- problems -------------------------------------------------------------------------------------

PROBLEM_DESCRIPTIONS = {
    "validation_error": "malformed JSON, wrong types, out-of-range values, unknown fields, a text "
    "with U+0000 or another control character, a body that is not UTF-8, nested deeper than 32 "
    "levels or a number of more than 20 digits, a cursor the server did not issue",
    "idempotency_key_missing": "a POST without Idempotency-Key",
    "unauthorized": "no token, or an invalid or expired one",
    "forbidden": "authenticated, but the route (or a field such as owner_id or external_ref) needs "
    "scope wallet:admin",
    "not_found": "unknown, or not visible to the caller",
    "idempotency_request_in_progress": "the first request with this key is still being processed",
    "already_reversed": "the transaction was reversed already",
    "invalid_state": "not allowed in the resource's current state",
    "external_ref_in_use": "another wallet is linked to this external_ref",
    "concurrency_conflict": "a concurrent change won; retry with the same Idempotency-Key",
    "payload_too_large": "the body is above 64 KiB",
    "unsupported_media_type": "the body is not sent as application/json",
    "idempotency_key_reused": "the key was used for a different request",
    "insufficient_funds": "would make the available balance negative",
    "currency_mismatch": "amounts or wallets of different currencies",
    "wallet_frozen": "the wallet is frozen",
    "wallet_closed": "the wallet is closed",
    "same_wallet": "source and destination are the same wallet",
    "amount_exceeds_hold": "more than the hold has left",
    "balance_limit_exceeded": "a posted balance would pass 2^53 - 1",
    "service_unavailable": "the database is unreachable: retry after Retry-After seconds",
}

STATUS_TEXT = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable: a business rule said no",
    503: "Service unavailable",
}

_REPLAYED = {
    "description": "`true` when this is the stored answer to an earlier request with the same "
    "Idempotency-Key (same method, path and body)",
    "schema": {"type": "string", "enum": ["true"]},
}
_RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
_LOCATION = {
    "description": "path of the created resource",
    "required": True,
    "schema": {"type": "string", "format": "uri-reference"},
}
_WWW_AUTHENTICATE = {"description": "the bearer challenge", "schema": {"type": "string"}}


def _problem_example(status: int, code: str) -> dict[str, Any]:
    example: dict[str, Any] = {
        "type": f"https://wallet.example.com/problems/{code.replace('_', '-')}",
        "title": STATUS_TEXT[status].split(":")[0],
        "status": status,
        "detail": PROBLEM_DESCRIPTIONS[code].capitalize() + ".",
        "code": code,
        "request_id": "Vc2YbiVyoAMEVzQ=",
    }
    if code == "validation_error":
        example["errors"] = [{"field": "amount", "message": "Input should be greater than or equal to 1"}]
    return example


# Filled as routes are declared; the generator puts them in components/examples once.
PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {}


def _example(status: int, code: str) -> str:
    PROBLEM_EXAMPLES.setdefault(code, {"summary": code, "value": _problem_example(status, code)})
    return code


def _problem_response(
    status: int, codes: list[str], headers: dict[str, Any], *, scoped: bool = False
) -> dict[str, Any]:
    listed = "\n".join(f"- `{code}`: {PROBLEM_DESCRIPTIONS[code]}" for code in codes)
    content: dict[str, Any] = {
        PROBLEM_JSON: {
            "schema": {
                "allOf": [{"$ref": "#/components/schemas/Problem"}],
                "properties": {"code": {"enum": codes}, "status": {"const": status}},
            },
            "examples": {code: {"$ref": f"#/components/examples/{_example(status, code)}"} for code in codes},
        }
    }
    description = f"{STATUS_TEXT[status]}. `code` is one of:\n{listed}"
    if status in (401, 404):
        # API Gateway answers these itself (no route, or its JWT authorizer said no) in its own shape.
        content[APPLICATION_JSON] = {"schema": {"$ref": "#/components/schemas/GatewayMessage"}}
        description += (
            f'\n\nAPI Gateway answers {status} itself as `application/json` `{{"message": "..."}}` '
            "when no route matches or its JWT authorizer rejects the token."
        )
    if status == 403 and scoped:
        # The route's AuthorizationScopes: a token without wallet:admin never reaches the function.
        content[APPLICATION_JSON] = {"schema": {"$ref": "#/components/schemas/GatewayMessage"}}
        description += (
            f'\n\nAPI Gateway answers 403 itself as `application/json` `{{"message": "Forbidden"}}` '
            f"when the token's scopes do not include `{ADMIN_SCOPE}` (the local runtime answers the "
            "problem above)."
        )
    response: dict[str, Any] = {"description": description, "content": content}
    if status == 503:
        headers = {**headers, "Retry-After": _RETRY_AFTER}
    if status == 401:
        headers = {**headers, "WWW-Authenticate": _WWW_AUTHENTICATE}
    if headers:
        response["headers"] = headers
    return response


def _problems(
    problems: dict[int, list[str]], headers: dict[str, Any], *, scoped: bool = False
) -> dict[int, Any]:
    return {
        status: _problem_response(status, codes, headers, scoped=scoped)
        for status, codes in sorted(problems.items())
    }


def _merge(*groups: dict[int, list[str]]) -> dict[int, list[str]]:
    merged: dict[int, list[str]] = {}
    for group in groups:
        for status, codes in group.items():
            merged.setdefault(status, [])
            merged[status] += [code for code in codes if code not in merged[status]]
    return merged


# Every /v1 route: a token (401), a database (503), and input that may be invalid (400).
_AUTHENTICATED = {400: ["validation_error"], 401: ["unauthorized"], 503: ["service_unavailable"]}
# Every POST: a JSON body and an Idempotency-Key, whose outcome is stored and replayed.
_IDEMPOTENT = {
    400: ["validation_error", "idempotency_key_missing"],
    409: ["idempotency_request_in_progress", "concurrency_conflict"],
    413: ["payload_too_large"],
    415: ["unsupported_media_type"],
    422: ["idempotency_key_reused"],
}


def _security(admin: bool) -> list[dict[str, list[str]]]:
    # OpenAPI 3.1 lets a non-OAuth scheme list the roles it needs: here, the token's scope.
    return [{BEARER_SCHEME: [ADMIN_SCOPE] if admin else []}]


def _description(text: str, admin: bool, admin_fields: str | None) -> str:
    if admin:
        return f"{text}\n\nNeeds scope `{ADMIN_SCOPE}` (403 `forbidden` otherwise, before anything else is checked)."
    if admin_fields:
        return f"{text}\n\n{admin_fields} needs scope `{ADMIN_SCOPE}` (403 `forbidden` otherwise)."
    return text


_WALLET_EXAMPLE = {
    "id": "3f2b6c1e-8a4d-4e0b-9b1a-2c5d7e9f0a11",
    "owner_id": "user-1",
    "currency": "USD",
    "status": "active",
    "balance": 125000,
    "held": 4000,
    "available": 121000,
    "version": 7,
    "external_ref": None,
    "metadata": {"tier": "gold"},
    "created_at": "2026-11-22T18:59:02.123456Z",
    "updated_at": "2026-11-22T19:04:40.000001Z",
}
_TRANSACTION_EXAMPLE = {
    "id": "b7e1c9d2-0f3a-4c5b-8d6e-7f8091a2b3c4",
    "kind": "transfer",
    "status": "posted",
    "amount": 2500,
    "currency": "USD",
    "source_wallet_id": "3f2b6c1e-8a4d-4e0b-9b1a-2c5d7e9f0a11",
    "destination_wallet_id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
    "reference": "rent-2026-11",
    "description": "November rent",
    "metadata": {},
    "reverses_transaction_id": None,
    "reversed_by_transaction_id": None,
    "created_at": "2026-11-22T19:04:40.000001Z",
}
_HOLD_EXAMPLE = {
    "id": "9c7e2d4a-1b3c-4d5e-8f60-718293a4b5c6",
    "wallet_id": "3f2b6c1e-8a4d-4e0b-9b1a-2c5d7e9f0a11",
    "amount": 4000,
    "captured_amount": 0,
    "status": "active",
    "reference": "payout-7781",
    "expires_at": "2026-11-29T19:04:40.000001Z",
    "purpose": "payout",
    "created_at": "2026-11-22T19:04:40.000001Z",
    "updated_at": "2026-11-22T19:04:40.000001Z",
}
_HISTORY_ITEM_EXAMPLE = {**_TRANSACTION_EXAMPLE, "entry_amount": -2500, "balance_after": 122500}
# Response examples by model (what a client sees), amounts in minor units.
RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "Wallet": _WALLET_EXAMPLE,
    "Transaction": _TRANSACTION_EXAMPLE,
    "Hold": _HOLD_EXAMPLE,
    "WalletPage": {"items": [_WALLET_EXAMPLE], "next_cursor": None},
    "HistoryPage": {"items": [_HISTORY_ITEM_EXAMPLE], "next_cursor": "eyJrIjpbMTIzXX0"},
}


def _success(
    status: int,
    model: type[BaseModel],
    description: str,
    headers: dict[str, Any],
    links: dict[str, Any] | None,
) -> dict[str, Any]:
    content: dict[str, Any] = {"model": model}
    if model.__name__ in RESPONSE_EXAMPLES:
        content["examples"] = {model.__name__: {"value": RESPONSE_EXAMPLES[model.__name__]}}
    response: dict[str, Any] = {
        "description": description,
        "content": {APPLICATION_JSON: content},
    }
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return response


def _authenticated(
    operation_id: str, summary: str, description: str, tag: str, admin: bool, admin_fields: str | None
) -> dict[str, Any]:
    """What every authenticated operation says of itself, reads and commands alike."""
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": _description(description, admin, admin_fields),
        "tags": [tag],
        "security": _security(admin),
    }


def query(
    *,
    operation_id: str,
    summary: str,
    description: str,
    tag: str,
    model: type[BaseModel],
    problems: dict[int, list[str]] | None = None,
    admin: bool = False,
    admin_fields: str | None = None,
    links: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """OpenAPI keywords of a read (`@app.get(path, **query(...))`)."""
    all_problems = _merge(
        _AUTHENTICATED, {403: ["forbidden"]} if admin or admin_fields else {}, problems or {}
    )
    return {
        **_authenticated(operation_id, summary, description, tag, admin, admin_fields),
        "responses": {
            200: _success(200, model, "OK", {}, links),
            **_problems(all_problems, {}, scoped=admin),
        },
        "openapi_extensions": {SCOPE_EXTENSION: ADMIN_SCOPE} if admin else None,
    }


def command(
    *,
    operation_id: str,
    summary: str,
    description: str,
    tag: str,
    model: type[BaseModel],
    status: int = 201,
    location: str | None = None,
    problems: dict[int, list[str]] | None = None,
    admin: bool = False,
    admin_fields: str | None = None,
    links: dict[str, Any] | None = None,
    examples: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """OpenAPI keywords of an idempotent command (`@app.post(path, **command(...))`).

    `location` is the created resource's path template, `{id}` standing for its id; `examples`
    are request bodies by name (the generator puts them on the request body)."""
    all_problems = _merge(
        _AUTHENTICATED, _IDEMPOTENT, {403: ["forbidden"]} if admin or admin_fields else {}, problems or {}
    )
    success_headers: dict[str, Any] = {"Idempotent-Replayed": _REPLAYED}
    if status == 201:
        success_headers = {
            "Location": {**_LOCATION, "description": f"path of the created resource: `{location}`"},
            **success_headers,
        }
    replayable = {"Idempotent-Replayed": _REPLAYED}
    responses: dict[int, Any] = {
        status: _success(status, model, "Created" if status == 201 else "OK", success_headers, links)
    }
    for code, response in _problems(all_problems, {}, scoped=admin).items():
        if code in (404, 409, 422):  # business outcomes: stored with the key and replayed
            response["headers"] = {**response.get("headers", {}), **replayable}
        responses[code] = response
    extensions: dict[str, Any] = {IDEMPOTENCY_EXTENSION: "required"}
    if examples:
        extensions[REQUEST_EXAMPLES_EXTENSION] = {
            name: {"summary": name.replace("_", " "), "value": value} for name, value in examples.items()
        }
    if admin:
        extensions[SCOPE_EXTENSION] = ADMIN_SCOPE
    return {
        **_authenticated(operation_id, summary, description, tag, admin, admin_fields),
        "responses": responses,
        "openapi_extensions": extensions,
    }


def probe(
    *, operation_id: str, summary: str, description: str, model: type[BaseModel], unavailable: bool
) -> dict[str, Any]:
    """OpenAPI keywords of an unauthenticated probe."""
    responses: dict[int, Any] = {200: _success(200, model, "OK", {}, None)}
    if unavailable:
        responses[503] = {
            "description": "Not healthy or not ready; the body says why",
            "content": {APPLICATION_JSON: {"model": model}},
        }
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": description,
        "tags": ["probes"],
        "security": [],
        "responses": responses,
    }


def link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "description": description, "parameters": parameters}


def body_link(
    operation_id: str, description: str, request_body: dict[str, Any], **parameters: str
) -> dict[str, Any]:
    return {**link(operation_id, description, **parameters), "requestBody": request_body}


# Stateful clients (and fuzzers) follow these from one response to the next operation.
WALLET_ID = "$response.body#/id"
WALLET_LINKS = {
    "GetWallet": link("getWallet", "read the wallet", wallet_id=WALLET_ID),
    "ListWalletTransactions": link("listWalletTransactions", "its history", wallet_id=WALLET_ID),
    "CreditWallet": link("creditWallet", "credit it", wallet_id=WALLET_ID),
    "DebitWallet": link("debitWallet", "debit it", wallet_id=WALLET_ID),
    "FreezeWallet": link("freezeWallet", "freeze it", wallet_id=WALLET_ID),
    "UnfreezeWallet": link("unfreezeWallet", "unfreeze it", wallet_id=WALLET_ID),
    "CloseWallet": link("closeWallet", "close it", wallet_id=WALLET_ID),
    "ListBalanceSnapshots": link("listBalanceSnapshots", "provider balance reports", wallet_id=WALLET_ID),
    "TransferFromWallet": body_link(
        "createTransfer",
        "move money out of it",
        {"source_wallet_id": WALLET_ID, "currency": "$response.body#/currency"},
    ),
    "TransferToWallet": body_link(
        "createTransfer",
        "move money into it",
        {"destination_wallet_id": WALLET_ID, "currency": "$response.body#/currency"},
    ),
    "PlaceHold": body_link("createHold", "reserve part of its money", {"wallet_id": WALLET_ID}),
}
TRANSACTION_LINKS = {
    "GetTransaction": link("getTransaction", "read it", transaction_id="$response.body#/id"),
    "ReverseTransaction": link("createReversal", "reverse it", transaction_id="$response.body#/id"),
    "GetSourceWallet": link("getWallet", "its source wallet", wallet_id="$response.body#/source_wallet_id"),
    "GetDestinationWallet": link(
        "getWallet", "its destination wallet", wallet_id="$response.body#/destination_wallet_id"
    ),
}
# From a credit: the credited wallet has money, so what needs money can succeed from here (a
# stateful client moving on from a new, empty wallet only ever meets insufficient_funds).
CREDITED_WALLET = "$response.body#/destination_wallet_id"
CREDIT_LINKS = {
    **TRANSACTION_LINKS,
    "TransferCredit": body_link(
        "createTransfer",
        "move the credited amount on, to another wallet of its currency",
        {
            "source_wallet_id": CREDITED_WALLET,
            "currency": "$response.body#/currency",
            "amount": "$response.body#/amount",
        },
    ),
    "HoldCredit": body_link(
        "createHold",
        "reserve the credited amount",
        {"wallet_id": CREDITED_WALLET, "amount": "$response.body#/amount"},
    ),
    "DebitCredit": body_link(
        "debitWallet",
        "take the credited amount out again",
        {"amount": "$response.body#/amount"},
        wallet_id=CREDITED_WALLET,
    ),
}
HOLD_LINKS = {
    "GetHold": link("getHold", "read it", hold_id="$response.body#/id"),
    "CaptureHold": link("captureHold", "capture it", hold_id="$response.body#/id"),
    "VoidHold": link("voidHold", "void it", hold_id="$response.body#/id"),
    "GetHoldWallet": link("getWallet", "its wallet", wallet_id="$response.body#/wallet_id"),
}
