"""Repositories: every SQL statement of the service lives in this package."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wallet_core.adapters.base import NewestFirst, Repository, from_row
from wallet_core.adapters.db import LOCK_NOT_AVAILABLE, UNIQUE_VIOLATION, sqlstate
from wallet_core.adapters.holds import DUE_HOLD_SQL, release_due_holds
from wallet_core.adapters.session import KeyClaim
from wallet_core.domain import errors
from wallet_core.domain.models import (
    HistoryItem,
    NewTransaction,
    Posting,
    Transaction,
    TransactionKind,
    Wallet,
    WalletStatus,
)

# The lock of the movement path. Due holds are looked for only when the wallet holds anything: an
# active hold's remaining amount is part of `held`, so held = 0 means there is nothing to release.
# now() comes along: it is the transaction's time, which every row the transaction writes carries.
# (The f-strings here put in DUE_HOLD_SQL, a constant: no input ever reaches the text.)
_LOCK_SQL = f"""
    SELECT w.id, w.owner_id, w.currency, w.status, w.balance, w.held, w.version, w.external_ref,
           w.metadata, w.created_at, w.updated_at,
           CASE WHEN w.held > 0 THEN EXISTS (
               SELECT 1 FROM holds WHERE holds.wallet_id = w.id AND {DUE_HOLD_SQL}
           ) ELSE false END AS has_due_holds,
           now()
    FROM wallets AS w
    WHERE w.id = ANY(%(ids)s)
    ORDER BY w.id
    FOR NO KEY UPDATE OF w
"""  # noqa: S608  # nosec B608


# A wallet as of now, the one definition every read uses: `held` without the holds that expired
# since the row was last written (expiry is evaluated on read; no job has to run first).
_CURRENT_WALLET_SQL = f"""
    SELECT w.id, w.owner_id, w.currency, w.status, w.balance,
           w.held - CASE WHEN w.held > 0 THEN (
               SELECT CAST(coalesce(sum(holds.amount - holds.captured_amount), 0) AS bigint) FROM holds
               WHERE holds.wallet_id = w.id AND {DUE_HOLD_SQL}
           ) ELSE 0 END,
           w.version, w.external_ref, w.metadata, w.created_at, w.updated_at
    FROM wallets AS w
"""  # noqa: S608  # nosec B608
_WALLET_BY_ID_SQL = _CURRENT_WALLET_SQL + "WHERE w.id = %(value)s"
# An owner's wallets, newest first.
_WALLETS_OF_OWNER = NewestFirst.of(_CURRENT_WALLET_SQL + "WHERE w.owner_id = %(owner)s", "w")


_WALLET_COLUMNS = (
    "id, owner_id, currency, status, balance, held, version, external_ref, metadata, created_at, updated_at"
)
_INSERT_WALLET_SQL = f"""
    INSERT INTO wallets ({_WALLET_COLUMNS})
    VALUES (%(id)s, %(owner_id)s, %(currency)s, 'active', 0, 0, 1, %(external_ref)s, CAST(%(metadata)s AS jsonb),
            now(), now())
    RETURNING {_WALLET_COLUMNS}
"""  # noqa: S608  # nosec B608
_SAVE_WALLET_SQL = """
    UPDATE wallets
    SET status = %(status)s, balance = %(balance)s, held = %(held)s, version = %(version)s, updated_at = now()
    WHERE id = %(id)s
    RETURNING updated_at
