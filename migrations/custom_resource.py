"""Custom::SchemaMigration: CloudFormation asks, the migration function answers, on every path.

Properties: `SchemaHead` (the Alembic head the template was built for; it changes with every new
migration, which is what makes CloudFormation send an Update) and `CodeVersion` (informational).

- Create / Update: migrate forward (under the runner's advisory lock) unless the database is
  already at or past `SchemaHead`. Nothing is ever downgraded: schema changes are expand/contract,
  so a stack rolled back to an older template keeps the newer schema and answers SUCCESS.
- Delete: SUCCESS without touching the database (deleting a stack never drops the ledger).
- Any error: FAILED with a short Reason (exception class only, never its message, which could name
  a host or a URL) and the log stream to read; the traceback goes to the log.

The answer is PUT to the pre-signed `ResponseURL` exactly as cfn-response does (`Content-Type: ""`).
From private subnets that PUT needs a route to S3 (a NAT gateway or an S3 gateway endpoint): with
only interface endpoints it never arrives (docs/runbooks/first-deploy.md).

Time: a watchdog answers FAILED shortly before the first of two deadlines, the function's own
timeout and the resource's `ServiceTimeout` (CloudFormation passes it among the properties; after
it, CloudFormation stops waiting and fails the resource). So CloudFormation hears an answer in time
on every path: success, failure, unknown request, a migration still blocked or running. A late
finish after the watchdog's answer sends nothing more. The whole run is one transaction
(migrations/runner.py): a run cut short leaves the database at the revision it started from, and
the advisory lock dies with the connection when Lambda ends the timed-out invocation.

If the answer cannot be delivered after a few attempts, `handle` raises: CloudFormation invokes this
function asynchronously, so Lambda may retry the (idempotent) request, within its retry settings.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger

import runner

logger = Logger(service="wallet-migrations", child=True)

SUCCESS = "SUCCESS"
FAILED = "FAILED"
# Answer FAILED this long before the Lambda timeout if the migration has not finished by then (the
# PUT and its retries must fit in it; see _seconds_before_deadline for short timeouts).
RESPONSE_MARGIN_SECONDS = 20.0
# Waits between attempts to deliver the answer (three attempts in all).
RETRY_DELAYS: tuple[float, ...] = (0.5, 2.0)
PUT_TIMEOUT_SECONDS = 5.0
MAX_REASON_CHARS = 512  # the whole response body must stay under 4096 bytes
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ResponseNotDeliveredError(RuntimeError):
    """CloudFormation could not be told the outcome; raising lets Lambda retry the invocation."""


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one CloudFormation request. Returns the response body that was sent."""
    responder = _Responder(event, context)
    deadline = _seconds_before_deadline(context, event.get("ResourceProperties") or {})
    watchdog = threading.Timer(deadline, responder.time_out)
    watchdog.daemon = True
    watchdog.start()
    try:
        status, reason, data = _outcome(event, context)
        responder.send(status, reason, data)
    finally:
        watchdog.cancel()
    if not responder.delivered:
        raise ResponseNotDeliveredError("the custom resource response could not be delivered")
    return responder.body


def physical_resource_id(event: dict[str, Any]) -> str:
    """Stable for the life of the resource: CloudFormation never sees a replacement, so it never
    sends a Delete for a previous id."""
    if event.get("PhysicalResourceId"):
        physical_id: str = event["PhysicalResourceId"]
        return physical_id
    stack_id = str(event.get("StackId", ""))
    # arn:aws:cloudformation:<region>:<account>:stack/<stack name>/<guid>
    parts = stack_id.rsplit(":", maxsplit=1)[-1].split("/")
    stack_name = parts[1] if len(parts) >= 2 else "stack"
    return f"schema-migration-{stack_name}-{event.get('LogicalResourceId', 'SchemaMigration')}"


def _outcome(event: dict[str, Any], context: Any) -> tuple[str, str, dict[str, Any]]:
    request_type = event.get("RequestType")
    try:
        if request_type == "Delete":
            logger.info("delete: nothing to do, the schema and its data stay")
            return SUCCESS, "Delete is a no-op: the schema and its data are kept.", {}
        if request_type in ("Create", "Update"):
            return _migrate(event.get("ResourceProperties") or {})
        return FAILED, f"Unsupported RequestType {str(request_type)[:40]!r}.", {}
    except Exception as exc:
        logger.exception("schema migration failed", extra={"request_type": request_type})
        log_stream = getattr(context, "log_stream_name", "the migration function's log")
        return FAILED, f"Schema migration failed ({type(exc).__name__}); see log stream {log_stream}.", {}


