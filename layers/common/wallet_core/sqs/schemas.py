"""Provider events of the contract, one JSON object per SQS message body. Strict like the API:
amounts are JSON integers, unknown fields are errors (a misspelt optional `amount` on a withdrawal
must not silently become "capture everything")."""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from wallet_core.config import normalise_provider
from wallet_core.domain.money import MAX_AMOUNT
from wallet_core.http import guard
from wallet_core.http.schemas import (
    NO_CONTROL_CHARACTERS,
    Amount,
    Currency,
    Description,
    Reference,
    documented_text,
)
from wallet_core.service.ingestion import EventReceipt

MAX_REASON_LENGTH = 1000

ProviderName = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=64), NO_CONTROL_CHARACTERS, documented_text()
]
EventId = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=255), NO_CONTROL_CHARACTERS, documented_text()
]
ExternalRef = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=128), NO_CONTROL_CHARACTERS, documented_text()
]
# A provider may report an empty account; never a negative one (no overdrafts in this ledger).
ReportedBalance = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId
    provider: ProviderName
    occurred_at: AwareDatetime


class _NamesOneWallet(_Event):
    wallet_id: uuid.UUID | None = None
    external_ref: ExternalRef | None = None

    @model_validator(mode="after")
    def _exactly_one_wallet(self) -> _NamesOneWallet:
        if (self.wallet_id is None) == (self.external_ref is None):
            raise ValueError("exactly one of wallet_id and external_ref is required")
        return self


class DepositSettled(_NamesOneWallet):
    type: Literal["deposit.settled"]
    amount: Amount
    currency: Currency
    reference: Reference | None = None


class WithdrawalSettled(_Event):
    type: Literal["withdrawal.settled"]
    hold_id: uuid.UUID
    amount: Amount | None = None  # absent: all that remains of the hold
    currency: Currency | None = None  # optional cross-check against the hold's wallet


class WithdrawalFailed(_Event):
    type: Literal["withdrawal.failed"]
    hold_id: uuid.UUID
    reason: Description | None = None


class BalanceReported(_NamesOneWallet):
    type: Literal["balance.reported"]
    balance: ReportedBalance
    currency: Currency


ProviderEvent = Annotated[
    DepositSettled | WithdrawalSettled | WithdrawalFailed | BalanceReported, Field(discriminator="type")
]


@functools.cache
def _event_adapter() -> TypeAdapter[ProviderEvent]:
    return TypeAdapter(ProviderEvent)


@dataclass(frozen=True)
class Unkeyed:
    """Nothing to record it under (not JSON, or no usable provider/event_id)."""

    reason: str


@dataclass(frozen=True)
class Invalid:
    """Keyed, but it fails the schema: recorded as rejected."""

    receipt: EventReceipt
    reason: str


@dataclass(frozen=True)
class Valid:
    receipt: EventReceipt
    event: DepositSettled | WithdrawalSettled | WithdrawalFailed | BalanceReported


def _key_part(payload: dict[str, Any], name: str, max_length: int) -> str | None:
    value = payload.get(name)
    # A key with control characters cannot be stored (U+0000) and must not be altered to fit:
    # a cleaned key could collide with a real event's and suppress it.
    if isinstance(value, str) and 0 < len(value) <= max_length and not guard.has_forbidden_text(value):
        return value
    return None


def _storable(value: Any) -> Any:
    """The payload as it can be recorded: PostgreSQL's jsonb refuses U+0000 and lone surrogates,
    so a rejected event keeps its reason and a readable copy with those replaced by U+FFFD."""
    if isinstance(value, str):
        return guard.without_forbidden_text(value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _read_body(body: str) -> tuple[Any, str | None]:
    """(payload, why it breaks the API's rules or None). The same rules as an API body (size,
    nesting, digits, duplicate keys, NaN); a body that breaks one but can still be read safely is
    read leniently, so its rejection can be recorded under its key. Raises BodyError if unreadable."""
    if len(body.encode("utf-8", "surrogatepass")) > guard.MAX_BODY_BYTES:
        problem = f"the message body is larger than {guard.MAX_BODY_BYTES // 1024} KiB"
    else:
        try:
            return guard.parse_json(body), None
        except guard.BodyError as error:
            problem = error.reason
    if guard.depth_of(body) > guard.MAX_DEPTH:
        raise guard.BodyError(problem)
    try:
        # Lenient: numbers kept as their text (no int-parsing limit), last duplicate wins.
        return json.loads(body, parse_int=str, parse_float=str, parse_constant=str), problem
    except ValueError as error:
        raise guard.BodyError(problem) from error


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    # Field names come from the message: an unknown one may hold characters the column refuses.
    return guard.without_forbidden_text("schema: " + "; ".join(parts))[:MAX_REASON_LENGTH]


def parse_message(body: str) -> Unkeyed | Invalid | Valid:
    try:
        payload, broken_rule = _read_body(body)
    except guard.BodyError as error:
        return Unkeyed(f"the message body is not acceptable JSON: {error.reason}")
    if not isinstance(payload, dict):
        return Unkeyed("the message body is not a JSON object")
    provider, event_id = _key_part(payload, "provider", 64), _key_part(payload, "event_id", 255)
    # The provider is part of the dedup key: "ACME-PAY" and "acme-pay" must be one provider.
    provider = normalise_provider(provider) if provider is not None else None
    if not provider or event_id is None:
        return Unkeyed("provider and event_id must be non-empty strings (<= 64 and <= 255 chars)")
    event_type = payload.get("type")
    receipt = EventReceipt(
        provider=provider,
        event_id=event_id,
        type=_storable(event_type[:64]) if isinstance(event_type, str) and event_type else "unknown",
        payload=_storable(payload),
    )
    if broken_rule is not None:
        return Invalid(receipt, f"body: {broken_rule}"[:MAX_REASON_LENGTH])
    try:
        event = _event_adapter().validate_python(payload)
    except ValidationError as error:
        return Invalid(receipt, _describe(error))
    return Valid(receipt, event)
