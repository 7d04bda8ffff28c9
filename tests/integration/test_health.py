"""GET /health (functions/health): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.integration.conftest import probe
from wallet_core.schema_version import SCHEMA_HEAD


def test_health_and_ready_are_ok_at_head(database_url):
    health, ready = probe("health"), probe("ready")

    assert (health.status, health.body) == (
        200,
        {"status": "ok", "database": "ok", "schema_revision": SCHEMA_HEAD},
    )
    assert (ready.status, ready.body["status"], ready.body["schema_revision"]) == (200, "ready", SCHEMA_HEAD)


def test_health_and_ready_are_503_when_the_database_is_down(pointed_at):
    from tools.pgserver import free_port

    pointed_at(f"postgresql+psycopg://postgres:not-a-real-password@127.0.0.1:{free_port()}/nowhere")

    health, ready = probe("health"), probe("ready")

    assert (health.status, health.body) == (503, {"status": "error", "database": "unreachable"})
    assert (ready.status, ready.body["reason"]) == (503, "database_unreachable")
    assert "not-a-real-password" not in health.raw_body + ready.raw_body
