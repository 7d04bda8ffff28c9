"""The unit of work: one database transaction, the repositories bound to it, rollback by default."""

from __future__ import annotations

import contextlib
from types import TracebackType

from sqlalchemy import Connection, Engine

from wallet_core.adapters.db import get_engine, translate_error
from wallet_core.adapters.holds import HoldRepository
from wallet_core.adapters.provider_events import BalanceSnapshotRepository, ProviderEventRepository
from wallet_core.adapters.repositories import IdempotencyRepository, LedgerRepository, WalletRepository


class SqlUnitOfWork:
    wallets: WalletRepository
    ledger: LedgerRepository
    idempotency: IdempotencyRepository
    holds: HoldRepository
    provider_events: ProviderEventRepository
    balance_snapshots: BalanceSnapshotRepository

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        try:
            self._connection = (self._engine or get_engine()).connect()
            self._connection.begin()
        except Exception as exc:
            translated = translate_error(exc)
            if translated is not None:
                raise translated from exc
            raise
        self.wallets = WalletRepository(self._connection)
        self.ledger = LedgerRepository(self._connection)
        self.idempotency = IdempotencyRepository(self._connection)
        self.holds = HoldRepository(self._connection)
        self.provider_events = ProviderEventRepository(self._connection)
        self.balance_snapshots = BalanceSnapshotRepository(self._connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.rollback()  # no-op after commit; the default outcome otherwise
            connection.close()
        if exc is not None:
            translated = translate_error(exc)
            if translated is not None:
                raise translated from exc

    def _open_connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is used outside of `with uow:`")
        return self._connection

    def commit(self) -> None:
        self._open_connection().commit()
