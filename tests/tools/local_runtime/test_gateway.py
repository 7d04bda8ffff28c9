"""The local HTTP API end to end over a socket, with fake handlers: JWT checks and route scopes
happen before any handler runs, claims arrive where API Gateway puts them, failures look like API
Gateway's, and /openapi.json and /docs are served without the internet."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from tests.tools.local_runtime.conftest import calls, request
from tools.local_runtime import auth
from tools.local_runtime.server import serve_docs


def _token(**overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": auth.ISSUER,
        "aud": auth.AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, auth.secret(), algorithm="HS256")


def test_valid_token_reaches_the_handler_with_claims_as_api_gateway_renders_them(server, fake_host):
    token = _token(scope="wallet:read", extra=["a", "b"])
    status, headers, raw = request(
        server, "GET", "/v1/items/42?x=1&x=2", token=token, headers={"X-Trace": "t"}
    )
    assert status == 200, raw
    assert headers["x-layer"] == "fake-layer"  # the template's layer is importable
    assert headers["apigw-requestid"]
    body = json.loads(raw)
    event = body["event"]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert (claims["sub"], claims["scope"], claims["iss"], claims["aud"]) == (
        "user-1",
        "wallet:read",
        "wallet-local",
        "wallet-api",
    )
    assert (claims["extra"], type(claims["exp"])) == ("[a b]", str)
    assert (event["routeKey"], event["pathParameters"]) == ("GET /v1/items/{item_id}", {"item_id": "42"})
    assert (event["queryStringParameters"], event["headers"]["x-trace"]) == ({"x": "1,2"}, "t")
    # The Lambda context comes from the template (Globals Timeout 7, MemorySize 256).
    assert (body["function"], body["memory"]) == ("EchoFunction", 256)
    assert 0 < body["remaining_ms"] <= 7000
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction"
    assert len(calls(fake_host, "EchoFunction")) == 1


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer not-a-jwt", "not valid"),
        (
            f"Bearer {auth.issue_token('user-1', key='someone-elses-secret-of-32-bytes!!')}",
            "Signature verification failed",
        ),
        (f"Bearer {auth.issue_token('user-1', ttl_seconds=-60)}", "expired"),
        (f"Bearer {_token(aud='other-api')}", "Audience"),
        (f"Bearer {_token(iss='evil')}", "Invalid issuer"),
        (f"Bearer {_token(exp=None)}", '"exp" claim'),
        (f"Bearer {jwt.encode({'sub': 'user-1'}, None, algorithm='none')}", "not valid"),
    ],
    ids=[
        "missing",
        "not-bearer",
        "garbage",
        "forged",
        "expired",
        "wrong-aud",
        "wrong-iss",
        "no-exp",
        "alg-none",
    ],
)
def test_bad_tokens_get_401_before_any_handler_runs(server, fake_host, authorization, detail):
    seen = calls(fake_host, "EchoFunction")
    headers = {"Authorization": authorization} if authorization else {}
    status, response_headers, raw = request(server, "GET", "/v1/items/42", headers=headers)
    assert (status, response_headers["content-type"]) == (401, "application/problem+json")
    body = json.loads(raw)
    # The same problem shape as every other error, request id included.
    assert {k: body[k] for k in ("type", "title", "status", "code", "request_id")} == {
        "type": "https://wallet.example.com/problems/unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "code": "unauthorized",
        "request_id": response_headers["apigw-requestid"],
    }
    assert detail in body["detail"]
    assert seen == [], "the handler ran for an unauthenticated request"


def test_secret_comes_from_the_environment(server, monkeypatch):
    default_token = auth.issue_token("user-1")
    monkeypatch.setenv("LOCAL_JWT_SECRET", "another-local-secret-at-least-32-bytes")
    assert request(server, "GET", "/v1/items/1", token=default_token)[0] == 401
    assert request(server, "GET", "/v1/items/1", token=auth.issue_token("user-1"))[0] == 200


# POST /v1/items/purge declares AuthorizationScopes [items:admin, wallet:admin] (conftest).
@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"scope": "wallet:read"}, 403),
        ({}, 403),
        ({"scope": "wallet:read,wallet:admin"}, 403),  # one unknown scope, as API Gateway reads it
        ({"scope": "wallet:admin:x"}, 403),
        ({"scope": "wallet:read wallet:admin"}, 200),
        ({"scope": "items:admin"}, 200),  # any one of the route's scopes is enough
        ({"scope": "", "scp": ["other", "wallet:admin"]}, 200),  # scp, as a list
        ({"scope": "", "scp": "other items:admin"}, 200),  # scp, as a string
    ],
)
def test_route_scopes_are_checked_like_api_gateway_before_the_handler_runs(server, fake_host, claims, status):
    seen = calls(fake_host, "OtherFunction")
    code, headers, raw = request(server, "POST", "/v1/items/purge", token=_token(**claims))
    assert code == status, raw
    assert len(seen) == (status == 200), "the handler ran for a token without the route's scope"
    if status == 403:
        body = json.loads(raw)
        assert headers["content-type"] == "application/problem+json"
        assert (body["code"], body["request_id"]) == ("forbidden", headers["apigw-requestid"])
        assert "wallet:admin" in body["detail"]
    # A route without scopes takes any valid token; an invalid one is 401 on a scoped route too.
    assert request(server, "GET", "/v1/items/special", token=_token(**claims))[0] == 200
    assert request(server, "POST", "/v1/items/purge", token=_token(exp=1))[0] == 401


def test_probes_need_no_token_and_carry_cookies_in_their_own_list(server):
    status, _, raw = request(server, "GET", "/health", headers={"Cookie": "a=1; b=2"})
    event = json.loads(raw)["event"]
    assert (status, event["cookies"]) == (200, ["a=1", "b=2"])
    assert "cookie" not in event["headers"]
    assert "authorizer" not in event["requestContext"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/v1/nothing-here", 404, {"message": "Not Found"}),
        ("TRACE", "/health", 404, {"message": "Not Found"}),  # no route has it: never http.server's 501
        ("BREW", "/health", 404, {"message": "Not Found"}),
        ("GET", "/v1/boom", 500, {"message": "Internal Server Error"}),  # no secret detail
    ],
)
def test_failures_look_like_api_gateways(server, method, path, status, body):
    code, headers, raw = request(server, method, path, token=auth.issue_token())
    assert (code, headers["content-type"], json.loads(raw)) == (status, "application/json", body)


def test_a_plain_result_is_json_200_from_the_literal_route_with_its_own_timeout(server):
    status, headers, raw = request(server, "GET", "/v1/items/special", token=auth.issue_token())
    body = json.loads(raw)
    assert (status, headers["content-type"], body["function"], body["path"]) == (
        200,
        "application/json",
        "other",
        "/v1/items/special",
    )
    assert 0 < body["timeout_left"] <= 2000  # OtherFunction's own Timeout: 2


def test_binary_request_body_arrives_base64_encoded(server):
    status, _, raw = request(server, "GET", "/health", body=b"\xff\x00\xfe")
    assert status == 200
    assert (json.loads(raw)["event"]["body"], json.loads(raw)["event"]["isBase64Encoded"]) == ("/wD+", True)


def test_each_function_gets_its_own_module_and_the_server_listens_on_loopback(server, fake_host):
    echo, other = fake_host.handler("EchoFunction"), fake_host.handler("OtherFunction")
    assert echo.__module__ != other.__module__
    assert echo.__globals__["CALLS"] is not other.__globals__["CALLS"]
    assert server.server_address[0] == "127.0.0.1"


def test_docs_urls_are_served_before_routing(server):
    status, _, raw = request(server, "GET", "/openapi.json")
    assert (status, json.loads(raw)["openapi"]) == (200, "3.1.0")
    status, headers, raw = request(server, "GET", "/docs/swagger-ui.css")
    assert (status, headers["content-type"], len(raw) > 10_000) == (200, "text/css; charset=utf-8", True)
    assert serve_docs("POST", "/openapi.json") is None
    assert serve_docs("GET", "/docs/../template.yaml") is None
