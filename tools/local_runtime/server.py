"""The local HTTP API: ThreadingHTTPServer on 127.0.0.1 in front of the Gateway (routing, JWT check,
event, invoke, response mapping)."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.local_runtime import apigw, auth, docs
from tools.local_runtime.context import FunctionHost

log = logging.getLogger("local_runtime.http")


def requires_auth(route: Any) -> bool:
    """Every /v1 route is behind the JWT authorizer; probes are not. A route's explicit
    `Auth: {Authorizer: NONE}` turns it off and a named authorizer turns it on, as in SAM."""
    if route.auth == "NONE":
        return False
    if route.auth:
        return True
    return route.path == "/v1" or route.path.startswith("/v1/")


class Gateway:
    def __init__(self, host: FunctionHost, port: int | None = None) -> None:
        self.host = host
        self.router = apigw.Router.from_routes(host.template.http_routes())
        self.port = port

    def handle(self, request: apigw.Request) -> apigw.Response:
        documentation = docs.serve(request.method, request.raw_path)
        if documentation is not None:  # /openapi.json and /docs: the local runtime's own pages
            return documentation
        match = self.router.match(request.method, request.raw_path)
        if match is None:
            return apigw.not_found()
        claims = None
        if requires_auth(match.route):
            try:
                verified = auth.verify(request.header("authorization"))
            except auth.Unauthorized as exc:
                return auth.unauthorized_response(str(exc), apigw.new_request_id())
            if not auth.allowed(verified, match.route.scopes):  # the route's AuthorizationScopes
                return auth.forbidden_response(match.route.scopes, apigw.new_request_id())
            claims = auth.gateway_claims(verified)
        event = apigw.build_event(request, match, claims=claims, port=self.port)
        request_id = event["requestContext"]["requestId"]
        try:
            result = self.host.invoke(match.route.function_id, event)
            response = apigw.map_result(result)
        except apigw.InvalidResponse as exc:
            log.error("%s returned an invalid response: %s", match.route.function_id, exc)
            response = apigw.internal_error()
        except Exception:
            # The stack trace goes to the console (CloudWatch's role), never to the client.
            log.error("%s raised:\n%s", match.route.function_id, traceback.format_exc())
            response = apigw.internal_error()
        response.headers.append(("Apigw-Requestid", request_id))
        return response


class _Handler(BaseHTTPRequestHandler):
    server: LocalHttpServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = apigw.Request(
            method=self.command,
            raw_path=path,
            raw_query=query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        response = self.server.gateway.handle(request)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, made-up ones) goes to the router like the rest, as API
        # Gateway does (404, no route), instead of http.server's 501 HTML page.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gateway: Gateway, port: int) -> None:
        # 127.0.0.1 only: tokens are signed with a public development secret.
        super().__init__(("127.0.0.1", port), _Handler)
        self.gateway = gateway
        gateway.port = self.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> LocalHttpServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="local-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
        self.server_close()


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if not verbose:  # the banner says which revision is applied; Alembic's step-by-step is noise
        logging.getLogger("alembic").setLevel(logging.WARNING)
