"""The unit of work: one database transaction, the repositories bound to it, rollback by default."""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import cast

from sqlalchemy import Connection, Engine

from wallet_core.adapters.db import get_engine, is_disconnect, translate_error
from wallet_core.adapters.event_batches import EventBatchRepository
from wallet_core.adapters.holds import HoldRepository
from wallet_core.adapters.provider_events import (
    BalanceSnapshotRepository,
    ProviderEventRepository,
    UnresolvedSettlementRepository,
)
from wallet_core.adapters.repositories import IdempotencyRepository, LedgerRepository, WalletRepository
from wallet_core.adapters.session import FlushingConnection, RawSession
from wallet_core.domain import errors

# A pooled connection idle for longer than this is pinged before use (a Lambda container may have
# been frozen meanwhile, and a proxy or the server may have dropped it). Busy connections are not:
# a failure on them is detected on use, and answered as a retryable 503.
IDLE_PING_SECONDS = 30.0
_LAST_USED = "wallet_last_used"


class SqlUnitOfWork:
    wallets: WalletRepository
    ledger: LedgerRepository
    idempotency: IdempotencyRepository
    holds: HoldRepository
    provider_events: ProviderEventRepository
    balance_snapshots: BalanceSnapshotRepository
    unresolved_settlements: UnresolvedSettlementRepository
    event_batches: EventBatchRepository

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._session: RawSession | None = None
        self._committing = False

    def _connect(self) -> Connection:
        engine = self._engine or get_engine()
        connection = engine.connect()
        last_used = connection.info.get(_LAST_USED)
        if last_used is not None and time.monotonic() - last_used > IDLE_PING_SECONDS:
            dbapi_connection = connection.connection.dbapi_connection  # None once invalidated
            try:
                alive = dbapi_connection is not None and engine.dialect.do_ping(dbapi_connection)
            except Exception:
                alive = False
            if not alive:
                connection.invalidate()  # its next use opens a new one
        return connection

    def __enter__(self) -> SqlUnitOfWork:
        try:
            self._connection = self._connect()
            self._connection.begin()
            driver_connection = self._connection.connection.driver_connection
            if driver_connection is None:  # pragma: no cover - only an invalidated connection has none
                raise RuntimeError("the pooled connection has no driver connection")
            self._session = RawSession(driver_connection)
        except Exception as exc:
            translated = translate_error(exc)
            if translated is not None:
                raise translated from exc
            raise
        # The repositories only call execute(), which FlushingConnection forwards after the raw
        # session's pending writes: typed as the Connection it wraps, so their statements keep
        # SQLAlchemy's row types.
        connection = cast(Connection, FlushingConnection(self._connection, self._session))
        self.wallets = WalletRepository(connection, self._session)
        self.ledger = LedgerRepository(connection, self._session)
        self.idempotency = IdempotencyRepository(connection, self._session)
        self.holds = HoldRepository(connection, self._session)
        self.provider_events = ProviderEventRepository(connection, self._session)
        self.balance_snapshots = BalanceSnapshotRepository(connection, self._session)
        self.unresolved_settlements = UnresolvedSettlementRepository(connection, self._session)
        self.event_batches = EventBatchRepository(connection, self._session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        session, self._session = self._session, None
        committing, self._committing = self._committing, False
        if session is not None:
            session.discard()  # writes still waiting for the commit never happened
        if connection is not None:
            driver = session.connection if session is not None else None
            if (exc is not None and is_disconnect(exc)) or (driver is not None and driver.broken):
                connection.invalidate()  # the pool opens a new one for the next request
            else:
                connection.info[_LAST_USED] = time.monotonic()
                with contextlib.suppress(Exception):
                    connection.rollback()  # no-op after commit; the default outcome otherwise
                    if session is not None:
                        session.end()
            connection.close()
        if exc is not None:
            if is_disconnect(exc) and not committing:
                # The server ends a transaction whose connection breaks: nothing of it committed.
                raise errors.ConnectionLostError() from exc
            translated = translate_error(exc)
            if translated is not None:
                raise translated from exc

    def _open_connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is used outside of `with uow:`")
        return self._connection

    def savepoint(self) -> Savepoint:
        """A savepoint in this transaction: one record of a batch (see `Savepoint`)."""
        self._open_connection()
        if self._session is None:  # pragma: no cover - set together with the connection
            raise RuntimeError("the unit of work is used outside of `with uow:`")
        return Savepoint(self._session)

    def commit(self) -> None:
        connection = self._open_connection()
        self._committing = True  # a connection lost from here on leaves the outcome unknown
        if self._session is not None:
            self._session.commit_pending()  # the deferred writes and COMMIT, one round trip
        connection.commit()


class Savepoint:
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
