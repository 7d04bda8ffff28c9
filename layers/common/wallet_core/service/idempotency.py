"""Idempotent execution of a command: the key, the effect and the stored response commit together.

Stripe-style keys in PostgreSQL: the first request inserts (principal, key, fingerprint); its effect
runs in a savepoint; its outcome, success or business rejection, is written onto the key row; one
commit makes all of it durable. A crash anywhere before the commit leaves nothing, so a retry starts
afresh; after it, every retry replays the stored outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from wallet_core.domain import errors

T = TypeVar("T")

MAX_ATTEMPTS = 5


class IdempotentUnitOfWork(Protocol):
    idempotency: object

    def __enter__(self) -> IdempotentUnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...
    def savepoint(self): ...


@dataclass(frozen=True)
class Outcome:
    status: int
    body: str
    replayed: bool


@dataclass(frozen=True)
class IdempotentRequest:
    principal: str
    key: str
    fingerprint: str


def execute(
    uow: IdempotentUnitOfWork,
    request: IdempotentRequest,
    operation: Callable[[IdempotentUnitOfWork], T],
    render: Callable[[T], tuple[int, str]],
    render_rejection: Callable[[errors.WalletServiceError], tuple[int, str]],
    *,
    wait_seconds: float,
) -> Outcome:
    """Run `operation` once per (principal, key). Deadlocks and serialization failures roll the
    whole attempt back and run it again, so they never reach the client."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _attempt(uow, request, operation, render, render_rejection, wait_seconds)
        except errors.ConcurrencyConflictError:
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(uow, request, operation, render, render_rejection, wait_seconds, /) -> Outcome:
    with uow:
        stored = uow.idempotency.claim(
            request.principal, request.key, request.fingerprint, wait_seconds=wait_seconds
        )
        if stored is not None:
            fingerprint, status, body = stored
            if fingerprint != request.fingerprint:
                raise errors.IdempotencyKeyReusedError()
            if status is None:  # pragma: no cover - a committed key always carries its outcome
                raise errors.IdempotencyRequestInProgressError()
            return Outcome(status=status, body=body, replayed=True)
        try:
            with uow.savepoint():
                status, body = render(operation(uow))
        except errors.ConcurrencyConflictError:
            raise
        except errors.WalletServiceError as rejection:
            if isinstance(rejection, errors.ServiceUnavailableError):
                raise
            status, body = render_rejection(rejection)
        uow.idempotency.complete(request.principal, request.key, status, body)
        uow.commit()
        return Outcome(status=status, body=body, replayed=False)
