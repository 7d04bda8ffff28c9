"""Idempotent execution of a command: the key, the effect and the stored response commit together.

Stripe-style keys in PostgreSQL. The first request inserts (principal, key, fingerprint), runs its
effect and writes its response onto the key row (sent with the COMMIT); one commit makes all of it
durable, so a crash before it leaves nothing and a retry starts afresh. A business rejection rolls its attempt back
entirely (whatever it wrote is gone) and is then recorded on the key in a short transaction of its
own, unless a concurrent twin took the key in between: then the twin's outcome is the one answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from wallet_core.adapters.repositories import IdempotencyRepository
from wallet_core.domain import errors
from wallet_core.service.unit_of_work import Transactional, retrying

T = TypeVar("T")

MAX_ATTEMPTS = 5


class IdempotentUnitOfWork(Transactional, Protocol):
    idempotency: IdempotencyRepository


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
    command = _Command(operation, render, render_rejection, wait_seconds)
    return retrying(lambda: _attempt(uow, request, command), attempts=MAX_ATTEMPTS)


def _replay(stored: tuple[str, int | None, str | None], request: IdempotentRequest) -> Outcome:
    fingerprint, status, body = stored
    if fingerprint != request.fingerprint:
        raise errors.IdempotencyKeyReusedError()
    if status is None or body is None:  # pragma: no cover - a committed key always carries its outcome
        raise errors.IdempotencyRequestInProgressError()
    return Outcome(status=status, body=body, replayed=True)


# Errors that say nothing about the request itself: the attempt is retried or answered as such,
# never stored as the key's outcome.
_NOT_AN_OUTCOME = (
    errors.ConcurrencyConflictError,
    errors.ServiceUnavailableError,
    errors.ForbiddenError,
    errors.IdempotencyRequestInProgressError,
)


@dataclass(frozen=True)
class _Command(Generic[T]):
    """What `execute` was asked to run, and how its outcomes are rendered."""

    operation: Callable[[IdempotentUnitOfWork], T]
    render: Callable[[T], tuple[int, str]]
    render_rejection: Callable[[errors.WalletServiceError], tuple[int, str]]
    wait_seconds: float


def _attempt(uow: IdempotentUnitOfWork, request: IdempotentRequest, command: _Command[T]) -> Outcome:
    # The key is claimed by the operation's first statement: the transfer's server-side function
    # claims it itself, with the response `render` makes (one round trip for key, locks, rules,
    # posting and response); for any other operation the claim runs on its own just before that
    # statement. A key that belongs to a committed
    # request surfaces as IdempotencyKeyTaken, whichever statement claimed it.
    with uow:
        uow.idempotency.claim_with_next_statement(
            request.principal,
            request.key,
            request.fingerprint,
            wait_seconds=command.wait_seconds,
            render=command.render,
        )
        try:
            result = command.operation(uow)
            status, body = command.render(result)
            uow.idempotency.complete(request.principal, request.key, status, body)
            uow.commit()
            return Outcome(status=status, body=body, replayed=False)
        except errors.IdempotencyKeyTaken as taken:
            return _replay(taken.stored, request)
        except _NOT_AN_OUTCOME:
            raise
        except errors.WalletServiceError as error:
            rejection = error  # leaving the block rolls back everything the attempt wrote

    status, body = command.render_rejection(rejection)
    with uow:
        stored = uow.idempotency.claim(
            request.principal, request.key, request.fingerprint, wait_seconds=command.wait_seconds
        )
        if stored is not None:
            return _replay(stored, request)
        uow.idempotency.complete(request.principal, request.key, status, body)
        uow.commit()
    return Outcome(status=status, body=body, replayed=False)
