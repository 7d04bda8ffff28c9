"""Expand/contract, proven: the release still serving keeps working on this commit's schema.

A deployment migrates to this commit's head BEFORE traffic shifts, and during the canary the
previous release's functions keep serving most requests on that new schema. So every migration
must be backwards compatible with the previous release (docs/runbooks/migrations.md, "The rule").
This test checks that out of git instead of trusting it:

1. the previous release: EXPAND_CONTRACT_BASE if set; else the newest `v*` tag below HEAD; else,
   when migrations/versions/ has uncommitted changes, HEAD itself; else the parent of the newest
   commit that changed migrations/versions/ (the code that ran before the newest migration);
2. that commit is checked out in a `git worktree` under a temporary directory;
3. a fresh database is migrated to THIS tree's head with THIS tree's migrations;
4. the OLD release's handlers (its layer and its functions, in a subprocess whose import path holds
   only the old tree) run a smoke scenario: open wallets, credit (and replay it), transfer, read the
   transaction, hold / read / void, ingest a provider deposit delivered twice, read balances and
   history (steps whose functions the old release did not have yet are skipped and listed).

It is skipped, with the reason, only when no previous release can be found (e.g. a shallow clone:
CI checks out with fetch-depth: 0). Marked `expand_contract` so CI also runs it as its own job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import runner

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("expand_contract_smoke.py")
VERSIONS = "migrations/versions"

pytestmark = pytest.mark.expand_contract


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def _commit_exists(rev: str) -> bool:
    probe = subprocess.run(
        ["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, check=False
    )
    return probe.returncode == 0


def previous_release() -> tuple[str, str] | None:
    """(commit, why this one), or None when the history holds no previous release."""
    if not (ROOT / ".git").exists():
        return None
    if os.environ.get("EXPAND_CONTRACT_BASE"):
        base = os.environ["EXPAND_CONTRACT_BASE"]
        return _git("rev-parse", f"{base}^{{commit}}"), f"EXPAND_CONTRACT_BASE={base}"
    head = _git("rev-parse", "HEAD")
    for tag in _git("tag", "--list", "v*", "--merged", "HEAD", "--sort=-creatordate").split():
        if _git("rev-parse", f"{tag}^{{commit}}") != head:
            return _git("rev-parse", f"{tag}^{{commit}}"), f"last release tag {tag}"
    if _git("status", "--porcelain", "--", VERSIONS):
        return head, f"HEAD: {VERSIONS} has uncommitted changes"
    newest = _git("log", "-1", "--format=%H", "HEAD", "--", VERSIONS)
    if not newest or not _commit_exists(f"{newest}^"):
        return None  # no migration commit, or its parent is cut off by a shallow clone
    return _git("rev-parse", f"{newest}^"), f"parent of {newest[:10]}, the newest commit changing {VERSIONS}"


@pytest.fixture(scope="module")
def old_release() -> Iterator[tuple[Path, str]]:
    found = previous_release()
    if found is None:
        shallow = _git("rev-parse", "--is-shallow-repository") if (ROOT / ".git").exists() else "no git"
        reason = f"no previous release in this clone's history (shallow: {shallow}); fetch full history"
        print(f"SKIP expand/contract: {reason}")
        pytest.skip(reason)
    commit, why = found
    with tempfile.TemporaryDirectory(prefix="expand-contract-") as scratch:
        tree = Path(scratch) / "old-release"
        _git("worktree", "add", "--detach", "--force", str(tree), commit)
        try:
            yield tree, f"{commit[:10]} ({why})"
        finally:
            # Removes the checkout and its entry; never `prune` (other worktrees share this repo).
            _git("worktree", "remove", "--force", str(tree))


def run_old_release(tree: Path, database_url: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tree)),
        "DATABASE_URL": database_url,
        "DB_POOL_SIZE": "2",
        "STAGE": "expand-contract",
        "WALLET_PROVIDERS": "acme-pay",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "wallet-expand-contract",
        "POWERTOOLS_METRICS_NAMESPACE": "ExpandContract",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(tree)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{") and '"ran"' in line]
    crashed = f"old release driver crashed:\n{done.stdout}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, crashed
    assert lines, crashed
    return json.loads(lines[-1])


def test_the_previous_release_serves_on_this_commits_schema(old_release, postgres_server):
    tree, described = old_release
    database_url = postgres_server.create_database("wallet_expand_contract")
    head = runner.upgrade_to_head(database_url)
    assert head == runner.head_revision()

    report = run_old_release(tree, database_url)

    print(f"expand/contract: old release {described} on schema {head}: ran {report['ran']}")
    for skipped in report["skipped"]:
        print(f"  not in the old release: {skipped}")
    assert report["failure"] is None, (
        f"the previous release ({described}) breaks on this commit's schema (head {head}): "
        f"{report['failure']}. A migration must stay compatible with the release still serving "
        "(expand now, contract in a later release): docs/runbooks/migrations.md"
    )
    assert report["wallet_core"].startswith(str(tree)), "the old release must run its own wallet_core"
    assert {"open wallets", "credit, and its idempotent replay", "transfer"} <= set(report["ran"])


def test_previous_release_is_found_in_this_history():
    found = previous_release()
    if found is None:
        pytest.skip("shallow clone: no history")
    commit, _ = found
    assert _commit_exists(commit)
