"""Request bodies of the contract. Strict: amounts are JSON integers only, unknown fields are errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
)
from pydantic.fields import FieldInfo

from wallet_core.config import get_settings
from wallet_core.domain.models import MAX_HOLD_LIFETIME, HoldPurpose
from wallet_core.domain.money import MAX_AMOUNT, MIN_AMOUNT
from wallet_core.http.guard import check_text


def _supported_currency(code: str) -> str:
    if code not in get_settings().supported_currencies:
        raise ValueError(f"currency {code} is not supported")
    return code


Amount = Annotated[StrictInt, Field(ge=MIN_AMOUNT, le=MAX_AMOUNT)]
Currency = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_supported_currency)]
# Every free-text field is a StrictStr with its length constraints and the same two rules: no
# control characters (U+0000 cannot be stored at all), so a client's text never becomes a database
# error (a 5xx). The pattern documents the rule in the OpenAPI document; the validator enforces it
# (with a clearer message, and lone surrogates too). Spelt out as Annotated aliases, not built by a
# function, so that type checkers see them as types.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
NO_CONTROL_CHARACTERS = AfterValidator(check_text)


def documented_text() -> FieldInfo:
    """The pattern in the JSON schema (left off dict keys, which pydantic would render as
    patternProperties)."""
    field: FieldInfo = Field(json_schema_extra={"pattern": TEXT_PATTERN})  # Field() is typed Any
    return field


Reference = Annotated[StrictStr, StringConstraints(max_length=128), NO_CONTROL_CHARACTERS, documented_text()]
Description = Annotated[
    StrictStr, StringConstraints(max_length=512), NO_CONTROL_CHARACTERS, documented_text()
]
Metadata = Annotated[
    dict[
        Annotated[StrictStr, StringConstraints(min_length=1, max_length=40), NO_CONTROL_CHARACTERS],
        Annotated[StrictStr, StringConstraints(max_length=500), NO_CONTROL_CHARACTERS, documented_text()],
    ],
    # The keys' rule in the document too (as propertyNames: pydantic would write patternProperties),
    # so a client or a fuzzer generating valid data never sends a key the validator refuses.
    Field(
        max_length=20,
        json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": 40, "pattern": TEXT_PATTERN}},
    ),
]
OwnerId = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=255), NO_CONTROL_CHARACTERS, documented_text()
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WalletCreateRequest(_Request):
    currency: Currency
    owner_id: OwnerId | None = None
    external_ref: Reference | None = None
    metadata: Metadata = Field(default_factory=dict)


class MovementRequest(_Request):
    amount: Amount
    reference: Reference | None = None
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)


class TransferCreateRequest(MovementRequest):
    source_wallet_id: uuid.UUID
    destination_wallet_id: uuid.UUID
    currency: Currency


class ReversalCreateRequest(_Request):
    reason: Description | None = None


def _rfc3339_string(value: object) -> object:
    # JSON timestamps only: no Unix numbers sneaking through pydantic's lax datetime parsing.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    return value


def _within_hold_lifetime(value: datetime) -> datetime:
    now = datetime.now(UTC)
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + MAX_HOLD_LIFETIME:
        raise ValueError(f"must be at most {MAX_HOLD_LIFETIME.days} days ahead")
    return value.astimezone(UTC)


HoldExpiry = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string), AfterValidator(_within_hold_lifetime)]


class HoldCreateRequest(_Request):
    wallet_id: uuid.UUID
    amount: Amount
    reference: Reference | None = None
    expires_at: HoldExpiry | None = None  # default: DEFAULT_HOLD_LIFETIME from now
    purpose: HoldPurpose = Field(
        default=HoldPurpose.PAYOUT,
        description="`payout` (default): money the provider will pay out and later settle; `expires_at`"
        " may not fall before the provider's settlement window (PAYOUT_SETTLEMENT_WINDOW_HOURS), and"
        " without it the hold lives the longer of 7 days and that window. `reservation`: a plain"
        " hold, any allowed `expires_at`",
    )


class HoldCaptureRequest(_Request):
    amount: Amount | None = None  # default: all that remains
    destination_wallet_id: uuid.UUID | None = None  # default: out of the ledger (a withdrawal)