"""


def _wallet(row: Sequence[Any]) -> Wallet:
    # The raw queries above select the wallet's columns first, in the order of Wallet's fields.
    return from_row(Wallet, row, status=WalletStatus)


class WalletRepository(Repository):
    def add(
        self,
        *,
        owner_id: str,
        currency: str,
        external_ref: str | None,
        metadata: dict[str, str],
    ) -> Wallet:
        try:
            row = self._session.fetch(
                _INSERT_WALLET_SQL,
                {
                    "id": uuid.uuid4(),
                    "owner_id": owner_id,
                    "currency": currency,
                    "external_ref": external_ref,
                    "metadata": json.dumps(metadata),
                },
            )[0]
        except Exception as exc:
            constraint = getattr(getattr(exc, "diag", None), "constraint_name", None)
            if sqlstate(exc) == UNIQUE_VIOLATION and constraint == "wallets_external_ref_key":
                raise errors.ExternalRefInUseError(
                    f"A wallet with external_ref {external_ref!r} exists."
                ) from exc
            raise
        return _wallet(row)

    def get(self, wallet_id: uuid.UUID) -> Wallet | None:
        rows = self._session.fetch(_WALLET_BY_ID_SQL, {"value": wallet_id})
        return _wallet(rows[0]) if rows else None

    def get_for_update(self, wallet_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Wallet]:
        """Lock the wallets in ascending id order, so two requests touching the same pair can never
        wait on each other crosswise. FOR NO KEY UPDATE still lets entries reference the rows.

        Holds of these wallets that are past expires_at are released here, under the lock, so every
        write starts from an exact `held` (one more statement, only when a wallet has due holds)."""
        rows = self._session.fetch(_LOCK_SQL, {"ids": sorted(set(wallet_ids))})
        locked = {}
        due = []
        for row in rows:
            locked[row[0]] = _wallet(row)
            if row[11]:
                due.append(row[0])
            self._session.now = row[12]
        for wallet_id, released in (release_due_holds(self._session, due) if due else {}).items():
            wallet = locked[wallet_id]
            wallet.held, wallet.version = released.held, released.version
            wallet.updated_at = released.updated_at
        return locked

    def list_for_owner(
        self, owner_id: str, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[Wallet]:
        rows = _WALLETS_OF_OWNER.fetch(self._session, {"owner": owner_id}, limit=limit, after=after)
        return [_wallet(row) for row in rows]

    def save(self, wallet: Wallet) -> Wallet:
        """Write a changed wallet back; the version was already bumped by the caller."""
        (wallet.updated_at,) = self._session.fetch(
            _SAVE_WALLET_SQL,
            {
                "id": wallet.id,
                "status": wallet.status.value,
                "balance": wallet.balance,
                "held": wallet.held,
                "version": wallet.version,
            },
        )[0]
        return wallet


# A transaction's columns in the order of Transaction's fields, with the reversal that reverses
# it, if any (`t` is the transaction, `reversal` its reversal).
_TRANSACTION_COLUMNS = """
    t.id, t.kind, t.amount, t.currency, t.source_wallet_id, t.destination_wallet_id, t.reference,
    t.description, t.metadata, t.created_at, t.status, t.reverses_transaction_id,
    reversal.id AS reversed_by_transaction_id, t.hold_id
"""
_WITH_REVERSAL = " LEFT JOIN transactions AS reversal ON reversal.reverses_transaction_id = t.id"
_TRANSACTION_SQL = f"SELECT {_TRANSACTION_COLUMNS} FROM transactions AS t{_WITH_REVERSAL} WHERE t.id = %(id)s"  # noqa: S608  # nosec B608
_LOCK_TRANSACTION_SQL = "SELECT id FROM transactions WHERE id = %(id)s FOR UPDATE"
# A wallet's entries, newest first; the second form continues below the page's last entry id.
_ENTRIES_SQL = f"""
    SELECT e.id, e.amount, e.balance_after, {_TRANSACTION_COLUMNS}
    FROM entries AS e JOIN transactions AS t ON t.id = e.transaction_id{_WITH_REVERSAL}
    WHERE e.wallet_id = %(wallet_id)s
