"""The one error tree. Each error carries a stable machine `code`; exactly one module
(wallet_core.http.problems) maps codes to HTTP statuses."""

from __future__ import annotations


class WalletServiceError(Exception):
    code = "internal_error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.__doc__ or self.code)
        self.detail = detail or (self.__doc__ or self.code).strip()


class NotFoundError(WalletServiceError):
    """The resource does not exist or is not visible to the caller."""

    code = "not_found"


class ForbiddenError(WalletServiceError):
    """This operation requires the wallet:admin scope."""

    code = "forbidden"


class UnauthorizedError(WalletServiceError):
    """A valid bearer token is required."""

    code = "unauthorized"


class InvalidSubjectError(UnauthorizedError):
    """The token's subject (claim sub) must be 1 to 255 characters, with no control characters."""


class ValidationError(WalletServiceError):
    """The request is not valid."""

    code = "validation_error"

    def __init__(self, detail: str | None = None, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class InsufficientFundsError(WalletServiceError):
    """The available balance is too low for this operation."""

    code = "insufficient_funds"


class CurrencyMismatchError(WalletServiceError):
    """The amounts or wallets involved are in different currencies."""

    code = "currency_mismatch"


class WalletFrozenError(WalletServiceError):
    """The wallet is frozen: it accepts credits and incoming transfers only."""

    code = "wallet_frozen"


class WalletClosedError(WalletServiceError):
    """The wallet is closed and accepts no operation."""

    code = "wallet_closed"


class BalanceLimitExceededError(WalletServiceError):
    """This movement would take a wallet's posted balance above 9007199254740991 (2^53 - 1)."""

    code = "balance_limit_exceeded"


class SameWalletError(WalletServiceError):
    """Source and destination wallets must differ."""

    code = "same_wallet"


class ExternalRefInUseError(WalletServiceError):
    """Another wallet already carries this external_ref."""

    code = "external_ref_in_use"


class AlreadyReversedError(WalletServiceError):
    """The transaction has already been reversed."""

    code = "already_reversed"


class InvalidStateError(WalletServiceError):
    """The resource is not in a state that allows this operation."""

    code = "invalid_state"


class IdempotencyKeyMissingError(WalletServiceError):
    """Every POST requires an Idempotency-Key header."""

    code = "idempotency_key_missing"


class IdempotencyKeyReusedError(WalletServiceError):
    """This Idempotency-Key was already used with a different request."""

    code = "idempotency_key_reused"


class IdempotencyRequestInProgressError(WalletServiceError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""

    code = "idempotency_request_in_progress"


class ServiceUnavailableError(WalletServiceError):
    """The database is unavailable; retry shortly."""

    code = "service_unavailable"


class ConnectionLostError(ServiceUnavailableError):
    """The database connection broke before the transaction tried to commit: nothing of it can
    have committed, so the operation can be retried as a whole on a new connection."""


class ConcurrencyConflictError(WalletServiceError):
    """A concurrent update won; the operation can be retried as a whole."""

    code = "concurrency_conflict"


class AmountExceedsHoldError(WalletServiceError):
    """The amount is larger than what remains of the hold."""

    code = "amount_exceeds_hold"


class IdempotencyKeyTaken(Exception):  # not an error of the request: a replay
    """The request's Idempotency-Key belongs to a request that committed: its stored outcome
    (fingerprint, status, body) is the answer. Raised by the statement that claimed the key when that
    was the operation's own first statement; the idempotent executor answers it, nobody else sees it."""

    def __init__(self, stored: tuple[str, int | None, str | None]) -> None:
        super().__init__("the Idempotency-Key belongs to a committed request")
        self.stored = stored
