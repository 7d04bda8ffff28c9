"""The nightly soak (tools/soak.py, `make soak SIZE=...`) at a tiny size, so it cannot rot between
nights: it passes on the real handlers, and its checks catch a ledger that disagrees with what the
clients were told. Each run is its own process, as `make soak` is (handler modules and their
per-container caches must start fresh for a new database)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--operations", "120", "--clients", "3", "--wallets", "6", "--kill-interval", "0.1", "--summary", ""]


@pytest.fixture
def soak_env(postgres_server) -> dict[str, str]:
    """The soak creates and drops its own database on the test session's server."""
    return {**os.environ, "DATABASE_URL": postgres_server.admin_url.render_as_string(hide_password=False)}


def _soak(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_tiny_soak_passes_with_connections_killed(soak_env):
    done = _soak(soak_env, f"import sys, tools.soak as soak; sys.exit(soak.main({TINY!r}))")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "soak PASSED: 120 operations by 3 clients" in done.stdout


def test_the_soak_fails_when_the_ledger_disagrees_with_the_answers(soak_env):
    # Given a model that counts one acknowledged movement twice (as a double-applied one would be)
    sabotage = f"""
        import sys, tools.soak as soak
        applied, calls = soak.Model.applied, []
        def doubled(self, transaction_id, changes):
            calls.append(transaction_id)
            applied(self, transaction_id, changes)
            if len(calls) == 20:
                for wallet, delta in changes.items():
                    self.balance[wallet] += delta
        soak.Model.applied = doubled
        sys.exit(soak.main({TINY!r}))
    """

    done = _soak(soak_env, sabotage)

    # Then the balance check disagrees with the ledger, and the soak fails
    assert done.returncode == 1, done.stdout + done.stderr
    assert "acknowledged operations say" in done.stdout
