"""The hot path's statements, sent straight through psycopg: SQL text written once, no per-call
compilation, and as few round trips as the transaction's logic allows.

A unit of work runs on one pooled SQLAlchemy connection; `RawSession` talks to the psycopg connection
underneath it, so both kinds of statement share one transaction. Two things save round trips:

- BEGIN travels with the transaction's first statement (psycopg's pipeline mode), not on its own;
- writes whose result nobody reads before the commit (`defer`) wait, and go out together with the
  next statement or with COMMIT, again in one pipeline. An error in one of them aborts the
  transaction exactly as if it had been sent alone: it is raised by that next statement or by the
  commit, and nothing of the transaction commits.

Every statement that is not deferred, raw or through SQLAlchemy (`FlushingConnection`), first sends
what is pending, so the database always sees the statements in the order the code issued them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Params = dict[str, Any]
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE; psycopg is loaded by the engine's first connection


class RawSession:
    def __init__(self, driver_connection: psycopg.Connection) -> None:
        self._raw = driver_connection
        self._cursor = driver_connection.cursor()
        self._pending: list[tuple[str, Params, bool | None]] = []
        # now() of the transaction (its start), once a statement has returned it: every row the
        # transaction writes with now() carries this time, so a deferred write can be answered for.
        self.now: datetime | None = None

    @property
    def connection(self) -> psycopg.Connection:
        return self._raw

    def _starts_transaction(self) -> bool:
        return self._raw.pgconn.transaction_status == _IDLE

    def fetch(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        """Run one statement (after what is pending) and return its rows."""
        cursor = self._cursor
        if self._pending or self._starts_transaction():
            with self._raw.pipeline():
                self._send_pending()
                cursor.execute(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor.fetchall()

    def defer(self, sql: str, params: Params, *, prepare: bool | None = None) -> None:
        """Queue a write whose outcome only matters at commit. `prepare=False` plans it afresh every
        time instead of letting psycopg prepare it (see psycopg's `Cursor.execute`)."""
        self._pending.append((sql, params, prepare))

    def flush(self) -> None:
        if self._pending:
            with self._raw.pipeline():
                self._send_pending()

    def commit_pending(self) -> None:
        """Send what is pending and COMMIT in one round trip. The caller still commits its
        SQLAlchemy connection afterwards, which then finds nothing left to do."""
        if not self._pending:
            return
        with self._raw.pipeline():
            self._send_pending()
            self._cursor.execute("COMMIT")

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        for sql, params, prepare in pending:
            self._cursor.execute(sql, params, prepare=prepare)

    def discard(self) -> None:
        self._pending.clear()
        self.now = None


class FlushingConnection:
    """A SQLAlchemy connection that first sends the raw session's pending writes, so statements built
    with SQLAlchemy Core still reach the database in program order."""

    def __init__(self, connection: Any, session: RawSession) -> None:
        self._connection = connection
        self._session = session

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._session.flush()
        return self._connection.execute(*args, **kwargs)
