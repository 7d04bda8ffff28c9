"""SQLAlchemy Core descriptions of the tables the Alembic migrations create.

These are for building queries only: the schema itself comes from `migrations/versions`, never from
`metadata.create_all`. A test compares the two so they cannot drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

wallets = Table(
    "wallets",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner_id", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("external_ref", String(128)),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

system_accounts = Table(
    "system_accounts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("currency", String(3), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source_wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id")),
    Column("destination_wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id")),
    Column("reference", String(128)),
    Column("description", String(512)),
    Column("metadata", JSONB, nullable=False),
    Column("reverses_transaction_id", UUID(as_uuid=True), ForeignKey("transactions.id")),
    Column("hold_id", UUID(as_uuid=True)),
    Column("created_by", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("transaction_id", UUID(as_uuid=True), ForeignKey("transactions.id"), nullable=False),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id")),
    Column("system_account_id", UUID(as_uuid=True), ForeignKey("system_accounts.id")),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger),
    Column("wallet_version", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer),
    Column("response_body", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)

holds = Table(
    "holds",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("captured_amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reference", String(128)),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("purpose", String(16), nullable=False),
)

provider_events = Table(
    "provider_events",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("transaction_id", UUID(as_uuid=True), ForeignKey("transactions.id")),
    Column("hold_id", UUID(as_uuid=True), ForeignKey("holds.id")),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("applied_at", DateTime(timezone=True)),
)

balance_snapshots = Table(
    "balance_snapshots",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reported_balance", BigInteger, nullable=False),
    Column("ledger_balance", BigInteger, nullable=False),
    Column("drift", BigInteger, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

unresolved_settlements = Table(
    "unresolved_settlements",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("hold_id", UUID(as_uuid=True), ForeignKey("holds.id"), nullable=False),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution", Text),
)

# Tables every build of this code needs; /ready reports any that are missing.
REQUIRED_TABLES = tuple(sorted(metadata.tables))
