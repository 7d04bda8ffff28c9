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
from wallet_core.adapters.provider_events import (
    BalanceSnapshotRepository,
    ProviderEventRepository,
    UnresolvedSettlementRepository,
)
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


class _ExitWith:
    """A `with` block of this module that only looks at the exception it ends with (`_exit`)."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._exit(exc)

    def _exit(self, exc: BaseException | None) -> None:
        raise NotImplementedError  # pragma: no cover - every subclass has its own


class SqlUnitOfWork(_ExitWith):
    wallets: WalletRepository
    ledger: LedgerRepository
    idempotency: IdempotencyRepository
    holds: HoldRepository
    provider_events: ProviderEventRepository
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
        self.provider_events = ProviderEventRepository(session)
        self.balance_snapshots = BalanceSnapshotRepository(session)
        self.unresolved_settlements = UnresolvedSettlementRepository(session)
        self.event_batches = EventBatchRepository(session)
        return self

    def _exit(self, exc: BaseException | None) -> None:
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

    def _open_session(self) -> RawSession:
        if self._session is None:
            raise RuntimeError("the unit of work is used outside of `with uow:`")
        return self._session

    def savepoint(self) -> Savepoint:
        """A savepoint in this transaction: one record of a batch (see `Savepoint`)."""
        return Savepoint(self._open_session())

    def commit(self) -> None:
        session = self._open_session()
        self._committing = True  # a connection lost from here on leaves the outcome unknown
        session.commit()  # the deferred writes and COMMIT, one round trip


class Savepoint(_ExitWith):
    """One record's share of a batch transaction: `with uow.savepoint():` undoes what the block wrote
    when it raises, and only that, so the records before it still commit with the batch; `rollback()`
    undoes it and carries on in the same savepoint (to record a rejection instead).

    SAVEPOINT travels with the block's first statement and RELEASE with its deferred writes (one round
    trip at the end of the block, so an error in a deferred write is raised here, for this record).
    An error that leaves the transaction unusable (the connection broke, or the savepoint could not be
    rolled back to) is raised as ConnectionLostError: nothing of the transaction commits, and the
    caller must not acknowledge anything that was done in it."""

    _NAME = "wallet_record"

    def __init__(self, session: RawSession) -> None:
        self._session = session

    def __enter__(self) -> Savepoint:
        self._session.defer(f"SAVEPOINT {self._NAME}", {}, prepare=False)
        return self

    def _exit(self, exc: BaseException | None) -> None:
        if exc is None:
            self._session.defer(f"RELEASE SAVEPOINT {self._NAME}", {}, prepare=False)
            try:
                self._session.flush()
            except Exception as flush_error:
                self._undo(flush_error)
                raise self._translated(flush_error) from flush_error
            return
        if not isinstance(exc, Exception):
            return  # KeyboardInterrupt and the like: the whole transaction is abandoned anyway
        self._undo(exc)
        translated = self._translated(exc)
        if translated is not exc:
            raise translated from exc

    def rollback(self) -> None:
        """Undo what was written since the savepoint; the savepoint stays for what follows."""
        self._session.discard()
        try:
            self._session.connection.execute(f"ROLLBACK TO SAVEPOINT {self._NAME}")
        except Exception as exc:
            raise errors.ConnectionLostError() from exc

    def _undo(self, cause: BaseException) -> None:
        self._session.discard()  # writes still waiting belong to this record
        if is_disconnect(cause):
            raise errors.ConnectionLostError() from cause
        driver = self._session.connection
        try:
            with driver.pipeline():
                driver.execute(f"ROLLBACK TO SAVEPOINT {self._NAME}")
                driver.execute(f"RELEASE SAVEPOINT {self._NAME}")
        except Exception as exc:
            # The transaction cannot go on: none of it will commit.
            raise errors.ConnectionLostError() from exc

    @staticmethod
    def _translated(exc: BaseException) -> BaseException:
        return translate_error(exc) or exc
