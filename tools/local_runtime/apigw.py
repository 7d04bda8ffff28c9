"""What API Gateway HTTP API does around a Lambda integration (payload format 2.0): route matching,
the event it builds, and how it turns the function's result back into an HTTP response."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from tools.local_runtime.template import ACCOUNT_ID, HttpRoute

API_ID = "local"
NOT_FOUND = {"message": "Not Found"}
INTERNAL_ERROR = {"message": "Internal Server Error"}


@dataclass
class CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str] | None
    names: list[str]
    # Sort key: API Gateway picks the most specific route: literal segments beat {params}, a
    # {greedy+} route only catches what nothing else does, an explicit method beats ANY.
    specificity: tuple[int, ...]


def _compile(route: HttpRoute) -> CompiledRoute:
    if route.path == "$default":
        return CompiledRoute(route, None, [], (2, 0, 0, 0))
    names: list[str] = []
    parts = []
    literal = params = 0
    greedy = False
    for segment in route.path.strip("/").split("/"):
        match = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
            literal += 1
        elif match.group(2):
            names.append(match.group(1))
            parts.append("(.+)")
            greedy = True
        else:
            names.append(match.group(1))
            parts.append("([^/]+)")
            params += 1
    pattern = re.compile("/" + "/".join(parts) if parts != [""] else "/")
    return CompiledRoute(
        route, pattern, names, (1 if greedy else 0, -literal, params, 1 if route.method == "ANY" else 0)
    )


@dataclass
class Match:
    route: HttpRoute
    path_parameters: dict[str, str]


@dataclass
class Router:
    routes: list[CompiledRoute] = field(default_factory=list)

    @classmethod
    def from_routes(cls, routes: Iterable[HttpRoute]) -> Router:
        return cls(sorted((_compile(route) for route in routes), key=lambda c: c.specificity))

    def match(self, method: str, path: str) -> Match | None:
        method = method.upper()
        for compiled in self.routes:
            route = compiled.route
            if route.method not in (method, "ANY"):
                continue
            if compiled.pattern is None:
                return Match(route, {})
            found = compiled.pattern.fullmatch(path)
            if found is not None:
                values = [unquote(value) for value in found.groups()]
                return Match(route, dict(zip(compiled.names, values, strict=True)))
        return None


@dataclass
class Request:
    """An HTTP request as the local server received it."""

    method: str
    raw_path: str  # without the query string, as sent (percent-encoding kept)
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(values) if values else None


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(now: float) -> str:
    # Spelled out rather than %b: strftime's month names follow the locale, API Gateway's do not.
    t = time.gmtime(now)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def new_request_id() -> str:
    # API Gateway's own ids look like "JKJaXmPLvHcESHA="; any unique string will do.
    return base64.b64encode(secrets.token_bytes(10)).decode()


def build_event(
    request: Request,
    match: Match,
    *,
    claims: dict[str, str] | None = None,
    now: float | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """The payload v2.0 event. Like API Gateway, keys with nothing to say (cookies,
    queryStringParameters, pathParameters, body) are left out rather than set to null."""
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            # 2.0 moves cookies out of the headers into their own list.
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    host = headers.get("host", f"127.0.0.1:{port}" if port else "127.0.0.1")
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    if port:
        headers.setdefault("x-forwarded-port", str(port))
    domain = host
    route_key = match.route.route_key
    request_id = new_request_id()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    request_context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event["requestContext"] = request_context
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    if request.body:
        try:
            event["body"] = request.body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(values) if values else None


def json_response(status: int, payload: Any, content_type: str = "application/json") -> Response:
    return Response(status, [("Content-Type", content_type)], json.dumps(payload).encode())


def internal_error() -> Response:
    return json_response(500, INTERNAL_ERROR)


def not_found() -> Response:
    return json_response(404, NOT_FOUND)


class InvalidResponse(Exception):
    """The function returned something API Gateway would answer with a 500."""


def map_result(result: Any) -> Response:
    """Payload 2.0 response mapping. A dict with statusCode is taken as the HTTP response; anything
    else that is valid JSON becomes a 200 application/json whose body is that JSON (a string result
    is sent as it is)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        if isinstance(result, str):
            body = result.encode()
        else:
            try:
                body = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidResponse("the function result is not JSON serialisable") from exc
        return Response(200, [("Content-Type", "application/json")], body)

    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"statusCode {result['statusCode']!r} is not a number") from exc
    if not 100 <= status <= 599:
        raise InvalidResponse(f"statusCode {status} is out of range")
    return Response(status, _headers(result), _body(result))


def _headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
        seen.add(str(name).lower())
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if str(name).lower() in seen:
            continue  # headers wins over multiValueHeaders for the same name
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), str(value)))
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    return headers


def _body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if result.get("isBase64Encoded"):
        try:
            return base64.b64decode(str(body), validate=True)
        except ValueError as exc:
            raise InvalidResponse("isBase64Encoded is true but body is not base64") from exc
    return (body if isinstance(body, str) else json.dumps(body)).encode()
