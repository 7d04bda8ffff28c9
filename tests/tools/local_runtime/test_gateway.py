"""The local HTTP API end to end over a socket, with fake handlers: JWT checks happen before any
handler runs, claims arrive where API Gateway puts them, failures look like API Gateway's."""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Iterator

import jwt
import pytest

from tools.local_runtime import auth
from tools.local_runtime.context import FunctionHost, module_name_for
from tools.local_runtime.server import Gateway, LocalHttpServer


@pytest.fixture
def server(fake_host: FunctionHost) -> Iterator[LocalHttpServer]:
    http_server = LocalHttpServer(Gateway(fake_host), 0).start()
    yield http_server
    http_server.stop()


def request(
    server: LocalHttpServer, method: str, path: str, *, token: str | None = None, body=None, headers=None
):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, raw


def calls(host: FunctionHost, logical_id: str) -> list:
    host.handler(logical_id)  # loaded up front so "not called" cannot mean "not imported yet"
    return sys.modules[module_name_for(host.function(logical_id))].CALLS


def test_valid_token_reaches_the_handler_with_claims_as_api_gateway_renders_them(server, fake_host):
    token = auth.issue_token("user-1", scope="wallet:read", extra=["a", "b"])
    status, headers, raw = request(
        server, "GET", "/v1/items/42?x=1&x=2", token=token, headers={"X-Trace": "t"}
    )
    assert status == 200, raw
    assert headers["x-layer"] == "fake-layer"  # the template's layer is importable
    assert headers["apigw-requestid"]
    body = json.loads(raw)
    event = body["event"]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["sub"] == "user-1"
    assert claims["scope"] == "wallet:read"
    assert claims["iss"] == "wallet-local"
    assert claims["aud"] == "wallet-api"
    assert claims["extra"] == "[a b]"
    assert isinstance(claims["exp"], str)
    assert event["routeKey"] == "GET /v1/items/{item_id}"
    assert event["pathParameters"] == {"item_id": "42"}
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["x-trace"] == "t"
    # The Lambda context comes from the template (Globals Timeout 7, MemorySize 256).
    assert body["function"] == "EchoFunction"
    assert 0 < body["remaining_ms"] <= 7000
    assert body["memory"] == 256
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction"
    assert len(calls(fake_host, "EchoFunction")) == 1


def _expired() -> str:
    return auth.issue_token("user-1", ttl_seconds=-60)


def _claims(**overrides) -> dict:
    now = int(time.time())
    return {
        "iss": auth.ISSUER,
        "aud": auth.AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        **overrides,
    }


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer not-a-jwt", "not valid"),
        (f"Bearer {auth.issue_token('user-1', key='someone-elses-secret-of-32-bytes!!')}", "signature"),
        (f"Bearer {_expired()}", "expired"),
        (f"Bearer {jwt.encode(_claims(aud='other-api'), auth.secret(), algorithm='HS256')}", "audience"),
        (f"Bearer {jwt.encode(_claims(iss='evil'), auth.secret(), algorithm='HS256')}", "issuer"),
        (
            f"Bearer {jwt.encode({k: v for k, v in _claims().items() if k != 'exp'}, auth.secret(), algorithm='HS256')}",
            "exp",
        ),
        (f"Bearer {jwt.encode(_claims(), None, algorithm='none')}", "not valid"),
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
    before = len(seen)
    headers = {"Authorization": authorization} if authorization else {}
    status, response_headers, raw = request(server, "GET", "/v1/items/42", headers=headers)
    assert status == 401
    assert response_headers["content-type"] == "application/problem+json"
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
    assert len(seen) == before, "the handler ran for an unauthenticated request"


def test_secret_comes_from_the_environment(server, fake_host, monkeypatch):
    default_token = auth.issue_token("user-1")
    monkeypatch.setenv("LOCAL_JWT_SECRET", "another-local-secret-at-least-32-bytes")
    assert request(server, "GET", "/v1/items/1", token=default_token)[0] == 401
    assert request(server, "GET", "/v1/items/1", token=auth.issue_token("user-1"))[0] == 200


