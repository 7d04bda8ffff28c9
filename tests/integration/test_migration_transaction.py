"""All pending revisions apply in one transaction: a revision that fails leaves the database at the
head it had (here: empty), never half-way between two heads."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import _libpq


def test_a_failing_revision_rolls_back_the_revisions_before_it(postgres_server):
    import runner

    # Given a fresh database where revision 0003 will fail (its table already exists)
    url = postgres_server.create_database("wallet_failing")
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE unresolved_settlements (id int)")

    # When the migrations run from the base
    with pytest.raises(Exception, match="unresolved_settlements"):
        runner.upgrade_to_head(url)

    # Then nothing of 0001 and 0002 is left either, and a rerun after the fix applies everything
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == {"unresolved_settlements"}
        conn.execute("DROP TABLE unresolved_settlements")
    assert runner.upgrade_to_head(url) == runner.head_revision()
    assert runner.current_revision(url) == runner.head_revision()
