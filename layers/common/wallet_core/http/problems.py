"""The one place where errors become HTTP responses (RFC 9457 problem+json)."""

from __future__ import annotations

import json
from http import HTTPStatus

from wallet_core.domain import errors
from wallet_core.http.guard import PayloadTooLargeError, UnsupportedMediaTypeError

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://wallet.example.com/problems/"

STATUS_BY_CODE: dict[str, int] = {
    errors.ValidationError.code: 400,
    errors.IdempotencyKeyMissingError.code: 400,
    errors.UnauthorizedError.code: 401,
    errors.ForbiddenError.code: 403,
    errors.NotFoundError.code: 404,
    errors.IdempotencyRequestInProgressError.code: 409,
    errors.AlreadyReversedError.code: 409,
    errors.InvalidStateError.code: 409,
    errors.ExternalRefInUseError.code: 409,
    errors.ConcurrencyConflictError.code: 409,
    errors.IdempotencyKeyReusedError.code: 422,
    errors.InsufficientFundsError.code: 422,
    errors.CurrencyMismatchError.code: 422,
    errors.WalletFrozenError.code: 422,
    errors.WalletClosedError.code: 422,
    errors.SameWalletError.code: 422,
    errors.BalanceLimitExceededError.code: 422,
    errors.AmountExceedsHoldError.code: 422,
    PayloadTooLargeError.code: 413,
    UnsupportedMediaTypeError.code: 415,
    errors.ServiceUnavailableError.code: 503,
}
INTERNAL_ERROR = "internal_error"

RETRY_AFTER_SECONDS = "1"


def render_problem(
    status: int,
    code: str,
    detail: str,
    field_errors: list[dict[str, str]] | None = None,
    *,
    request_id: str | None = None,
) -> str:
    """The problem document; `request_id` is API Gateway's, which the logs carry as correlation_id,
    so support can find the request a client quotes."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field_errors is not None:
        body["errors"] = field_errors
    if request_id is not None:
        body["request_id"] = request_id
    return json.dumps(body, separators=(",", ":"))


def problem_for(error: errors.WalletServiceError, *, request_id: str | None = None) -> tuple[int, str]:
    status = STATUS_BY_CODE.get(error.code, 500)
    field_errors = error.errors if isinstance(error, errors.ValidationError) else None
    return status, render_problem(status, error.code, error.detail, field_errors, request_id=request_id)


def internal_error(*, request_id: str | None = None) -> tuple[int, str]:
    """Only for bugs: answered when nothing in the error tree applies (and logged with its trace)."""
    return 500, render_problem(
        500, INTERNAL_ERROR, "An unexpected error occurred; it has been logged.", request_id=request_id
    )