"""  # noqa: S608  # nosec B608
_NEWEST_ENTRIES_FIRST = " ORDER BY e.id DESC LIMIT %(limit)s"
_ENTRIES_FIRST_SQL = _ENTRIES_SQL + _NEWEST_ENTRIES_FIRST
_ENTRIES_BEFORE_SQL = _ENTRIES_SQL + " AND e.id < %(before)s" + _NEWEST_ENTRIES_FIRST


def _transaction(row: Any) -> Transaction:
    return from_row(Transaction, row, kind=TransactionKind)


def _posted(new: NewTransaction, transaction_id: uuid.UUID, created_at: datetime) -> Transaction:
    """The transaction `new` becomes once written with this id at this time."""
    return Transaction(
        id=transaction_id,
        kind=new.kind,
        amount=new.amount,
        currency=new.currency,
        source_wallet_id=new.source_wallet_id,
        destination_wallet_id=new.destination_wallet_id,
        reference=new.reference,
        description=new.description,
        metadata=new.metadata,
        created_at=created_at,
        reverses_transaction_id=new.reverses_transaction_id,
        hold_id=new.hold_id,
    )


def system_account_id(currency: str) -> uuid.UUID:
    """System accounts have well-known ids, so posting against one needs no lookup."""
    return uuid.uuid5(SYSTEM_ACCOUNT_NAMESPACE, currency)


SYSTEM_ACCOUNT_NAMESPACE = uuid.UUID("5b0c2a4e-4f4e-4a59-9c61-77616c6c6574")

# Wallet balances, the transaction and its entries in ONE statement (one round trip while the
# wallets are locked, none of its own once deferred to the commit). Entry FKs are checked at the end
# of the statement, when the transaction row from the sibling CTE exists. The currency's system
# account (when the transaction has a system leg) is created by the statement itself if it does not
# exist yet: nothing is remembered outside the database, so a transaction that created
# it and was then rolled back leaves no later posting without it (an existing row costs one index
# probe, and no lock). A locked wallet that was not
# updated (impossible under FOR NO KEY UPDATE) fails the statement, by a division by zero, and so
# the whole transaction, even when the statement travels with the COMMIT. The wallets are also
# matched with `= ANY(ids)`, so every plan (a prepared statement's generic one included, which
# guesses 10 rows for unnest) reaches them through the primary key instead of hashing a scan of the
# whole wallets table.
_POST_SQL = """
    WITH account AS (
        INSERT INTO system_accounts (id, currency, created_at)
        SELECT CAST(%(system)s AS uuid), %(currency)s, now() WHERE CAST(%(system)s AS uuid) IS NOT NULL
        ON CONFLICT DO NOTHING
    ), moved AS (
        UPDATE wallets AS w
        SET balance = v.balance, held = v.held, version = v.version, updated_at = now()
        FROM unnest(CAST(%(wallet_ids)s AS uuid[]), CAST(%(balances)s AS bigint[]),
                    CAST(%(helds)s AS bigint[]), CAST(%(versions)s AS bigint[])) AS v(id, balance, held, version)
        WHERE w.id = v.id AND w.id = ANY(CAST(%(wallet_ids)s AS uuid[]))
        RETURNING w.id
    ), posted AS (
        INSERT INTO transactions (id, kind, status, amount, currency, source_wallet_id, destination_wallet_id,
                                  reference, description, metadata, reverses_transaction_id, hold_id,
                                  created_by, created_at)
        VALUES (%(id)s, %(kind)s, 'posted', %(amount)s, %(currency)s, %(source_wallet_id)s,
                %(destination_wallet_id)s, %(reference)s, %(description)s, CAST(%(metadata)s AS jsonb),
                %(reverses_transaction_id)s, %(hold_id)s, %(created_by)s, now())
        RETURNING created_at
    ), legs AS (
        INSERT INTO entries (transaction_id, wallet_id, system_account_id, currency, amount, balance_after,
                             wallet_version, created_at)
        SELECT %(id)s, e.wallet_id, e.system_account_id, %(currency)s, e.amount, e.balance_after,
               e.wallet_version, posted.created_at
        FROM posted, unnest(CAST(%(entry_wallets)s AS uuid[]), CAST(%(entry_systems)s AS uuid[]),
                            CAST(%(entry_amounts)s AS bigint[]), CAST(%(entry_balances)s AS bigint[]),
                            CAST(%(entry_versions)s AS bigint[]))
                     AS e(wallet_id, system_account_id, amount, balance_after, wallet_version)
        RETURNING 1
    )
    SELECT posted.created_at, 1 / ((SELECT count(*) FROM moved) = %(moved)s)::int FROM posted
