"""API Gateway HTTP API behaviour: most-specific route wins, the payload 2.0 event has the shape of
a real one, and results map back to HTTP the way API Gateway maps them."""

from __future__ import annotations

import base64
import json

import pytest

from tools.local_runtime import apigw
from tools.local_runtime.template import HttpRoute

# The payload 2.0 example from the API Gateway developer guide ("Working with AWS Lambda proxy
# integrations for HTTP APIs"), minus the mTLS-only `authentication` and `stageVariables`.
AWS_DOCUMENTED_EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/my/path",
    "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
    "cookies": ["cookie1", "cookie2"],
    "headers": {"header1": "value1", "header2": "value1,value2"},
    "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "api-id",
        "authorizer": {
            "jwt": {"claims": {"claim1": "value1", "claim2": "value2"}, "scopes": ["scope1", "scope2"]}
        },
        "domainName": "id.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "id",
        "http": {
            "method": "POST",
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": "agent",
        },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    },
    "body": "Hello from Lambda",
    "pathParameters": {"parameter1": "value1"},
    "isBase64Encoded": False,
}


def _route(method: str, path: str, function_id: str = "Fn") -> HttpRoute:
    return HttpRoute(function_id, f"{method}{path}", method, path)


@pytest.fixture
def router() -> apigw.Router:
    return apigw.Router.from_routes(
        [
            _route("ANY", "/v1/files/{proxy+}", "Greedy"),
            _route("GET", "/v1/wallets/{wallet_id}", "WalletGet"),
            _route("GET", "/v1/wallets/{wallet_id}/transactions", "History"),
            _route("POST", "/v1/wallets", "WalletCreate"),
            _route("GET", "/v1/wallets", "WalletList"),
            _route("GET", "/v1/wallets/special", "Special"),
            _route("ANY", "/v1/wallets/special", "SpecialAny"),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "function_id", "params"),
    [
        ("GET", "/v1/wallets", "WalletList", {}),
        ("POST", "/v1/wallets", "WalletCreate", {}),
        ("GET", "/v1/wallets/abc", "WalletGet", {"wallet_id": "abc"}),
        ("GET", "/v1/wallets/a%20b", "WalletGet", {"wallet_id": "a b"}),
        ("GET", "/v1/wallets/abc/transactions", "History", {"wallet_id": "abc"}),
        ("GET", "/v1/wallets/special", "Special", {}),  # literal beats {wallet_id}
        ("DELETE", "/v1/wallets/special", "SpecialAny", {}),  # ANY when no method matches
        ("PUT", "/v1/files/a/b/c.txt", "Greedy", {"proxy": "a/b/c.txt"}),
    ],
)
def test_most_specific_route_wins(router, method, path, function_id, params):
    match = router.match(method, path)
    assert match is not None
    assert (match.route.function_id, match.path_parameters) == (function_id, params)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/v1/wallets"), ("GET", "/v1/unknown"), ("GET", "/v1/wallets/a/b/c"), ("GET", "/v1/files")],
)
def test_unmatched_requests_have_no_route(router, method, path):
    assert router.match(method, path) is None


def test_default_route_catches_what_nothing_else_does():
    router = apigw.Router.from_routes(
        [_route("GET", "/health", "Health"), HttpRoute("Catch", "E", "ANY", "$default")]
    )
    assert router.match("GET", "/health").route.function_id == "Health"
    match = router.match("POST", "/anything/at/all")
    assert match.route.function_id == "Catch"
    assert match.route.route_key == "$default"


