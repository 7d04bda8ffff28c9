"""Migration function: runs before any traffic shifts (CloudFormation custom resource) and can be
invoked directly: {"action": "upgrade"} applies the migrations, {"action": "current"} reports."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

import runner

logger = Logger(service="wallet-migrations")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event:
        from custom_resource import handle

        return handle(event, context)

    action = event.get("action", "upgrade")
    database_url = runner.database_url_for_migrations()
    head = runner.head_revision()
    if action == "upgrade":
        revision = runner.upgrade_to_head(database_url)
        login = runner.ensure_app_login(database_url)
        logger.info("migrations applied", extra={"revision": revision, "head": head, "app_login": login})
        return {"status": "ok", "revision": revision, "head": head}
    if action == "current":
        return {"status": "ok", "revision": runner.current_revision(database_url), "head": head}
    return {"status": "error", "error": f"unknown action {action!r}; use 'upgrade' or 'current'"}