"""


# The whole transfer in one call: wallet_transfer (migrations/versions/0004_transfer_function.py),
# where its rules are. The key is claimed by it when the request still has one to claim.
_TRANSFER_SQL = """
    SELECT outcome, posted_at, source_currency, source_available,
           stored_fingerprint, stored_status, stored_body
    FROM wallet_transfer(%(principal)s, %(key)s, %(fingerprint)s, %(key_wait)s, %(status)s,
                         %(body_head)s, %(body_tail)s, %(owner)s, %(id)s, %(source)s, %(destination)s,
                         %(amount)s, %(currency)s, %(reference)s, %(description)s,
                         CAST(%(metadata)s AS jsonb), %(created_by)s)
"""
# The response is rendered before the call with this time in place of the transaction's, then cut
# around it; wallet_transfer puts the real time there, written as the contract writes timestamps.
# (Should the rendering ever differ, or a caller's text contain the mark, the body is not split:
# the key is then completed after the call, in the same transaction, as for any other command.)
_TIME_MARK = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_TIME_MARK_TEXT = "2001-02-03T04:05:06.789012Z"


@dataclass(frozen=True)
class TransferOutcome:
    """What wallet_transfer answered: `outcome` is `posted` or the rule that refused the transfer
    (source_currency and source_available are set for the rules whose message names them)."""

    outcome: str
    transaction: Transaction
    source_currency: str | None
    source_available: int | None


class LedgerRepository(Repository):
    """Transactions and their entries: written together with the wallets' new balances, never updated."""

    def post(self, new: NewTransaction, postings: Sequence[Posting]) -> Transaction:
        """Write the transaction, one entry per posting, and the posted wallets' balance, held and
        version (already applied by the caller to the wallets it locked).

        Once the transaction's time is known (the wallet lock returns it) the write is deferred: it
        goes out with the next statement or the commit, and fails the commit if it fails."""
        if sum(posting.amount for posting in postings) != 0:
            raise ValueError("postings of a transaction must sum to zero")
        moved = [posting.wallet for posting in postings if posting.wallet is not None]
        system = system_account_id(new.currency) if len(moved) < len(postings) else None
        transaction_id = uuid.uuid4()
        params = {
            "wallet_ids": [wallet.id for wallet in moved],
            "balances": [wallet.balance for wallet in moved],
            "helds": [wallet.held for wallet in moved],
            "versions": [wallet.version for wallet in moved],
            "system": system,
            "id": transaction_id,
            "kind": new.kind.value,
            "amount": new.amount,
            "currency": new.currency,
            "source_wallet_id": new.source_wallet_id,
            "destination_wallet_id": new.destination_wallet_id,
            "reference": new.reference,
            "description": new.description,
            "metadata": json.dumps(new.metadata),
            "reverses_transaction_id": new.reverses_transaction_id,
            "hold_id": new.hold_id,
            "created_by": new.created_by,
            "entry_wallets": [p.wallet.id if p.wallet else None for p in postings],
            "entry_systems": [None if p.wallet else system for p in postings],
            "entry_amounts": [p.amount for p in postings],
            "entry_balances": [p.wallet.balance if p.wallet else None for p in postings],
            "entry_versions": [p.wallet.version if p.wallet else None for p in postings],
            "moved": len(moved),
        }
        created_at = self._session.now
        if created_at is None:
            created_at = self._session.fetch(_POST_SQL, params)[0][0]
        else:
            self._session.defer(_POST_SQL, params)
        for wallet in moved:
            wallet.updated_at = created_at
        return _posted(new, transaction_id, created_at)

    def transfer(self, new: NewTransaction, *, owner: str | None) -> TransferOutcome:
        """Run wallet_transfer once: claim the key (when this transaction still has to), lock, check,
        post. `owner` = the caller who must own the source (None for an admin). A key that belongs
        to a committed request raises IdempotencyKeyTaken; one a twin holds past the wait raises
        IdempotencyRequestInProgressError (a wallet lock waited out is a concurrency conflict).

        When the call can also store the response (the unit of work starts with it and the caller
        said how it renders), it is the whole transaction: one round trip, no BEGIN, no COMMIT."""
        transaction = _posted(new, uuid.uuid4(), _TIME_MARK)
        claim = self._session.take_claim()
        # (status, body before the time, body after it) when the call is the whole transaction
        response: tuple[int, str, str] | None = None
        if claim is not None and claim.render is not None and self._session.at_start():
            status, body = claim.render(transaction)
            body_parts = body.split(_TIME_MARK_TEXT)
            if len(body_parts) == 2:
                response = (status, body_parts[0], body_parts[1])
        params = {
            "principal": claim.principal if claim else None,
            "key": claim.key if claim else None,
            "fingerprint": claim.fingerprint if claim else None,
            "key_wait": claim.wait if claim else None,
            "status": response[0] if response else None,
            "body_head": response[1] if response else None,
            "body_tail": response[2] if response else None,
            "owner": owner,
            "id": transaction.id,
            "source": new.source_wallet_id,
            "destination": new.destination_wallet_id,
            "amount": new.amount,
            "currency": new.currency,
            "reference": new.reference,
            "description": new.description,
            "metadata": json.dumps(new.metadata),
            "created_by": new.created_by,
        }
        try:
            if response is not None:
                row = self._session.fetch_alone(_TRANSFER_SQL, params)[0]
            else:
                row = self._session.fetch(_TRANSFER_SQL, params)[0]
        except Exception as exc:
            if claim is not None and _waited_for_key(exc):
                raise errors.IdempotencyRequestInProgressError() from exc
            raise
        outcome, posted_at, source_currency, source_available, *stored = row
        if outcome == "replay":
            raise errors.IdempotencyKeyTaken((stored[0], stored[1], stored[2]))
        transaction.created_at = self._session.now = posted_at
        if response is not None and claim is not None and outcome == "posted":
            self._session.completed = (claim.principal, claim.key, response[0], stored[2])
        return TransferOutcome(outcome, transaction, source_currency, source_available)

    def get(self, transaction_id: uuid.UUID) -> Transaction | None:
        row = self._session.fetch_one(_TRANSACTION_SQL, {"id": transaction_id})
        return _transaction(row) if row else None

    def get_for_update(self, transaction_id: uuid.UUID) -> Transaction | None:
        """Lock the transaction row so two reversals of it queue up instead of racing."""
        found = self._session.fetch_one(_LOCK_TRANSACTION_SQL, {"id": transaction_id})
        return self.get(transaction_id) if found else None

    def list_entries(
        self, wallet_id: uuid.UUID, *, limit: int, before_entry_id: int | None
    ) -> list[HistoryItem]:
        if before_entry_id is None:
            rows = self._session.fetch(_ENTRIES_FIRST_SQL, {"wallet_id": wallet_id, "limit": limit})
        else:
            rows = self._session.fetch(
                _ENTRIES_BEFORE_SQL, {"wallet_id": wallet_id, "before": before_entry_id, "limit": limit}
            )
        return [
            HistoryItem(
                transaction=_transaction(row[3:]),
                entry_amount=row[1],
                balance_after=row[2],
                entry_id=row[0],
            )
            for row in rows
        ]


