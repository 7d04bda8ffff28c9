"""Health, readiness and version: cheap, unauthenticated, and free of secrets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wallet_core.adapters.schema import REQUIRED_TABLES
from wallet_core.config import Settings
from wallet_core.schema_version import SCHEMA_HEAD

SchemaInspector = Callable[[], tuple[str | None, set[str]]]


def _inspect(inspect: SchemaInspector) -> tuple[str | None, set[str]] | None:
    try:
        return inspect()
    except Exception:  # any failure to reach the database is "unreachable" to a probe
        return None


def health(inspect: SchemaInspector) -> tuple[int, dict[str, Any]]:
    found = _inspect(inspect)
    if found is None:
        return 503, {"status": "error", "database": "unreachable"}
    return 200, {"status": "ok", "database": "ok", "schema_revision": found[0]}


def readiness(inspect: SchemaInspector) -> tuple[int, dict[str, Any]]:
    found = _inspect(inspect)
    if found is None:
        return 503, {"status": "not_ready", "reason": "database_unreachable", "database": "unreachable"}
    revision, tables = found
    body: dict[str, Any] = {"database": "ok", "schema_revision": revision, "schema_head": SCHEMA_HEAD}
    missing = sorted(set(REQUIRED_TABLES) - tables)
    if missing:
        return 503, {**body, "status": "not_ready", "reason": "missing_tables", "missing_tables": missing}
    if revision != SCHEMA_HEAD:
        # Behind: migrations have not run yet. Ahead: a newer build migrated (revision ids are
        # zero-padded sequence numbers, so they compare as strings; a test keeps them that way).
        if revision is None:
            reason = "schema_unknown"
        else:
            reason = "schema_behind" if revision < SCHEMA_HEAD else "schema_ahead"
        return 503, {**body, "status": "not_ready", "reason": reason}
    return 200, {**body, "status": "ready"}


def version(settings: Settings, function_version: str) -> dict[str, Any]:
    return {
        "version": settings.app_version,
        "git_sha": settings.git_sha,
        "build_time": settings.build_time,
        "ci_run_number": settings.ci_run_number,
        "git_branch": settings.git_branch,
        "stage": settings.stage,
        "function_version": function_version,
        "schema_head": SCHEMA_HEAD,
    }
