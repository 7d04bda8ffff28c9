"""What every service asks of a unit of work besides its repositories (each service's Protocol adds
the repositories it uses): `with uow:` is one transaction, rolled back unless `commit()` ran."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, TypeVar

from wallet_core.domain import errors


class Transactional(Protocol):
    # Self: `with uow:` hands back the same unit of work, with all its repositories. __exit__ takes
    # exactly what a context manager is given, so SqlUnitOfWork's signature satisfies it.
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None: ...
    def commit(self) -> None: ...


T = TypeVar("T")


def retrying(attempt: Callable[[], T], *, attempts: int) -> T:
    """Run `attempt` (one whole transaction) until it is not refused for a deadlock, a serialization
    failure or a lost connection, at most `attempts` times: each refusal rolled everything back."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except (errors.ConcurrencyConflictError, errors.ConnectionLostError):
            if number == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