# The row's values come from a subquery that sets lock_timeout first, so the timeout is in force
# when the insert waits on a twin's uncommitted key.
_CLAIM_SQL = """
    INSERT INTO idempotency_keys (principal, key, fingerprint, created_at)
    SELECT %(principal)s, %(key)s, %(fingerprint)s, now()
    FROM (SELECT set_config('lock_timeout', %(timeout)s, true)) AS bounded_wait
    ON CONFLICT (principal, key) DO NOTHING
    RETURNING created_at
"""
_STORED_SQL = """
    SELECT fingerprint, status_code, response_body FROM idempotency_keys
    WHERE principal = %(principal)s AND key = %(key)s
"""
# Planned afresh every time (never a cached generic plan): a generic plan made while the table was
# still small (a new deployment, a fresh bench database) scans the whole table for the rest of the
# connection's life instead of using the primary key.
_COMPLETE_SQL = """
    UPDATE idempotency_keys SET status_code = %(status_code)s, response_body = %(body)s, completed_at = now()
    WHERE principal = %(principal)s AND key = %(key)s
"""


def _waited_for_key(exc: BaseException) -> bool:
    """A lock timeout inside wallet_transfer that hit while waiting for the idempotency key (its
    context names the statement), not for a wallet."""
    if sqlstate(exc) != LOCK_NOT_AVAILABLE:
        return False
    diag = getattr(getattr(exc, "orig", exc), "diag", None)
    return "idempotency_keys" in (getattr(diag, "context", None) or "")


