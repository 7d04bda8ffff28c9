"""Money safety: least privilege in the database, settlements held for an operator, payout holds,
the balance ceiling, and an append-only ledger that TRUNCATE cannot empty either.

Revision ID: 0003
Revises: 0002

Roles. The role that runs the migrations (the master user in AWS) owns every object of the schema.
The application connects as a login role that is a member of `wallet_app` (NOLOGIN), which gets only
the DML the service issues, table by table: no UPDATE, DELETE or TRUNCATE on `entries` or
`transactions`, no DDL, no ownership (so it cannot disable the triggers below). Roles are
cluster-wide: they are created only when missing, so many databases on one server (tests) and a
rerun both work. Every later migration that creates a table grants `wallet_app` what it needs there.

Expand only: the previous build never reads `holds.purpose` or `unresolved_settlements` and never
writes the new provider event status, so it keeps running against this schema during a canary.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APP_ROLE = "wallet_app"
MAX_AMOUNT = 10**15
# 2^53 - 1: every balance stays exact in JavaScript clients. The service refuses movements that
# would cross it (422 balance_limit_exceeded); this constraint is the backstop.
MAX_BALANCE = 9_007_199_254_740_991

# What the service does to each table, and nothing more. Column lists are the columns it updates.
APP_GRANTS = {
    "wallets": ("SELECT, INSERT", "status, balance, held, version, updated_at"),
    "system_accounts": ("SELECT, INSERT", None),
    # UPDATE(status) only because a reversal locks the original row (SELECT ... FOR UPDATE needs an
    # UPDATE privilege); the append-only trigger refuses every real UPDATE.
    "transactions": ("SELECT, INSERT", "status"),
    "entries": ("SELECT, INSERT", None),
    "idempotency_keys": ("SELECT, INSERT", "status_code, response_body, completed_at"),
    "holds": ("SELECT, INSERT", "captured_amount, status, updated_at"),
    "provider_events": ("SELECT, INSERT", "status, reason, transaction_id, hold_id, applied_at"),
    "balance_snapshots": ("SELECT, INSERT", None),
    "unresolved_settlements": ("SELECT, INSERT", None),
    "alembic_version": ("SELECT", None),
}


def _create_app_role() -> None:
    # Two migrations racing on one server (two test databases) may both find the role missing: the
    # loser's CREATE ROLE fails with duplicate_object or unique_violation and is ignored.
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wallet_app') THEN
                BEGIN
                    CREATE ROLE wallet_app NOLOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;
                END;
            END IF;
        END $$
        """
    )


def upgrade() -> None:
    # Holds placed for payouts may not lapse before the provider's settlement window (the service
    # checks expires_at against PAYOUT_SETTLEMENT_WINDOW_HOURS). Existing holds count as payouts.
    op.add_column("holds", sa.Column("purpose", sa.String(16), nullable=False, server_default="payout"))
    op.create_check_constraint("holds_purpose_valid", "holds", "purpose IN ('payout', 'reservation')")

    # A settlement that could not be posted is recorded, never rejected: status 'unresolved'.
    op.drop_constraint("provider_events_status_valid", "provider_events", type_="check")
    op.create_check_constraint(
        "provider_events_status_valid", "provider_events", "status IN ('applied', 'rejected', 'unresolved')"
    )
    op.drop_constraint("provider_events_rejection_has_reason", "provider_events", type_="check")
    op.create_check_constraint(
        "provider_events_rejection_has_reason", "provider_events", "status = 'applied' OR reason IS NOT NULL"
    )

    op.create_table(
        "unresolved_settlements",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("hold_id", UUID(as_uuid=True), sa.ForeignKey("holds.id"), nullable=False),
        sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        # Set by an operator (as the owner role, see docs/runbooks/dlq-redrive.md) once handled.
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution", sa.Text),
        sa.CheckConstraint(
            f"amount > 0 AND amount <= {MAX_AMOUNT}", name="unresolved_settlements_amount_range"
        ),
        sa.CheckConstraint(
            "(resolved_at IS NULL) = (resolution IS NULL)", name="unresolved_settlements_resolution_explained"
        ),
        sa.ForeignKeyConstraint(
            ["provider", "event_id"],
            ["provider_events.provider", "provider_events.event_id"],
            name="unresolved_settlements_event_fkey",
        ),
        sa.UniqueConstraint("provider", "event_id", name="unresolved_settlements_event_key"),
    )
    op.create_index(
        "unresolved_settlements_created_idx",
        "unresolved_settlements",
        [sa.text("created_at DESC"), sa.text("id DESC")],
    )

    op.create_check_constraint("wallets_balance_ceiling", "wallets", f"balance <= {MAX_BALANCE}")

    # The ledger is append-only for everyone, TRUNCATE included (a statement-level trigger: row
    # triggers never see a TRUNCATE). Transactions are append-only too: nothing ever updates them.
    op.execute(
        """
        CREATE FUNCTION ledger_rows_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger % are append-only (% refused)', TG_TABLE_NAME, TG_OP;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_rows_are_append_only()"
    )
    op.execute(
        "CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions "
        "FOR EACH ROW EXECUTE FUNCTION ledger_rows_are_append_only()"
    )
    op.execute(
        "CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_rows_are_append_only()"
    )

    _create_app_role()
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    for table, (privileges, update_columns) in APP_GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
        if update_columns:
            op.execute(f"GRANT UPDATE ({update_columns}) ON {table} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")


def downgrade() -> None:
    # The role stays: other databases on the server may use it. Its privileges here go.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute("DROP TRIGGER transactions_no_truncate ON transactions")
    op.execute("DROP TRIGGER transactions_append_only ON transactions")
    op.execute("DROP TRIGGER entries_no_truncate ON entries")
    op.execute("DROP FUNCTION ledger_rows_are_append_only()")
    op.drop_constraint("wallets_balance_ceiling", "wallets", type_="check")
    op.drop_table("unresolved_settlements")
    op.drop_constraint("provider_events_rejection_has_reason", "provider_events", type_="check")
    op.create_check_constraint(
        "provider_events_rejection_has_reason",
        "provider_events",
        "status <> 'rejected' OR reason IS NOT NULL",
    )
    op.drop_constraint("provider_events_status_valid", "provider_events", type_="check")
    op.create_check_constraint(
        "provider_events_status_valid", "provider_events", "status IN ('applied', 'rejected')"
    )
    op.drop_constraint("holds_purpose_valid", "holds", type_="check")
    op.drop_column("holds", "purpose")
