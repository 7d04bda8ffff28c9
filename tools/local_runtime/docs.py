"""`/openapi.json` and a browsable `/docs` page on the local API, offline.

The document is the committed docs/openapi.json (a test keeps it equal to what the handlers
generate). The page is Swagger UI from the copy Powertools ships inside its wheel (a 5.x build:
the first Swagger UI major that renders OpenAPI 3.1), served from here, so nothing is fetched from
the internet. Its "Authorize" button takes the tokens the banner prints.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tools.local_runtime import apigw

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"
PAGE_PATHS = ("/docs", "/docs/")
ASSETS = {
    "/docs/swagger-ui.css": ("swagger-ui.min.css", "text/css; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.min.js", "application/javascript; charset=utf-8"),
}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Wallet service API (local)</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    // "Authorize" takes a token from `make run`'s banner ($USER_TOKEN or $ADMIN_TOKEN), without
    // the "Bearer " prefix; it is kept across reloads of this page.
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      deepLinking: true,
      persistAuthorization: true,
      displayRequestDuration: true,
      tryItOutEnabled: true
    });
  </script>
</body>
</html>
"""


def _swagger_ui_dir() -> Path:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    return Path(swagger_ui.__file__).parent


@functools.cache
def _asset(name: str) -> bytes:
    return (_swagger_ui_dir() / name).read_bytes()


def _response(status: int, content_type: str, body: bytes, cache: str = "no-cache") -> apigw.Response:
    return apigw.Response(status, [("Content-Type", content_type), ("Cache-Control", cache)], body)


def serve(method: str, path: str, document: Path = DOCUMENT) -> apigw.Response | None:
    """The response for the documentation URLs, or None for anything else (the API's routes)."""
    if method not in ("GET", "HEAD"):
        return None
    if path == "/openapi.json":
        try:
            body = document.read_bytes()
            json.loads(body)
        except (OSError, ValueError):
            problem = {
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": f"{document} is missing or not JSON: run `make openapi`",
                "code": "service_unavailable",
            }
            return _response(503, "application/problem+json", json.dumps(problem).encode())
        return _response(200, "application/json", body)
    if path in PAGE_PATHS:
        return _response(200, "text/html; charset=utf-8", PAGE.encode())
    if path in ASSETS:
        name, content_type = ASSETS[path]
        return _response(200, content_type, _asset(name), cache="max-age=3600")
    return None
