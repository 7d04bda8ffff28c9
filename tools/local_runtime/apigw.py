"""What API Gateway HTTP API does around a Lambda integration (payload format 2.0): route matching,
the event it builds, and how it turns the function's result back into an HTTP response."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from tools.local_runtime.template import ACCOUNT_ID, HttpRoute

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Match:
    route: HttpRoute
    path_parameters: dict[str, str]


class Router:
    """API Gateway picks the most specific route: more literal segments first, then fewer {params}."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        def pattern(route: HttpRoute) -> re.Pattern[str]:
            return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path)))

        def specificity(route: HttpRoute) -> tuple[int, int]:
            segments = route.path.strip("/").split("/")
            return -sum("{" not in segment for segment in segments), len(segments)

        self.routes = [(route, pattern(route)) for route in sorted(routes, key=specificity)]

    def match(self, method: str, path: str) -> Match | None:
        for route, pattern in self.routes:
            found = pattern.fullmatch(path) if route.method == method.upper() else None
            if found:
                return Match(route, {name: unquote(value) for name, value in found.groupdict().items()})
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

    def header(self, name: str) -> str | None:
        return ",".join(value for key, value in self.headers if key.lower() == name.lower()) or None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return ",".join(value for key, value in self.headers if key.lower() == name.lower()) or None


def json_response(status: int, payload: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


def new_request_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode()  # shaped like API Gateway's own ids


def build_event(
    request: Request, match: Match, *, claims: dict[str, str] | None = None, now: float | None = None
) -> dict[str, Any]:
    """The payload v2.0 event. Like API Gateway, keys with nothing to say (cookies,
    queryStringParameters, pathParameters, body) are left out rather than set to null."""
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    cookies = [part.strip() for part in headers.pop("cookie", "").split(";") if part.strip()]
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    domain = headers.get("host", "127.0.0.1")
    t = time.gmtime(now)  # API Gateway's month names, whatever the locale
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        **({"cookies": cookies} if cookies else {}),
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            **({"authorizer": {"jwt": {"claims": claims, "scopes": None}}} if claims is not None else {}),
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": request.method.upper(),
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": new_request_id(),
            "routeKey": match.route.route_key,
            "stage": "$default",
            "time": time.strftime(f"%d/{MONTHS[t.tm_mon - 1]}/%Y:%H:%M:%S +0000", t),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if request.raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    if request.body:
        try:
            event["body"] = request.body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(request.body).decode(), True
    return event


def map_result(result: Any) -> Response:
    """Payload 2.0 response mapping. A dict with statusCode is the HTTP response; anything else is a
    200 application/json whose body is that JSON (a string result is sent as it is). A result API
    Gateway could not map raises (the caller answers 500)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return Response(200, [("Content-Type", "application/json")], text.encode())
    status = int(result["statusCode"])
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode {status} is out of range")
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        return Response(status, headers, b"")
    if result.get("isBase64Encoded"):
        return Response(status, headers, base64.b64decode(str(body), validate=True))
    return Response(status, headers, (body if isinstance(body, str) else json.dumps(body)).encode())
