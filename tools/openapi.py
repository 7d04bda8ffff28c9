"""The OpenAPI 3.1 document of the whole API, generated from the handlers.

Every HTTP function template.yaml lists has its own Powertools resolver; each one's
`get_openapi_schema()` describes its routes (request models, parameters, the responses its
decorator declares). Powertools' OpenAPIMerge joins them, refusing a route declared twice. Then
the conventions of the shared layer that no single decorator can express are applied once:
the Idempotency-Key parameter of every idempotent command, the problem+json components, and
Powertools' default 422 response (this API answers validation errors with 400) removed.

The result is checked against the template: the same routes, and bearer security on exactly the
routes API Gateway's JWT authorizer guards. A mismatch fails the generation.

    python -m tools.openapi            # print it
    python -m tools.openapi --write    # write docs/openapi.json (`make openapi`)
    python -m tools.openapi --check    # fail if docs/openapi.json is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
DOCUMENT = ROOT / "docs" / "openapi.json"

TITLE = "Wallet service API"
VERSION = "1.1.0"
SUMMARY = "A multi-currency wallet ledger: wallets, credits, debits, transfers, reversals, holds."

DESCRIPTION = """\
Everything a client needs to integrate, with the repository's README.

## Conventions
- JSON over HTTPS. Request bodies are `Content-Type: application/json` (optionally
  `; charset=utf-8`), UTF-8, at most 64 KiB, nested at most 32 levels, numbers of at most 20 digits.
- **Amounts are JSON integers in minor units** (cents): `125000` is 1,250.00 USD.
  `1 <= amount <= 10^15`; no posted balance exceeds 2^53 - 1, so every figure is exact in JavaScript.
  Never floats, never strings.
- Currencies: ISO 4217 alpha-3, upper case. Supported by default: USD, EUR, GBP, NGN, KES, GHS, ZAR,
  JPY (configuration). A wallet's currency never changes.
- Ids are server-generated UUIDs in lower-case canonical form. Timestamps are RFC 3339 UTC with `Z`.
- `reference` (<= 128 characters) and `description` (<= 512) are free text; `metadata` is a flat
  object of strings, <= 20 keys, keys <= 40 characters, values <= 500. No text (nor a query
  parameter or the Idempotency-Key) may contain U+0000 or another C0 control character other than
  tab, CR and LF.
- Lists: `?limit=` 1..100 (default 25) and the opaque `?cursor=` from the previous page's
  `next_cursor` (null on the last page). Newest first, stable under inserts. A cursor the server did
  not issue is a 400 `validation_error` with field `cursor`.
- Every 201 carries `Location`, the new resource's path.