def _migrate(properties: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    status, reason, data = _migrate_schema(properties)
    if status == SUCCESS and data.get("Revision"):
        # Every deploy (re)applies the application's login from its secret, also when the schema
        # had nothing to do: the functions connect with it, never with the master secret.
        login = runner.ensure_app_login(runner.database_url_for_migrations())
        if login:
            logger.info("application login ensured", extra={"login": login})
    return status, reason, data


def _migrate_schema(properties: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(runner.alembic_config())
    head = scripts.get_current_head()
    requested = str(properties.get("SchemaHead") or head)
    database_url = runner.database_url_for_migrations()
    current = runner.current_revision(database_url)
    context = {"requested": requested, "head": head, "current": current}

    if not _known(scripts, requested):
        logger.warning("requested schema head is unknown to this build; nothing applied", extra=context)
        return (
            SUCCESS,
            f"SchemaHead {requested} is unknown to this build (head {head}); nothing applied.",
            {"Revision": current or "", "Head": head},
        )
    if current is not None and not _known(scripts, current):
        # A newer build migrated this database and the stack is being rolled back to this one.
        logger.warning("database is ahead of this build; not downgrading", extra=context)
        return (
            SUCCESS,
            f"Database is at {current}, newer than this build; not downgrading.",
            {"Revision": current, "Head": head},
        )
    if current is not None and _is_ancestor_or_same(scripts, requested, current):
        logger.info("database already at or past the requested head; nothing to do", extra=context)
        return (
            SUCCESS,
            f"Database already at {current} (requested {requested}); nothing to do.",
            {"Revision": current, "Head": head},
        )
    # Behind the requested head: only ever forward, to this build's head (which descends from it).
    revision = runner.upgrade_to_head(database_url)
    logger.info("migrations applied", extra={**context, "revision": revision})
    return SUCCESS, f"Migrated to {revision}.", {"Revision": revision or "", "Head": head}


def _known(scripts: Any, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except CommandError:  # alembic's ResolutionError and RevisionError derive from it
        return False


def _is_ancestor_or_same(scripts: Any, revision: str, descendant: str) -> bool:
    """Is `revision` the database's `descendant` revision or one of its ancestors?"""
    return any(script.revision == revision for script in scripts.iterate_revisions(descendant, "base"))


def _seconds_before_deadline(context: Any, properties: dict[str, Any]) -> float:
    """When the watchdog answers: RESPONSE_MARGIN_SECONDS before the earlier of the Lambda timeout
    and the resource's ServiceTimeout (a quarter of the time left if that is under four margins).

    The ServiceTimeout clock started when CloudFormation sent the request, a little before this
    invocation began (or long before, for a retry): counting it from now is the best available
    estimate, and the watchdog's margin absorbs the usual queueing delay."""
    remaining: float = context.get_remaining_time_in_millis() / 1000.0
    try:
        service_timeout = float(properties.get("ServiceTimeout") or 0)
    except (TypeError, ValueError):
        service_timeout = 0.0
    if service_timeout > 0:
        remaining = min(remaining, service_timeout)
    return max(0.0, remaining - min(RESPONSE_MARGIN_SECONDS, remaining / 4))


class _Responder:
    """Sends the one response CloudFormation gets, whichever of the request and the watchdog
    finishes first."""

    def __init__(self, event: dict[str, Any], context: Any) -> None:
        self._event = event
        self._context = context
        self._lock = threading.Lock()
        self._sent = False
        self.delivered = False
        self.body: dict[str, Any] = {}

    def time_out(self) -> None:
        logger.error("the migration is still running close to its deadline; answering FAILED")
        self.send(
            FAILED,
            "Schema migration did not finish before the timeout (Lambda timeout or ServiceTimeout); "
            "it may still be waiting for the migration lock or running a long revision.",
            {},
        )

    def send(self, status: str, reason: str, data: dict[str, Any]) -> None:
        with self._lock:
            if self._sent:
                logger.warning("a response was already sent; not sending another", extra={"status": status})
                return
            self._sent = True
            self.body = {
                "Status": status,
                "Reason": reason[:MAX_REASON_CHARS],
                "PhysicalResourceId": physical_resource_id(self._event),
                "StackId": self._event.get("StackId"),
                "RequestId": self._event.get("RequestId"),
                "LogicalResourceId": self._event.get("LogicalResourceId"),
                "NoEcho": False,
                "Data": data,
            }
            self.delivered = _put(self._event.get("ResponseURL", ""), self.body)


def _put(url: str, body: dict[str, Any]) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if not (parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOCAL_HOSTS)):
        logger.error("ResponseURL is not an https URL; cannot answer CloudFormation")
        return False
    payload = json.dumps(body).encode()
    logger.info("answering CloudFormation", extra={"status": body["Status"], "reason": body["Reason"]})
    delays = (*RETRY_DELAYS, None)
    for attempt, delay in enumerate(delays, start=1):
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=payload,
            method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(payload))},
        )
        try:
            with urllib.request.urlopen(request, timeout=PUT_TIMEOUT_SECONDS) as response:  # noqa: S310  # nosec B310
                response.read()
            return True
        except (urllib.error.URLError, OSError) as exc:
            # The pre-signed URL is a credential of sorts: log the host, not the query string.
            logger.warning(
                "could not deliver the response",
                extra={"attempt": attempt, "host": parsed.hostname, "error": type(exc).__name__},
            )
            if delay is not None:
                time.sleep(delay)
    logger.error("giving up delivering the response to CloudFormation", extra={"attempts": len(delays)})
    return False
