"""docs/openapi.json is what the handlers generate, valid OpenAPI 3.1, and says what the contract
says about every route: security, idempotency, problem codes, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tools import openapi as generator
from tools.local_runtime.server import requires_auth
from tools.local_runtime.template import Template

ROOT = Path(__file__).resolve().parents[3]
ROUTES = Template(ROOT / "template.yaml").http_routes()
# The route table's Scopes: API Gateway refuses a token without wallet:admin on these.
ADMIN_ONLY = {(route.method, route.path) for route in ROUTES if route.scopes == ["wallet:admin"]}


@pytest.fixture(scope="module")
def generated() -> str:
    return generator.render(generator.build_document())


@pytest.fixture(scope="module")
def document(generated: str) -> dict:
    return json.loads(generated)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_committed_document_is_what_the_handlers_generate(generated):
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_it_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_a_stale_file_is_reported_by_the_check_command(tmp_path, capsys):
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    assert generator.main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert generator.main(["--write", str(stale)]) == 0
    assert generator.main(["--check", str(stale)]) == 0


def test_every_route_of_the_template_is_documented_once(document):
    routes = {(route.method, route.path) for route in ROUTES}
    assert {("POST", "/v1/holds"), ("GET", "/v1/settlements/unresolved")} <= ADMIN_ONLY
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented == routes
    assert {"/health", "/ready", "/version"} <= set(document["paths"])
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_security_follows_the_authorizer_and_names_the_admin_scope(document):
    guarded = {(route.method, route.path) for route in ROUTES if requires_auth(route)}
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in operations(document):
        security = operation.get("security")
        if (method, path) not in guarded:
            assert not security, (method, path)
            continue
        scopes = security[0]["bearerAuth"]
        if (method, path) in ADMIN_ONLY:
            assert scopes == ["wallet:admin"], (method, path)
            assert operation["x-required-scope"] == "wallet:admin"
            problem = operation["responses"]["403"]["content"]["application/problem+json"]["schema"]
            assert "forbidden" in problem["properties"]["code"]["enum"]
            # API Gateway's own 403 for a token without the route's scope (AuthorizationScopes).
            gateway = operation["responses"]["403"]["content"]["application/json"]["schema"]
            assert gateway == {"$ref": "#/components/schemas/GatewayMessage"}, (method, path)
        else:
            assert scopes == [], (method, path)
            forbidden = operation["responses"].get("403", {}).get("content", {})
            assert "application/json" not in forbidden, (method, path)
        assert "401" in operation["responses"], (method, path)


def test_every_post_requires_an_idempotency_key_and_says_when_it_replays(document):
    parameter = document["components"]["parameters"]["IdempotencyKey"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("Idempotency-Key", "header", True)
    assert parameter["schema"]["maxLength"] == 255
    for method, path, operation in operations(document):
        refs = [p.get("$ref") for p in operation.get("parameters", [])]
        if method != "POST":
            assert "#/components/parameters/IdempotencyKey" not in refs
            continue
        assert "#/components/parameters/IdempotencyKey" in refs, path
        success = next(code for code in operation["responses"] if code.startswith("2"))
        headers = operation["responses"][success]["headers"]
        assert "Idempotent-Replayed" in headers, path
        if success == "201":
            assert headers["Location"]["required"] is True, path
        codes = {
            code
            for response in operation["responses"].values()
            for code in response.get("content", {})
            .get("application/problem+json", {})
            .get("schema", {})
            .get("properties", {})
            .get("code", {})
            .get("enum", [])
        }
        expected = "validation_error idempotency_key_missing unsupported_media_type payload_too_large"
        expected += " idempotency_key_reused idempotency_request_in_progress unauthorized service_unavailable"
        assert set(expected.split()) <= codes, path


def test_problems_carry_request_id_and_field_errors(document):
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(problem["required"])
    assert "errors" in problem["properties"]
    examples = document["components"]["examples"]
    for name in ("validation_error", "balance_limit_exceeded", "unsupported_media_type", "payload_too_large"):
        assert examples[name]["value"]["code"] == name
    unavailable = document["paths"]["/v1/wallets"]["get"]["responses"]["503"]
    assert unavailable["headers"]["Retry-After"]["required"] is True


def test_the_contract_limits_are_in_the_schemas(document):
    schemas = document["components"]["schemas"]
    amount = schemas["MovementRequest"]["properties"]["amount"]
    assert (amount["type"], amount["minimum"], amount["maximum"]) == ("integer", 1, 10**15)
    assert schemas["Wallet"]["properties"]["balance"]["maximum"] == 2**53 - 1
    assert schemas["MovementRequest"]["additionalProperties"] is False
    assert {"USD", "EUR", "JPY"} <= set(schemas["WalletCreateRequest"]["properties"]["currency"]["enum"])
    assert schemas["MovementRequest"]["properties"]["metadata"]["maxProperties"] == 20
    limit = next(p for p in document["paths"]["/v1/wallets"]["get"]["parameters"] if p.get("name") == "limit")
    assert [limit["schema"][key] for key in ("minimum", "maximum", "default")] == [1, 100, 25]


def test_creating_a_wallet_links_to_what_can_be_done_with_it(document):
    links = document["paths"]["/v1/wallets"]["post"]["responses"]["201"]["links"]
    targets = {link["operationId"] for link in links.values()}
    assert {"getWallet", "creditWallet", "createTransfer", "createHold", "listWalletTransactions"} <= targets
    ids = {op["operationId"] for _, _, op in operations(document)}
    for _, _, operation in operations(document):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids
    capture = document["paths"]["/v1/holds"]["post"]["responses"]["201"]["links"]["CaptureHold"]
    assert capture["parameters"] == {"hold_id": "$response.body#/id"}


def test_a_route_the_handler_does_not_declare_fails_the_generation():
    class FakeApp:
        def get_openapi_json_schema(self, **_):
            return json.dumps({"paths": {"/v1/other": {"get": {}}}})

    class Route:
        method, path = "GET", "/v1/things"

    with pytest.raises(generator.DocumentError, match="/v1/things"):
        generator._function_schema("ThingFunction", FakeApp(), [Route()])


def test_every_example_is_valid_for_the_model_it_illustrates(document):
    from wallet_core.http import openapi, schemas

    models = {**vars(schemas), **vars(openapi)}
    checked = 0
    for _method, _path, operation in operations(document):
        bodies = [operation.get("requestBody", {}), *list(operation["responses"].values())]
        for part in bodies:
            media = part.get("content", {}).get("application/json", {})
            if not media.get("examples"):
                continue
            schema = media["schema"]
            # An optional body is anyOf [the model, null].
            ref = schema.get("$ref") or next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
            for example in media.get("examples", {}).values():
                model = models[ref.rsplit("/", 1)[-1]]
                model.model_validate(example["value"])  # raises if an example lies
                checked += 1
    assert checked >= 15
    assert (
        "own_wallet"
        in document["paths"]["/v1/wallets"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    )


def test_every_resource_the_handlers_render_is_documented_field_for_field(document):
    # The presenters' field lists are what every response carries; the document's models must list
    # the same fields, in the same order (a missing one is forbidden by additionalProperties: false).
    from wallet_core.http import presenters

    schemas = document["components"]["schemas"]
    rendered = {
        "Wallet": presenters._WALLET,
        "Transaction": presenters._TRANSACTION,
        "Hold": presenters._HOLD,
        "BalanceSnapshot": presenters._BALANCE_SNAPSHOT,
        "UnresolvedSettlement": presenters._UNRESOLVED_SETTLEMENT,
    }
    for name, fields in rendered.items():
        assert list(schemas[name]["properties"]) == list(fields.names), name
        assert schemas[name]["additionalProperties"] is False
    assert schemas["Hold"]["properties"]["purpose"]["enum"] == ["payout", "reservation"]
    assert "purpose" in schemas["Hold"]["required"]


def test_every_request_text_documents_the_control_character_rule(document):
    """The validator refuses control characters in every text, metadata keys included: the
    document says so, so data valid by the document is never refused for it."""
    from wallet_core.http.schemas import TEXT_PATTERN

    checked = 0
    for name, schema in document["components"]["schemas"].items():
        if not name.endswith("Request"):
            continue
        for field, spec in schema.get("properties", {}).items():
            for option in spec.get("anyOf", [spec]):
                if option.get("type") == "string" and "format" not in option and field != "currency":
                    assert option.get("pattern") == TEXT_PATTERN, (name, field)
                    checked += 1
                if option.get("type") == "object":  # metadata: its keys and its values
                    assert option["propertyNames"]["pattern"] == TEXT_PATTERN, (name, field)
                    assert option["additionalProperties"]["pattern"] == TEXT_PATTERN, (name, field)
                    checked += 1
    assert checked >= 10