class IdempotencyRepository(Repository):
    def claim(
        self, principal: str, key: str, fingerprint: str, *, wait_seconds: float
    ) -> tuple[str, int | None, str | None] | None:
        """Insert the key, or return (fingerprint, status, body) of the request that owns it.

        While another transaction holds the same key uncommitted, the insert waits on it: when that
        request commits we replay its stored outcome, when it rolls back we take the key over. The
        wait is bounded by lock_timeout, set in the same statement (no extra round trip) and left in
        force for the rest of this transaction; a timeout here means the twin is still running."""
        return self._claim(KeyClaim(principal, key, fingerprint, f"{int(wait_seconds * 1000)}ms"))

    def _claim(self, claim: KeyClaim) -> tuple[str, int | None, str | None] | None:
        try:
            inserted = self._session.fetch(
                _CLAIM_SQL,
                {
                    "principal": claim.principal,
                    "key": claim.key,
                    "fingerprint": claim.fingerprint,
                    "timeout": claim.wait,
                },
            )
        except Exception as exc:
            if sqlstate(exc) == LOCK_NOT_AVAILABLE:
                raise errors.IdempotencyRequestInProgressError() from exc
            raise
        if inserted:
            self._session.now = inserted[0][0]  # created_at = now(), the transaction's time
            return None
        fingerprint, status_code, body = self._session.fetch(
            _STORED_SQL, {"principal": claim.principal, "key": claim.key}
        )[0]
        return fingerprint, status_code, body

    def claim_with_next_statement(
        self,
        principal: str,
        key: str,
        fingerprint: str,
        *,
        wait_seconds: float,
        render: Callable[[Any], tuple[int, str]] | None = None,
    ) -> None:
        """Claim the key together with the transaction's next statement instead of in a round trip
        of its own, when that statement can (wallet_transfer, which also stores the response as
        `render` makes it); otherwise `claim` runs right before it. A key that belongs to a
        committed request raises IdempotencyKeyTaken there."""
        wait = f"{int(wait_seconds * 1000)}ms"
        self._session.claim_first(KeyClaim(principal, key, fingerprint, wait, render), self._claim_alone)

    def _claim_alone(self, claim: KeyClaim) -> None:
        stored = self._claim(claim)
        if stored is not None:
            raise errors.IdempotencyKeyTaken(stored)

    def complete(self, principal: str, key: str, status_code: int, body: str) -> None:
        """Store the outcome on the key; it is sent with the commit (nothing to send when the
        statement that made the effect already stored exactly this outcome)."""
        if self._session.completed == (principal, key, status_code, body):
            return
        self._session.defer(
            _COMPLETE_SQL,
            {"principal": principal, "key": key, "status_code": status_code, "body": body},
            prepare=False,
        )