def _documented_request() -> tuple[apigw.Request, apigw.Match]:
    request = apigw.Request(
        method="POST",
        raw_path="/my/path",
        raw_query="parameter1=value1&parameter1=value2&parameter2=value",
        headers=[
            ("Header1", "value1"),
            ("Header2", "value1"),
            ("header2", "value2"),
            ("Cookie", "cookie1; cookie2"),
            ("User-Agent", "agent"),
        ],
        body=b"Hello from Lambda",
        source_ip="192.0.2.1",
    )
    route = HttpRoute("Fn", "E", "POST", "/my/{parameter1}")
    return request, apigw.Match(route, {"parameter1": "value1"})


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_event_has_the_shape_of_the_documented_payload_v2():
    request, match = _documented_request()
    event = apigw.build_event(
        request, match, claims={"claim1": "value1", "claim2": "value2"}, now=1583348638.390
    )

    documented = json.loads(json.dumps(AWS_DOCUMENTED_EVENT))
    documented["requestContext"]["authorizer"]["jwt"]["scopes"] = None  # no route scopes configured
    assert set(event) == set(documented)
    assert set(event["requestContext"]) == set(documented["requestContext"])
    assert set(event["requestContext"]["http"]) == set(documented["requestContext"]["http"])
    shape = _shape(event)
    shape["headers"] = _shape(documented["headers"])  # we add x-forwarded-* as API Gateway does
    assert shape == _shape(documented)

    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /my/{parameter1}"
    assert event["cookies"] == ["cookie1", "cookie2"]
    assert event["headers"]["header1"] == "value1"
    assert event["headers"]["header2"] == "value1,value2"
    assert "cookie" not in event["headers"]
    assert event["queryStringParameters"] == documented["queryStringParameters"]
    assert event["rawQueryString"] == documented["rawQueryString"]
    assert event["pathParameters"] == {"parameter1": "value1"}
    assert event["body"] == "Hello from Lambda"
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    # (The guide's example disagrees with itself: its timeEpoch is 04/Mar, its time says 12/Mar.)
    assert context["time"] == "04/Mar/2020:19:03:58 +0000"
    assert context["timeEpoch"] == documented["requestContext"]["timeEpoch"]
    assert context["stage"] == "$default"
    assert context["http"] == {
        "method": "POST",
        "path": "/my/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "192.0.2.1",
        "userAgent": "agent",
    }


def test_powertools_reads_the_event():
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    request, match = _documented_request()
    event = APIGatewayProxyEventV2(apigw.build_event(request, match, claims={"sub": "user-1"}))
    assert event.request_context.authorizer.jwt_claim == {"sub": "user-1"}
    assert event.path_parameters == {"parameter1": "value1"}
    assert event.get_query_string_value("parameter2") == "value"
    assert event.cookies == ["cookie1", "cookie2"]
    assert event.decoded_body == "Hello from Lambda"


def test_absent_parts_are_left_out_like_api_gateway_does():
    request = apigw.Request("GET", "/health", "", [("Host", "127.0.0.1:3000")], b"")
    event = apigw.build_event(request, apigw.Match(_route("GET", "/health"), {}))
    for key in ("cookies", "queryStringParameters", "pathParameters", "body"):
        assert key not in event
    assert "authorizer" not in event["requestContext"]
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["domainName"] == "127.0.0.1:3000"


def test_binary_body_is_base64_encoded():
    payload = bytes(range(256))
    request = apigw.Request("POST", "/upload", "", [("Content-Type", "application/octet-stream")], payload)
    event = apigw.build_event(request, apigw.Match(_route("POST", "/upload"), {}))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_result_with_status_code_maps_headers_cookies_and_base64_body():
    response = apigw.map_result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "image/png", "X-One": "1"},
            "multiValueHeaders": {"X-Many": ["a", "b"], "x-one": ["ignored"]},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": base64.b64encode(b"\x89PNG\x00").decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.status == 201
    assert response.body == b"\x89PNG\x00"
    assert response.header("content-type") == "image/png"
    assert response.header("x-one") == "1"
    assert [v for k, v in response.headers if k == "X-Many"] == ["a", "b"]
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["a=1; Path=/", "b=2; HttpOnly"]


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ({"message": "hi"}, b'{"message": "hi"}'),
        ([1, 2], b"[1, 2]"),
        ("Hello from Lambda!", b"Hello from Lambda!"),
        (None, b"null"),
    ],
)
def test_result_without_status_code_is_a_json_200(result, body):
    response = apigw.map_result(result)
    assert (response.status, response.body, response.header("content-type")) == (
        200,
        body,
        "application/json",
    )


def test_status_code_without_body_sends_an_empty_body():
    response = apigw.map_result({"statusCode": 204})
    assert (response.status, response.body) == (204, b"")


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
        {"not": object()},
    ],
)
def test_invalid_results_are_rejected(result):
    with pytest.raises(apigw.InvalidResponse):
        apigw.map_result(result)
