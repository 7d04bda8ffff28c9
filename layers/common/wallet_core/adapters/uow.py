"""The unit of work: one database transaction, the repositories bound to it, rollback by default."""

from __future__ import annotations

import time
from types import TracebackType

from wallet_core.adapters.db import (
    ConnectionPool,
    PooledConnection,
    get_pool,
    is_disconnect,
    note_hidden_parameters,
    translate_error,
)
from wallet_core.adapters.event_batches import EventBatchRepository
from wallet_core.adapters.holds import HoldRepository
from wallet_core.adapters.provider_events import BalanceSnapshotRepository, UnresolvedSettlementRepository
from wallet_core.adapters.repositories import IdempotencyRepository, LedgerRepository, WalletRepository
from wallet_core.adapters.session import RawSession
from wallet_core.domain import errors

# A connection idle for longer than this is pinged before use (a Lambda container may have been
# frozen meanwhile, and a proxy or the server may have dropped it). Busy connections are not: a
# failure on them is detected on use, and answered as a retryable 503.
IDLE_PING_SECONDS = 30.0


def _alive(pooled: PooledConnection) -> bool:
    try:
        pooled.connection.execute("")  # an empty query: one round trip, no transaction
    except Exception:
        return False
    return True


class SqlUnitOfWork:
    wallets: WalletRepository
    ledger: LedgerRepository
    idempotency: IdempotencyRepository
    holds: HoldRepository
    balance_snapshots: BalanceSnapshotRepository
    unresolved_settlements: UnresolvedSettlementRepository
    event_batches: EventBatchRepository

    def __init__(self, pool: ConnectionPool | None = None) -> None:
        """`pool`: where the connection comes from (default: the process's, `db.get_pool()`)."""
        self._pool = pool
        self._source: ConnectionPool | None = None  # the pool of the connection checked out now
        self._pooled: PooledConnection | None = None
        self._session: RawSession | None = None
        self._committing = False

    def _checkout(self) -> tuple[ConnectionPool, PooledConnection]:
        pool = self._pool or get_pool()
        pooled = pool.checkout()
        idle = pooled.last_used is not None and time.monotonic() - pooled.last_used > IDLE_PING_SECONDS
        if pooled.connection.broken or (idle and not _alive(pooled)):
            try:
                pooled = pool.reopen(pooled)
            except BaseException:
                pool.discard(pooled)
                raise
        return pool, pooled

    def __enter__(self) -> SqlUnitOfWork:
        try:
            pool, pooled = self._checkout()
        except Exception as exc:
            translated = translate_error(exc)
            if translated is not None:
                raise translated from exc
            raise
        self._source, self._pooled = pool, pooled
        self._session = session = RawSession(pooled.connection)
        self.wallets = WalletRepository(session)
        self.ledger = LedgerRepository(session)
        self.idempotency = IdempotencyRepository(session)
        self.holds = HoldRepository(session)
        self.balance_snapshots = BalanceSnapshotRepository(session)
        self.unresolved_settlements = UnresolvedSettlementRepository(session)
        self.event_batches = EventBatchRepository(session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pooled, self._pooled = self._pooled, None
        source, self._source = self._source, None
        session, self._session = self._session, None
        committing, self._committing = self._committing, False
        if pooled is not None and source is not None:
            broken = pooled.connection.broken or (exc is not None and is_disconnect(exc))
            if not broken and session is not None:
                try:
                    session.rollback()  # no-op after commit; the default outcome otherwise
                except Exception:
                    broken = True
            if broken:
                source.discard(pooled)  # the next unit of work opens a new one
            else:
                source.checkin(pooled)
        if exc is not None:
            if is_disconnect(exc) and not committing:
                # The server ends a transaction whose connection breaks: nothing of it committed.
                raise errors.ConnectionLostError() from exc
            translated = translate_error(exc)
            if translated is not None:
                raise translated from exc
            note_hidden_parameters(exc)

    def commit(self) -> None:
        session = self._session
        if session is None:
            raise RuntimeError("the unit of work is used outside of `with uow:`")
        self._committing = True  # a connection lost from here on leaves the outcome unknown
        session.commit()  # the deferred writes and COMMIT, one round trip
