"""The local HTTP API: ThreadingHTTPServer on 127.0.0.1 in front of the Gateway (documentation pages,
routing, JWT check, event, invoke, response mapping)."""

from __future__ import annotations

import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.local_runtime import apigw, auth, docs
from tools.local_runtime.context import FunctionHost
from tools.local_runtime.template import HttpRoute

log = logging.getLogger("local_runtime.http")


def requires_auth(route: HttpRoute) -> bool:
    """The HttpApi's DefaultAuthorizer (the JWT one) unless the route says `Authorizer: NONE`."""
    return route.auth != "NONE"


class Gateway:
    def __init__(self, host: FunctionHost) -> None:
        self.host = host
        self.router = apigw.Router(host.template.http_routes())

    def handle(self, request: apigw.Request) -> apigw.Response:
        documentation = docs.serve(request.method, request.raw_path)
        if documentation is not None:  # /openapi.json and /docs: the local runtime's own pages
            return documentation
        match = self.router.match(request.method, request.raw_path)
        if match is None:
            return apigw.json_response(404, {"message": "Not Found"})
        claims = (
            auth.check(request.header("authorization"), match.route.scopes)
            if requires_auth(match.route)
            else None
        )
        if isinstance(claims, apigw.Response):
            return claims
        event = apigw.build_event(request, match, claims=claims)
        try:
            response = apigw.map_result(self.host.invoke(match.route.function_id, event))
        except Exception:
            # The stack trace goes to the console (CloudWatch's role), never to the client.
            log.exception("%s raised or answered what API Gateway cannot map", match.route.function_id)
            response = apigw.json_response(500, {"message": "Internal Server Error"})
        response.headers.append(("Apigw-Requestid", event["requestContext"]["requestId"]))
        return response


class _Handler(BaseHTTPRequestHandler):
    server: LocalHttpServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = apigw.Request(
            self.command, path, query, list(self.headers.items()), body, self.client_address[0]
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

    def __getattr__(self, name: str) -> Any:
        # Every method (TRACE, made-up ones) goes to the router, as API Gateway does (404 when no
        # route has it), instead of http.server's 501 HTML page.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gateway: Gateway, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)  # loopback only: the token secret is public
        self.gateway = gateway
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def start(self) -> LocalHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
        self._thread.join(timeout=10)
        self.server_close()


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("werkzeug", "botocore"):  # moto's per-request access log, boto's chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:  # the banner says which revision is applied; Alembic's step-by-step is noise
        logging.getLogger("alembic").setLevel(logging.WARNING)
