"""Ledger core: wallets, system accounts, transactions, entries, idempotency keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MAX_AMOUNT = 10**15


def upgrade() -> None:
    op.create_table(
        "wallets",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("external_ref", sa.String(128)),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('active', 'frozen', 'closed')", name="wallets_status_valid"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="wallets_currency_iso"),
        sa.CheckConstraint("held >= 0", name="wallets_held_non_negative"),
        sa.CheckConstraint("balance - held >= 0", name="wallets_available_non_negative"),
        sa.CheckConstraint("version >= 1", name="wallets_version_positive"),
    )
    op.create_index(
        "wallets_owner_created_idx", "wallets", ["owner_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "wallets_external_ref_key",
        "wallets",
        ["external_ref"],
        unique=True,
        postgresql_where=sa.text("external_ref IS NOT NULL"),
    )

    op.create_table(
        "system_accounts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )

    op.create_table(
        "transactions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="posted"),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source_wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id")),
        sa.Column("destination_wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id")),
        sa.Column("reference", sa.String(128)),
        sa.Column("description", sa.String(512)),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("reverses_transaction_id", UUID(as_uuid=True), sa.ForeignKey("transactions.id")),
        sa.Column("hold_id", UUID(as_uuid=True)),
        sa.Column("created_by", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "kind IN ('credit', 'debit', 'transfer', 'reversal', 'hold_capture')",
            name="transactions_kind_valid",
        ),
        sa.CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="transactions_amount_range"),
        sa.CheckConstraint(
            "source_wallet_id IS NOT NULL OR destination_wallet_id IS NOT NULL",
            name="transactions_has_wallet",
        ),
        # A transaction can be reversed at most once, enforced by the database itself.
        sa.UniqueConstraint("reverses_transaction_id", name="transactions_reversed_once"),
    )
    op.create_index("transactions_source_idx", "transactions", ["source_wallet_id"])
    op.create_index("transactions_destination_idx", "transactions", ["destination_wallet_id"])
    op.create_index(
        "transactions_hold_idx", "transactions", ["hold_id"], postgresql_where=sa.text("hold_id IS NOT NULL")
    )

    op.create_table(
        "entries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("transaction_id", UUID(as_uuid=True), sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id")),
        sa.Column("system_account_id", UUID(as_uuid=True), sa.ForeignKey("system_accounts.id")),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger),
        sa.Column("wallet_version", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount <> 0", name="entries_amount_non_zero"),
        sa.CheckConstraint("(wallet_id IS NULL) <> (system_account_id IS NULL)", name="entries_one_account"),
        sa.CheckConstraint(
            "wallet_id IS NULL OR (balance_after IS NOT NULL AND wallet_version IS NOT NULL)",
            name="entries_wallet_snapshot",
        ),
    )
    op.create_index("entries_wallet_history_idx", "entries", ["wallet_id", sa.text("id DESC")])
    op.create_index("entries_transaction_idx", "entries", ["transaction_id"])
    op.create_index("entries_system_account_idx", "entries", ["system_account_id"])
    # Entries are the ledger's memory: they are appended, never changed.
    op.execute(
        """
        CREATE FUNCTION entries_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries "
        "FOR EACH ROW EXECUTE FUNCTION entries_are_append_only()"
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response_body", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("idempotency_keys_created_idx", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.execute("DROP TRIGGER entries_append_only ON entries")
    op.execute("DROP FUNCTION entries_are_append_only()")
    op.drop_table("entries")
    op.drop_table("transactions")
    op.drop_table("system_accounts")
    op.drop_table("wallets")
