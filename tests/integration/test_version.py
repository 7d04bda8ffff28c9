"""GET /version (functions/version): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import reset_caches
from tests.integration.conftest import probe
from wallet_core.schema_version import SCHEMA_HEAD


def test_version_reports_the_build_and_no_secrets(monkeypatch, pointed_at):
    pointed_at("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x")
    monkeypatch.setenv("APP_VERSION", "1.2.3")
    monkeypatch.setenv("GIT_SHA", "abc1234")
    monkeypatch.setenv("STAGE", "staging")
    monkeypatch.setenv("CI_RUN_NUMBER", "4711")
    monkeypatch.setenv("GIT_BRANCH", "main")
    reset_caches()

    result = probe("version")

    assert result.status == 200
    assert result.body == {
        "version": "1.2.3",
        "git_sha": "abc1234",
        "build_time": "unknown",
        "ci_run_number": "4711",
        "git_branch": "main",
        "stage": "staging",
        "function_version": "$LATEST",
        "schema_head": SCHEMA_HEAD,
    }
    assert "s3cret" not in result.raw_body


def test_version_says_unknown_for_a_build_outside_ci(monkeypatch, pointed_at):
    pointed_at("postgresql+psycopg://postgres@127.0.0.1:1/x")
    for name in ("CI_RUN_NUMBER", "GIT_BRANCH"):
        monkeypatch.delenv(name, raising=False)
    reset_caches()

    body = probe("version").body

    assert (body["ci_run_number"], body["git_branch"]) == ("unknown", "unknown")
