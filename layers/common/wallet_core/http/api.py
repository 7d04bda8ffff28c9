"""The resolver every API function shares, and the two shapes a route takes: an idempotent
command (every POST) or a read. Handlers stay thin: parse, one service call, present.

Every response leaves through `respond`: problems carry the request id, a 201 carries Location,
and every 5xx is counted (HandledServerErrors) for the alarms that roll a deployment back."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, single_metric
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.config import get_settings
from wallet_core.domain import errors
from wallet_core.domain.principal import Principal
from wallet_core.http import guard
from wallet_core.http.auth import principal_from_event
from wallet_core.http.presenters import resource_path, to_json
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


SERVER_ERROR_METRIC = "HandledServerErrors"
DEFAULT_METRICS_NAMESPACE = "Wallet"
DEFAULT_SERVICE = "wallet"


def json_response(
    status: int, body: str, *, replayed: bool = False, location: str | None = None
) -> Response[str]:
    headers: dict[str, str] = {}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    if location is not None:
        headers["Location"] = location
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    content_type = PROBLEM_JSON if status >= 400 else "application/json"
    return Response(status_code=status, content_type=content_type, body=body, headers=headers)


# Responses and the 5xx metric --------------------------------------------------------------------


def request_id_of(event: Mapping[str, Any]) -> str | None:
    """API Gateway's request id (the logs carry it as correlation_id)."""
    context = event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    return request_id if isinstance(request_id, str) else None


def count_server_error(function_name: str | None) -> None:
    """One HandledServerErrors data point, flushed at once (single_metric), for the alarms that roll
    a deployment back: the function answered a 5xx itself, which Lambda's Errors metric misses."""
    try:
        with single_metric(
            name=SERVER_ERROR_METRIC,
            unit=MetricUnit.Count,
            value=1,
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE,
        ) as metric:
            metric.add_dimension(
                name="service", value=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
            )
            metric.add_dimension(name="function_name", value=function_name or "unknown")
    except Exception:  # the answer matters more than its metric
        logger.exception("could not emit the HandledServerErrors metric")


def respond(
    app: APIGatewayHttpResolver,
    status: int,
    body: str,
    *,
    replayed: bool = False,
    location: str | None = None,
) -> Response[str]:
    if status >= 500:
        count_server_error(getattr(app.lambda_context, "function_name", None))
    return json_response(status, body, replayed=replayed, location=location)


def _field_name(parts: Any) -> str:
    names = [str(part) for part in parts if part not in ("body", "query", "path")]
    return guard.without_forbidden_text(".".join(names)) or "body"


def _message(error: dict[str, Any]) -> str:
    return str(error.get("msg", "is not valid")).removeprefix("Value error, ")


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":
        return {
            "field": "body",
            "message": f"malformed JSON: {error.get('ctx', {}).get('error', 'cannot parse')}",
        }
    return {"field": _field_name(error.get("loc", ())), "message": _message(error)}


def _problem_handlers(app: APIGatewayHttpResolver) -> None:
    """The error tree mapped to responses (problems.py decides the status and the document)."""

    def request_id() -> str | None:
        return request_id_of(app.current_event.raw_event)

    def validation_failed(exc: RequestValidationError) -> Response[str]:
        field_errors = [_field_error(error) for error in exc.errors()]
        body = render_problem(
            400,
            errors.ValidationError.code,
            "The request is not valid.",
            field_errors,
            request_id=request_id(),
        )
        return respond(app, 400, body)

    def unsupported_media_type(exc: RequestUnsupportedContentType) -> Response[str]:
        # A route that takes a body, called with another Content-Type and an empty body (the
        # guard only types bodies that are there).
        return service_error(guard.UnsupportedMediaTypeError())

    def route_not_found(exc: Exception) -> Response[str]:
        return service_error(errors.NotFoundError("No such resource."))

    def service_error(exc: errors.WalletServiceError) -> Response[str]:
        status, body = problem_for(exc, request_id=request_id())
        return respond(app, status, body)

    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        status, body = internal_error(request_id=request_id())
        return respond(app, status, body)

    app.exception_handler(RequestValidationError)(validation_failed)
    app.exception_handler(RequestUnsupportedContentType)(unsupported_media_type)
    app.exception_handler(RouteNotFoundError)(route_not_found)
    app.exception_handler(errors.WalletServiceError)(service_error)
    app.exception_handler(Exception)(unexpected)