def test_probes_need_no_token_and_get_no_authorizer(server):
    status, _, raw = request(server, "GET", "/health")
    assert status == 200
    assert "authorizer" not in json.loads(raw)["event"]["requestContext"]


def test_unknown_route_is_api_gateways_404(server):
    status, headers, raw = request(server, "GET", "/v1/nothing-here", token=auth.issue_token())
    assert (status, json.loads(raw)) == (404, {"message": "Not Found"})
    assert headers["content-type"] == "application/json"


def test_handler_exception_is_a_generic_500(server):
    status, _, raw = request(server, "GET", "/v1/boom", token=auth.issue_token())
    assert (status, json.loads(raw)) == (500, {"message": "Internal Server Error"})
    assert b"secret detail" not in raw


def test_plain_dict_result_is_json_200_and_function_timeout_is_its_own(server):
    status, headers, raw = request(server, "GET", "/v1/items", token=auth.issue_token())
    body = json.loads(raw)
    assert (status, headers["content-type"], body["function"], body["path"]) == (
        200,
        "application/json",
        "other",
        "/v1/items",
    )
    assert 0 < body["timeout_left"] <= 2000  # OtherFunction's own Timeout: 2


def test_literal_route_beats_path_parameter_over_http(server):
    status, _, raw = request(server, "GET", "/v1/items/special", token=auth.issue_token())
    assert (status, json.loads(raw)["function"]) == (200, "other")


def test_binary_request_body_arrives_base64_encoded(server):
    payload = b"\xff\x00\xfe"
    status, _, raw = request(
        server,
        "PUT",
        "/v1/files/a/b.bin",
        token=auth.issue_token(),
        body=payload,
        headers={"Content-Type": "application/octet-stream"},
    )
    event = json.loads(raw)["event"]
    assert status == 200
    assert event["isBase64Encoded"] is True
    assert event["body"] == "/wD+"
    assert event["pathParameters"] == {"proxy": "a/b.bin"}
    assert event["routeKey"] == "ANY /v1/files/{proxy+}"


def test_cookies_travel_in_their_own_list(server):
    _, _, raw = request(server, "GET", "/health", headers={"Cookie": "a=1; b=2"})
    event = json.loads(raw)["event"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]


def test_each_function_gets_its_own_module(fake_host):
    echo, other = fake_host.handler("EchoFunction"), fake_host.handler("OtherFunction")
    assert echo.__module__ != other.__module__
    assert echo.__globals__["CALLS"] is not other.__globals__["CALLS"]
    assert "app" not in sys.modules or not hasattr(sys.modules["app"], "CALLS")


def test_server_listens_on_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"


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
    ids=[
        "read-only",
        "no-scope",
        "comma-list",
        "prefix",
        "admin",
        "other-route-scope",
        "scp-list",
        "scp-str",
    ],
)
def test_route_scopes_are_checked_like_api_gateway_before_the_handler_runs(server, fake_host, claims, status):
    seen = calls(fake_host, "OtherFunction")
    before = len(seen)
    token = jwt.encode(_claims(**claims), auth.secret(), algorithm="HS256")
    code, headers, raw = request(server, "POST", "/v1/items/purge", token=token)
    assert code == status, raw
    if status == 403:
        assert headers["content-type"] == "application/problem+json"
        body = json.loads(raw)
        assert (body["status"], body["code"], body["request_id"]) == (
            403,
            "forbidden",
            headers["apigw-requestid"],
        )
        assert "wallet:admin" in body["detail"]
        assert len(seen) == before, "the handler ran for a token without the route's scope"
    else:
        assert len(seen) == before + 1


def test_an_invalid_token_on_a_scoped_route_is_401_not_403(server):
    assert request(server, "POST", "/v1/items/purge", token=_expired())[0] == 401
    assert request(server, "POST", "/v1/items/purge")[0] == 401


def test_routes_without_scopes_take_any_valid_token(server):
    token = jwt.encode(_claims(), auth.secret(), algorithm="HS256")  # no scope claim at all
    assert request(server, "GET", "/v1/items/special", token=token)[0] == 200
