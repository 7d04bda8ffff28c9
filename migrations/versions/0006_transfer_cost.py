"""A transfer writes four index entries fewer: the indexes that no query reads are dropped.

Revision ID: 0006
Revises: 0005

Every transfer inserts one idempotency key, one transaction and two entries, and each insert also
writes an entry into every index of its table: eleven index insertions per transfer before this
revision, seven after it. The four dropped here serve no statement of the service, the tools or the
runbooks (none filters, joins or sorts on these columns except through the other side's primary key):

- `transactions_source_idx`, `transactions_destination_idx`: the service never looks a transaction
  up by its wallets (a wallet's history reads `entries_wallet_history_idx`). They would only speed
  up the foreign-key check of a DELETE or key change of a wallet, and wallets are never deleted nor
  re-keyed (the application role may not delete them).
- `entries_transaction_idx`: nothing reads a transaction's entries by transaction (the history
  joins entries to transactions by the transactions' primary key). It would only serve a DELETE of
  a transaction, which the append-only trigger refuses.
- `idempotency_keys_created_idx`: no job deletes old keys yet. The one that eventually does can add
  what it needs (a BRIN index on created_at costs inserts next to nothing).

Measured with pgbench replaying the transfer's one call (no Python; PostgreSQL pinned to one CPU,
eight rounds interleaved with the unchanged schema): WAL per transfer 2,620 -> 2,191 bytes, server
CPU per transfer about 5% less (medians 0.248 -> 0.235 ms). docs/speed-history.md has the figures
and what was measured and not kept.

Expand only as far as the previous build is concerned: it reads none of these indexes either, so it
keeps running during a canary. Dropping an index takes its table's lock for an instant (no scan).
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (index, table, columns) as 0001 created them; the downgrade puts them back.
UNREAD_INDEXES = (
    ("transactions_source_idx", "transactions", ["source_wallet_id"]),
    ("transactions_destination_idx", "transactions", ["destination_wallet_id"]),
    ("entries_transaction_idx", "entries", ["transaction_id"]),
    ("idempotency_keys_created_idx", "idempotency_keys", ["created_at"]),
)


def upgrade() -> None:
    for name, table, _ in UNREAD_INDEXES:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in UNREAD_INDEXES:
        op.create_index(name, table, columns)