# The request guard ---------------------------------------------------------------------------------


Guard = Callable[[APIGatewayProxyEventV2], None]


class WalletResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver with checks in front of every route, on the raw event, before
    Powertools parses or validates anything (its own parse failures would be 500s):

    1. the app's guards, e.g. the admin scope: an admin-only route answers 401/403 before its body
       is looked at and before the Idempotency-Key is read or stored, so a replay re-checks the
       scope instead of returning what an admin's request stored under the same subject and key;
    2. the request guard (wallet_core.http.guard): media type, size, UTF-8, JSON shape, parameters.
    Each function serves one route, so the app's guards apply to whatever the event asks for."""

    def __init__(self, *, guards: Sequence[Guard] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guards = tuple(guards)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        raw = event if isinstance(event, dict) else dict(event)
        try:
            for check in self._guards:
                check(APIGatewayProxyEventV2(raw))
            guard.check_request(raw)
        except errors.WalletServiceError as exc:
            status, body = problem_for(exc, request_id=request_id_of(raw))
            response = json_response(status, body)
            return ResponseBuilder[APIGatewayProxyEventV2](response=response).build(
                APIGatewayProxyEventV2(raw)
            )
        return super().resolve(guard.with_canonical_media_type(raw), context)


def admin_scope_required(event: APIGatewayProxyEventV2) -> None:
    require_admin(principal_from_event(event.raw_event))


def create_app(*, admin_only: bool = False) -> APIGatewayHttpResolver:
    app = WalletResolver(enable_validation=True, guards=[admin_scope_required] if admin_only else [])
    _problem_handlers(app)
    return app


def _idempotency_key(headers: dict[str, str]) -> str:
    key = next((value for name, value in headers.items() if name.lower() == IDEMPOTENCY_HEADER), None)
    if key is None or key == "":
        raise errors.IdempotencyKeyMissingError()
    # Visible ASCII only: no control characters, no NUL (which PostgreSQL cannot store).
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
) -> Response[str]:
    """`authorize` (a route whose body decides what the caller needs, e.g. the admin-only fields of
    a new wallet) runs before the Idempotency-Key is read, so every replay is authorized afresh."""
    event = app.current_event
    principal = principal_from_event(event.raw_event)
    if authorize is not None:
        authorize(principal)
    request_id = request_id_of(event.raw_event)
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
        # A stored rejection keeps the first request's id: a replay is that request's answer.
        render_rejection=lambda error: problem_for(error, request_id=request_id),
        wait_seconds=get_settings().idempotency_wait_seconds,
    )
    return respond(
        app,
        outcome.status,
        outcome.body,
        replayed=outcome.replayed,
        location=_location(present, outcome.status, outcome.body),
    )


def _location(present: Callable[[Any], dict[str, Any]], status: int, body: str) -> str | None:
    """Every 201 says where its new resource lives (replays too: from the stored body)."""
    path = resource_path(present)
    if status != 201 or path is None:
        return None
    return path.format(id=json.loads(body)["id"])


def run_query(
    app: APIGatewayHttpResolver,
    query: Callable[[Any, Principal], T],
    *,
    present: Callable[[T], dict[str, Any]],
) -> Response[str]:
    principal = principal_from_event(app.current_event.raw_event)
    with SqlUnitOfWork() as uow:
        result = query(uow, principal)
    return respond(app, 200, to_json(present(result)))