## Authentication
`Authorization: Bearer <JWT>` on every `/v1` route. The principal is the token's `sub`; its `scope`
claim is a space-separated list, and `wallet:admin` marks an operator or a trusted back-end
(shown on each operation as the security requirement's scope and as `x-required-scope`). A plain
user may open wallets for itself, read its own wallets, their history and the transactions and
holds that touch them, and transfer from a wallet it owns. A wallet, transaction or hold the caller
may not see answers 404 `not_found`, exactly like one that does not exist. An admin-only route
answers 403 `forbidden` to anyone else before anything else is checked.

Locally (`make run`) tokens are HS256, issuer `wallet-local`, audience `wallet-api`; the banner
prints a user and an operator token.

## Idempotency
Every POST requires `Idempotency-Key` (1..255 visible ASCII characters), scoped to the caller.
The first request's outcome (success or business rejection) is stored with its effect; a retry
with the same key, method, path and body gets the identical status and body with
`Idempotent-Replayed: true`. The same key with a different request: 422 `idempotency_key_reused`;
while the first is still in flight: 409 `idempotency_request_in_progress`. Keys are kept at least
24 hours. A retry after a timeout yields exactly one effect: retry with the same key.

## Errors
`application/problem+json` (RFC 9457) with a stable `code`, the `request_id` to quote to support,
and for `validation_error` an `errors` list naming each field. Each operation lists the codes it
can answer. 503 `service_unavailable` carries `Retry-After`. A 500 `internal_error` exists only
for bugs.
"""

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT whose `sub` is the principal; scope `wallet:admin` for operator routes.",
    }
}

TAGS = [
    {"name": "wallets", "description": "Open, read, list, freeze and close wallets"},
    {"name": "movements", "description": "Credits, debits, transfers and reversals"},
    {"name": "holds", "description": "Reserve money, then capture or void it"},
    {"name": "operations", "description": "Operator views: provider settlements held for review"},
    {"name": "probes", "description": "Health, readiness and version; no auth"},
]

IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "Unique per intended effect; reuse it to retry the same request safely.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "example": "7f0c8a52-3c43-4f0c-9a39-8a0b6f1e2d11",
}


class DocumentError(Exception):
    """The handlers and the template disagree, or a declaration is incomplete."""


def _openapi_path(path: str) -> str:
    return re.sub(r"<(\w+)>", r"{\1}", path)


def _resolver(host: Any, function_id: str) -> Any:
    """The function's module-level `app`, imported as the local runtime imports handlers."""
    from tools.local_runtime.context import module_name_for

    host.handler(function_id)
    app = getattr(sys.modules[module_name_for(host.function(function_id))], "app", None)
    if not hasattr(app, "get_openapi_schema"):
        raise DocumentError(f"{function_id}: its handler module has no Powertools resolver `app`")
    return app


def _function_schema(function_id: str, app: Any, routes: list[Any]) -> dict[str, Any]:
    schema = json.loads(
        app.get_openapi_json_schema(
            title=TITLE, version=VERSION, openapi_version="3.1.0", security_schemes=SECURITY_SCHEMES
        )
    )
    declared = {
        (method.upper(), path)
        for path, item in schema.get("paths", {}).items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    listed = {(route.method, route.path) for route in routes}
    if declared != listed:
        raise DocumentError(
            f"{function_id}: the template routes {sorted(listed)} but the handler declares {sorted(declared)}"
        )
    return schema


def _finish(document: dict[str, Any], auth: dict[tuple[str, str], bool]) -> dict[str, Any]:
    from wallet_core.http import openapi

    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # Powertools adds its own 422 "HTTPValidationError" to every route; this API answers invalid
    # input with 400 validation_error (declared per route), so those go.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    from pydantic.json_schema import models_json_schema

    _, problem_schemas = models_json_schema(
        [(model, "serialization") for model in openapi.RESPONSE_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    schemas.update(problem_schemas.get("$defs", {}))
    _supported_currencies(schemas)
    components["schemas"] = dict(sorted(schemas.items()))
    components["parameters"] = {"IdempotencyKey": IDEMPOTENCY_KEY_PARAMETER}
    components["examples"] = dict(sorted(openapi.PROBLEM_EXAMPLES.items()))

    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.get("responses", {})
            for code, response in list(responses.items()):
                if response.get("description") in ("Validation Error", "Response Validation Error"):
                    del responses[code]
            operation["responses"] = dict(sorted(responses.items()))
            if operation.pop(openapi.IDEMPOTENCY_EXTENSION, None) == "required":
                operation.setdefault("parameters", []).insert(
                    0, {"$ref": "#/components/parameters/IdempotencyKey"}
                )
            elif method == "post":
                raise DocumentError(f"POST {path}: declare it with wallet_core.http.openapi.command()")
            request_examples = operation.pop(openapi.REQUEST_EXAMPLES_EXTENSION, None)
            if request_examples:
                body = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if body is None:
                    raise DocumentError(f"{method.upper()} {path}: request examples but no JSON body")
                body["examples"] = request_examples
            secured = bool(operation.get("security"))
            if secured != auth[(method.upper(), path)]:
                raise DocumentError(
                    f"{method.upper()} {path}: the template's authorizer and the declared security disagree"
                )
    document["paths"] = dict(sorted(document.get("paths", {}).items()))
    return _integral(document)


def _supported_currencies(schemas: dict[str, Any]) -> None:
    """A request's `currency` is validated against the configured set (SUPPORTED_CURRENCIES); the
    pattern alone would let clients (and fuzzers) send codes that can only be refused. The document
    names the default set."""
    from wallet_core.domain.money import DEFAULT_CURRENCIES

    for name, schema in schemas.items():
        currency = (schema.get("properties") or {}).get("currency")
        if name.endswith("Request") and isinstance(currency, dict) and "pattern" in currency:
            currency["enum"] = list(DEFAULT_CURRENCIES)
            currency["description"] = "ISO 4217 alpha-3; the supported set is configuration (default shown)"


def _integral(value: Any) -> Any:
    """Powertools' schema model holds numeric keywords as floats; a limit such as 2^53 - 1 reads
    better (and is exact for every consumer) as the integer it is."""
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def build_document(template_path: Path = TEMPLATE) -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
    from aws_lambda_powertools.event_handler.openapi.models import Tag

    from tools.local_runtime.context import FunctionHost
    from tools.local_runtime.server import requires_auth
    from tools.local_runtime.template import Template

    template = Template(template_path)
    host = FunctionHost(template)
    by_function: dict[str, list[Any]] = {}
    for route in template.http_routes():
        by_function.setdefault(route.function_id, []).append(route)
    merge = OpenAPIMerge(
        title=TITLE,
        version=VERSION,
        openapi_version="3.1.0",
        summary=SUMMARY,
        description=DESCRIPTION,
        tags=[Tag(name=tag["name"], description=tag["description"]) for tag in TAGS],
        # OpenAPIMerge copies the schemes into the document as they are (`securitySchemes.update` in
        # its merge.py), so it needs their JSON form, not the models its signature names.
        security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]  # JSON copied as-is, see above
        on_conflict="error",
    )
    auth: dict[tuple[str, str], bool] = {}
    for function_id in sorted(by_function):
        routes = by_function[function_id]
        for route in routes:
            auth[(route.method, route.path)] = requires_auth(route)
        merge.add_schema(_function_schema(function_id, _resolver(host, function_id), routes))
    return _finish(json.loads(merge.get_openapi_json_schema()), auth)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openapi", description=__doc__.split("\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", nargs="?", const=DOCUMENT, type=Path, metavar="PATH")
    action.add_argument("--check", nargs="?", const=DOCUMENT, type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    try:
        text = render(build_document(args.template))
    except DocumentError as exc:
        print(f"openapi: {exc}", file=sys.stderr)
        return 1
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
        print(f"wrote {args.write} ({len(text)} bytes)")
        return 0
    if args.check:
        current = args.check.read_text() if args.check.is_file() else ""
        if current != text:
            print(f"{args.check} is stale: run `make openapi` and commit it", file=sys.stderr)
            return 1
        print(f"{args.check} is current")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
