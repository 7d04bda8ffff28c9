"""The local HTTP API: what API Gateway's HTTP API does around a Lambda integration (payload 2.0):
route matching, the JWT authorizer and route scopes, the event, the result mapped back to HTTP;
plus `/openapi.json` and `/docs` (Swagger UI from the copy inside the Powertools wheel, offline),
on werkzeug's server bound to 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from http.client import responses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from tools.local_runtime import auth
from tools.local_runtime.context import FunctionHost
from tools.local_runtime.template import ACCOUNT_ID, HttpRoute

log = logging.getLogger("local_runtime.http")
HOP_BY_HOP = ("content-length", "connection", "transfer-encoding", "date", "server")  # the server's own

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"  # kept equal by a test
ASSETS = {
    "/docs/swagger-ui.css": ("swagger-ui.min.css", "text/css; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.min.js", "application/javascript; charset=utf-8"),
}
# "Authorize" takes a token from `make run`'s banner, without "Bearer "; kept across reloads.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Wallet service API (local)</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div><script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis], deepLinking: true,
  persistAuthorization: true, displayRequestDuration: true, tryItOutEnabled: true});</script>
</body></html>
"""


@dataclass
class Match:
    route: HttpRoute
    path_parameters: dict[str, str]


class Router:
    """API Gateway picks the most specific route: more literal segments first, then fewer {params}."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        def specificity(route: HttpRoute) -> tuple[int, int]:
            segments = route.path.strip("/").split("/")
            return -sum("{" not in segment for segment in segments), len(segments)

        self.routes = [
            (route, re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))))
            for route in sorted(routes, key=specificity)
        ]

    def match(self, method: str, path: str) -> Match | None:
        for route, pattern in self.routes:
            if route.method == method.upper() and (found := pattern.fullmatch(path)):
                return Match(route, {name: unquote(value) for name, value in found.groupdict().items()})
        return None


@dataclass
class Request:
    method: str
    raw_path: str  # without the query string, as sent (percent-encoding kept)
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, payload: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


def new_request_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode()  # shaped like API Gateway's own ids


def _joined(pairs: Any) -> dict[str, str]:
    """Repeated names joined by commas, as API Gateway does for headers and query parameters."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def build_event(
    request: Request, match: Match, *, claims: dict[str, str] | None = None, now: float | None = None
) -> dict[str, Any]:
    """The payload v2.0 event. Like API Gateway, keys with nothing to say (cookies,
    queryStringParameters, pathParameters, body) are left out rather than set to null."""
    now = time.time() if now is None else now
    headers = _joined((name.lower(), value) for name, value in request.headers)
    cookies = [part.strip() for part in headers.pop("cookie", "").split(";") if part.strip()]
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    domain = headers.get("host", "127.0.0.1")
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
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),  # C locale: English months
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if request.raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(request.raw_query, keep_blank_values=True))
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
        return Response(
            200,
            [("Content-Type", "application/json")],
            (result if isinstance(result, str) else json.dumps(result)).encode(),
        )
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


def serve_docs(method: str, path: str) -> Response | None:
    """The documentation URLs, or None for anything else (the API's routes)."""
    if method not in ("GET", "HEAD"):
        return None
    if path == "/openapi.json":
        return Response(200, [("Content-Type", "application/json")], DOCUMENT.read_bytes())
    if path in ("/docs", "/docs/"):
        return Response(200, [("Content-Type", "text/html; charset=utf-8")], PAGE.encode())
    if path in ASSETS:
        from aws_lambda_powertools.event_handler.openapi import swagger_ui

        name, content_type = ASSETS[path]
        body = (Path(swagger_ui.__file__).parent / name).read_bytes()
        return Response(200, [("Content-Type", content_type), ("Cache-Control", "max-age=3600")], body)
    return None


def problem(status: int, detail: str, *headers: tuple[str, str]) -> Response:
    """The gateway's own 401 and 403, in the service's problem+json shape (wallet_core is on sys.path
    once the host has read the template), with the request id in the body and in Apigw-Requestid."""
    from wallet_core.http.problems import PROBLEM_JSON, render_problem

    request_id = new_request_id()
    body = render_problem(
        status, "unauthorized" if status == 401 else "forbidden", detail, request_id=request_id
    )
    return Response(
        status, [("Content-Type", PROBLEM_JSON), *headers, ("Apigw-Requestid", request_id)], body.encode()
    )


def requires_auth(route: HttpRoute) -> bool:
    """The HttpApi's DefaultAuthorizer (the JWT one) unless the route says `Authorizer: NONE`."""
    return route.auth != "NONE"


class Gateway:
    def __init__(self, host: FunctionHost) -> None:
        self.host = host
        self.router = Router(host.template.http_routes())

    def handle(self, request: Request) -> Response:
        documentation = serve_docs(request.method, request.raw_path)
        if documentation is not None:  # /openapi.json and /docs: the local runtime's own pages
            return documentation
        match = self.router.match(request.method, request.raw_path)
        if match is None:
            return json_response(404, {"message": "Not Found"})
        claims = None
        if requires_auth(match.route):
            authorization = ",".join(
                value for name, value in request.headers if name.lower() == "authorization"
            )
            try:
                claims = auth.check(authorization, match.route.scopes)
            except auth.Unauthorized as exc:
                return problem(
                    401, str(exc), ("WWW-Authenticate", 'Bearer realm="wallet-api", error="invalid_token"')
                )
            except auth.Forbidden as exc:
                return problem(403, str(exc))
        event = build_event(request, match, claims=claims)
        try:
            response = map_result(self.host.invoke(match.route.function_id, event))
        except Exception:
            # The stack trace goes to the console (CloudWatch's role), never to the client.
            log.exception("%s raised or answered what API Gateway cannot map", match.route.function_id)
            response = json_response(500, {"message": "Internal Server Error"})
        response.headers.append(("Apigw-Requestid", event["requestContext"]["requestId"]))
        return response


class LocalHttpServer:
    """werkzeug's threaded WSGI server (moto's own) on 127.0.0.1, loopback only: the token secret is
    public. Its request handler gives every method (TRACE, made-up ones) to the gateway, which
    answers 404 when no route has it, as API Gateway does."""

    def __init__(self, gateway: Gateway, port: int) -> None:
        from werkzeug.serving import make_server

        self.gateway = gateway
        self._server = make_server("127.0.0.1", port, self._app, threaded=True)
        self.server_address = self._server.server_address
        self.url = f"http://127.0.0.1:{self._server.port}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        from werkzeug.wrappers import Request as WsgiRequest

        wsgi = WsgiRequest(environ)
        path, _, query = environ["RAW_URI"].partition("?")  # as sent: percent-encoding kept
        request = Request(
            wsgi.method, path, query, list(wsgi.headers.items()), wsgi.get_data(), environ["REMOTE_ADDR"]
        )
        response = self.gateway.handle(request)
        headers = [(name, value) for name, value in response.headers if name.lower() not in HOP_BY_HOP]
        start_response(
            f"{response.status} {responses.get(response.status, '')}",
            [*headers, ("Content-Length", str(len(response.body)))],
        )
        return [] if wsgi.method == "HEAD" else [response.body]

    def start(self) -> LocalHttpServer:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    # moto's per-request access log, boto's chatter, Alembic's step by step (the banner says the revision)
    for noisy in ("werkzeug", "botocore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
