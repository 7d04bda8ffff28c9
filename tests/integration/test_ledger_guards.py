"""The database's own guards on the ledger: entries are append-only and available never goes negative,
even for a writer that bypasses the service. (Each route's tests: test_<route module>.py.)"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.conftest import ALICE


def test_entries_are_append_only(api, db):
    wallet = api.funded_wallet(10, ALICE)

    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE entries SET amount = amount + 1 WHERE wallet_id = %s", (uuid.UUID(wallet["id"]),))
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM entries WHERE wallet_id = %s", (uuid.UUID(wallet["id"]),))


def test_the_database_refuses_a_negative_available_balance_even_without_the_service(api, db):
    wallet = api.funded_wallet(10, ALICE)

    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE wallets SET balance = -1 WHERE id = %s", (uuid.UUID(wallet["id"]),))
