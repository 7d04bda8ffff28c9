"""The hot path's statements, sent straight through psycopg: SQL text written once, no per-call
compilation, and as few round trips as the transaction's logic allows.

A unit of work runs on one of the process's psycopg connections (db.py), always in autocommit mode:
`RawSession` sends BEGIN, COMMIT and ROLLBACK itself, which saves round trips:

- BEGIN travels with the transaction's first statement, in one pipeline, not on its own (psycopg
  sends its own BEGIN as a round trip of its own, even in a pipeline; in autocommit mode it adds
  none, and the explicit BEGIN makes everything up to COMMIT or ROLLBACK one transaction);
- writes whose result nobody reads before the commit (`defer`) wait, and go out together with the
  next statement or with COMMIT, again in one pipeline. An error in one of them aborts the
  transaction exactly as if it had been sent alone: it is raised by that next statement or by the
  commit, and nothing of the transaction commits;
- the idempotency key may be claimed by the transaction's first statement itself (the transfer's
  server-side function does): `claim_first` registers the claim, a statement that makes it takes it
  with `take_claim`, and before any other statement the claim runs on its own, as it always did;
- a statement that is a whole transaction by itself (the transfer: key, effect and response in one
  call) runs alone (`fetch_alone`): no BEGIN, no COMMIT, one round trip, and no lock held while
  the network or the client works.

Every statement that is not deferred first sends what is pending, so the database always sees the
statements in the order the code issued them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Params = dict[str, Any]
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE; psycopg is loaded by the process's first connection


@dataclass(frozen=True)
class KeyClaim:
    """An idempotency key to claim: who, which key, the request's fingerprint, and how long to wait
    for a twin request that holds the same key uncommitted (a lock_timeout value, e.g. '5000ms')."""

    principal: str
    key: str
    fingerprint: str
    wait: str
    # The request's response as the caller will render it from the operation's result, for a
    # statement that stores it with the key itself (None: the caller completes the key later).
    render: Callable[[Any], tuple[int, str]] | None = None


class RawSession:
    def __init__(self, driver_connection: psycopg.Connection) -> None:
        self._raw = driver_connection  # in autocommit mode: BEGIN and COMMIT are the session's
        self._cursor = driver_connection.cursor()
        self._pending: list[tuple[str, Params, bool | None]] = []
        # now() of the transaction (its start), once a statement has returned it: every row the
        # transaction writes with now() carries this time, so a deferred write can be answered for.
        self.now: datetime | None = None
        self._claim: tuple[KeyClaim, Callable[[KeyClaim], None]] | None = None
        # (principal, key, status, body) a statement already stored as the key's response
        self.completed: tuple[str, str, int, str] | None = None

    @property
    def connection(self) -> psycopg.Connection:
        return self._raw

    def _starts_transaction(self) -> bool:
        return self._raw.pgconn.transaction_status == _IDLE

    def claim_first(self, claim: KeyClaim, claim_alone: Callable[[KeyClaim], None]) -> None:
        """Claim the key with the next statement: that statement takes it (`take_claim`), or else
        `claim_alone` runs just before it."""
        self._claim = (claim, claim_alone)

    def take_claim(self) -> KeyClaim | None:
        """For a statement that claims the key itself: the claim still to make, if any."""
        claim, self._claim = (self._claim[0] if self._claim else None), None
        return claim

    def _claim_before(self) -> None:
        if self._claim is not None:
            claim, claim_alone = self._claim
            self._claim = None
            claim_alone(claim)

    def fetch(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        """Run one statement (after what is pending) and return its rows."""
        self._claim_before()
        cursor = self._cursor
        if self._starts_transaction():
            with self._raw.pipeline():  # psycopg adds no BEGIN of its own: ours goes in the pipeline
                cursor.execute("BEGIN")
                self._send_pending()
                cursor.execute(sql, params)
        elif self._pending:
            with self._raw.pipeline():
                self._send_pending()
                cursor.execute(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor.fetchall()

    def at_start(self) -> bool:
        """Nothing sent or waiting yet: the next statement would begin the transaction."""
        return self._starts_transaction() and not self._pending and self._claim is None

    def fetch_alone(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        """Run a statement that is a whole transaction by itself (it commits when it succeeds and
        leaves nothing when it fails), at the start of the unit of work: no BEGIN, no COMMIT.
        Such a statement stores the request's key with its effect and response, so when the
        connection breaks under it and the unit of work is run again, the retry finds the key and
        replays what committed, if anything did."""
        if not self.at_start():
            raise RuntimeError("a statement alone must be the unit of work's first")
        self._cursor.execute(sql, params)
        return self._cursor.fetchall()

    def defer(self, sql: str, params: Params, *, prepare: bool | None = None) -> None:
        """Queue a write whose outcome only matters at commit. `prepare=False` plans it afresh every
        time instead of letting psycopg prepare it (see psycopg's `Cursor.execute`)."""
        self._pending.append((sql, params, prepare))

    def fetch_one(self, sql: str, params: Params) -> tuple[Any, ...] | None:
        """The statement's first row, or None when it returns none."""
        rows = self.fetch(sql, params)
        return rows[0] if rows else None

    def commit(self) -> None:
        """Send what is pending and COMMIT, in one round trip."""
        self._claim_before()
        in_transaction = not self._starts_transaction()
        if not self._pending:
            if in_transaction:
                self._raw.commit()
            return
        with self._raw.pipeline():
            self._send_pending()
            if in_transaction:  # else a statement alone already committed: each write commits itself
                self._cursor.execute("COMMIT")

    def rollback(self) -> None:
        """End the transaction, if one is open (a no-op after COMMIT). What is pending is never sent:
        a session ends with its unit of work."""
        self._raw.rollback()

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        for sql, params, prepare in pending:
            self._cursor.execute(sql, params, prepare=prepare)
