"""The resolver every API function shares, and the two shapes a route takes: an idempotent
command (every POST) or a read. Handlers stay thin: parse, one service call, present."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.config import get_settings
from wallet_core.domain import errors
from wallet_core.domain.principal import Principal
from wallet_core.http.auth import principal_from_event
from wallet_core.http.presenters import to_json
from wallet_core.http.problems import (
    PROBLEM_JSON,
    RETRY_AFTER_SECONDS,
    internal_error,
    problem_for,
    render_problem,
)
from wallet_core.service import idempotency
from wallet_core.service.access import require_admin

T = TypeVar("T")

logger = Logger()

IDEMPOTENCY_HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"


def json_response(status: int, body: str, *, replayed: bool = False) -> Response:
    headers: dict[str, str] = {}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    content_type = PROBLEM_JSON if status >= 400 else "application/json"
    return Response(status_code=status, content_type=content_type, body=body, headers=headers)


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":
        return {
            "field": "body",
            "message": f"malformed JSON: {error.get('ctx', {}).get('error', 'cannot parse')}",
        }
    parts = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    return {"field": ".".join(parts) or "body", "message": str(error.get("msg", "is not valid"))}


def _validation_failed(exc: RequestValidationError) -> Response:
    field_errors = [_field_error(error) for error in exc.errors()]
    body = render_problem(400, errors.ValidationError.code, "The request is not valid.", field_errors)
    return json_response(400, body)


def _service_error(exc: errors.WalletServiceError) -> Response:
    status, body = problem_for(exc)
    return json_response(status, body)


def _unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    status, body = internal_error()
    return json_response(status, body)


Guard = Callable[[APIGatewayProxyEventV2], None]


class GuardedResolver(APIGatewayHttpResolver):
    """A resolver that runs guards on the matched route's request before anything else looks at it.

    Powertools puts its request validation first in every route's middleware stack, ahead of the
    middlewares `app.use()` adds (Route._build_middleware_stack), so a check that must answer before
    the body is validated cannot be a middleware. It runs where the resolver calls the matched route;
    what a guard raises goes through the app's exception handlers like any other error. Pinned by
    tests/integration/test_money_safety.py (a Powertools upgrade that moves this hook fails it)."""

    def __init__(self, *, guards: Sequence[Guard] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guards = tuple(guards)

    def _call_route(self, route, route_arguments):  # type: ignore[no-untyped-def]
        try:
            for guard in self._guards:
                guard(self.current_event)
        except Exception as exc:
            handled = self._call_exception_handler(exc, route)
            if handled is None:  # pragma: no cover - create_app registers a handler for Exception
                raise
            return handled
        return super()._call_route(route, route_arguments)


def admin_scope_required(event: APIGatewayProxyEventV2) -> None:
    """Admin-only routes answer 401/403 first: before the body is validated and before the
    Idempotency-Key is read or stored, so a replay re-checks the scope instead of returning what an
    admin's request stored under the same subject and key."""
    require_admin(principal_from_event(event.raw_event))


def create_app(*, admin_only: bool = False) -> APIGatewayHttpResolver:
    app = GuardedResolver(enable_validation=True, guards=[admin_scope_required] if admin_only else [])
    app.exception_handler(RequestValidationError)(_validation_failed)
    app.exception_handler(errors.WalletServiceError)(_service_error)
    app.exception_handler(Exception)(_unexpected)
    return app


def _idempotency_key(headers: dict[str, str]) -> str:
    key = next((value for name, value in headers.items() if name.lower() == IDEMPOTENCY_HEADER), None)
    if key is None or key == "":
        raise errors.IdempotencyKeyMissingError()
    if len(key) > 255 or not all("!" <= char <= "~" for char in key):
        raise errors.ValidationError(
            "The Idempotency-Key header is not valid.",
            errors=[{"field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters"}],
        )
    return key


def _fingerprint(method: str, path: str, body: str | None) -> str:
    """Same method, path and JSON document (whatever its formatting) = same request."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")) if body else ""
    except ValueError:
        canonical = body or ""
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def run_command(
    app: APIGatewayHttpResolver,
    operation: Callable[[Any, Principal], T],
    *,
    status: int,
    present: Callable[[T], dict[str, Any]],
    authorize: Callable[[Principal], None] | None = None,
) -> Response:
    """`authorize` (a route whose body decides what the caller needs, e.g. the admin-only fields of
    a new wallet) runs before the Idempotency-Key is read, so every replay is authorized afresh."""
    event = app.current_event
    principal = principal_from_event(event.raw_event)
    if authorize is not None:
        authorize(principal)
    request = idempotency.IdempotentRequest(
        principal=principal.subject,
        key=_idempotency_key(event.headers or {}),
        fingerprint=_fingerprint(event.http_method, event.path, event.decoded_body),
    )
    outcome = idempotency.execute(
        SqlUnitOfWork(),
        request,
        lambda uow: operation(uow, principal),
        render=lambda result: (status, to_json(present(result))),
        render_rejection=problem_for,
        wait_seconds=get_settings().idempotency_wait_seconds,
    )
    return json_response(outcome.status, outcome.body, replayed=outcome.replayed)


def run_query(
    app: APIGatewayHttpResolver,
    query: Callable[[Any, Principal], T],
    *,
    present: Callable[[T], dict[str, Any]],
) -> Response:
    principal = principal_from_event(app.current_event.raw_event)
    with SqlUnitOfWork() as uow:
        result = query(uow, principal)
    return json_response(200, to_json(present(result)))
