"""`/openapi.json` and a browsable `/docs` page on the local API, offline.

The document is the committed docs/openapi.json (a test keeps it equal to what the handlers
generate). The page is Swagger UI from the copy Powertools ships inside its wheel (a 5.x build:
the first Swagger UI major that renders OpenAPI 3.1), served from here, so nothing is fetched from
the internet. Its "Authorize" button takes the tokens the banner prints.
"""

from __future__ import annotations

from pathlib import Path

from tools.local_runtime import apigw

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
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


def serve(method: str, path: str) -> apigw.Response | None:
    """The response for the documentation URLs, or None for anything else (the API's routes)."""
    if method not in ("GET", "HEAD"):
        return None
    if path == "/openapi.json":
        if not DOCUMENT.is_file():
            return apigw.json_response(503, {"message": f"{DOCUMENT} is missing: run `make openapi`"})
        return apigw.Response(200, [("Content-Type", "application/json")], DOCUMENT.read_bytes())
    if path in ("/docs", "/docs/"):
        return apigw.Response(200, [("Content-Type", "text/html; charset=utf-8")], PAGE.encode())
    if path in ASSETS:
        from aws_lambda_powertools.event_handler.openapi import swagger_ui

        name, content_type = ASSETS[path]
        body = (Path(swagger_ui.__file__).parent / name).read_bytes()
        return apigw.Response(200, [("Content-Type", content_type), ("Cache-Control", "max-age=3600")], body)
    return None
