"""The Alembic head this build ships. /ready compares the database with it; a test keeps it equal
to the head of migrations/versions (bump it with every new migration)."""

SCHEMA_HEAD = "0006"
