"""Holds, provider events (permanent dedup of SQS deliveries) and balance snapshots.

Revision ID: 0002
Revises: 0001

Expand only: the previous build never reads these tables and never writes transactions.hold_id,
so it keeps running against this schema during a canary.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MAX_AMOUNT = 10**15


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("captured_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("reference", sa.String(128)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="holds_amount_range"),
        sa.CheckConstraint(
            "captured_amount >= 0 AND captured_amount <= amount", name="holds_captured_within_amount"
        ),
        sa.CheckConstraint(
            "status IN ('active', 'captured', 'voided', 'expired')", name="holds_status_valid"
        ),
        sa.CheckConstraint(
            "status <> 'captured' OR captured_amount = amount", name="holds_captured_means_fully"
        ),
    )
    # Every wallet read subtracts its due active holds: this keeps that cheap (and empty for the
    # many wallets without holds).
    op.create_index(
        "holds_wallet_active_idx",
        "holds",
        ["wallet_id", "expires_at"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "holds_active_expiry_idx", "holds", ["expires_at"], postgresql_where=sa.text("status = 'active'")
    )
    op.create_foreign_key("transactions_hold_id_fkey", "transactions", "holds", ["hold_id"], ["id"])

    op.create_table(
        "provider_events",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("transaction_id", UUID(as_uuid=True), sa.ForeignKey("transactions.id")),
        sa.Column("hold_id", UUID(as_uuid=True), sa.ForeignKey("holds.id")),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("applied_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('applied', 'rejected')", name="provider_events_status_valid"),
        sa.CheckConstraint(
            "status <> 'rejected' OR reason IS NOT NULL", name="provider_events_rejection_has_reason"
        ),
        # At most once, forever: SQS redelivers and FIFO deduplication lasts five minutes.
        sa.UniqueConstraint("provider", "event_id", name="provider_events_provider_event_key"),
    )
    op.create_index(
        "provider_events_rejected_idx",
        "provider_events",
        [sa.text("received_at DESC")],
        postgresql_where=sa.text("status = 'rejected'"),
    )

    op.create_table(
        "balance_snapshots",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reported_balance", sa.BigInteger, nullable=False),
        sa.Column("ledger_balance", sa.BigInteger, nullable=False),
        sa.Column("drift", sa.BigInteger, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("drift = reported_balance - ledger_balance", name="balance_snapshots_drift_exact"),
    )
    op.create_index(
        "balance_snapshots_wallet_created_idx",
        "balance_snapshots",
        ["wallet_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )


def downgrade() -> None:
    op.drop_table("balance_snapshots")
    op.drop_table("provider_events")
    op.drop_constraint("transactions_hold_id_fkey", "transactions", type_="foreignkey")
    op.drop_table("holds")
