"""API Gateway HTTP API behaviour: most-specific route wins, the payload 2.0 event has the shape of
a real one (Powertools reads it), and results map back to HTTP the way API Gateway maps them."""

from __future__ import annotations

import base64

import pytest

from tools.local_runtime import server as apigw
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
        "authorizer": {"jwt": {"claims": {"claim1": "value1", "claim2": "value2"}, "scopes": None}},
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


@pytest.mark.parametrize(
    ("method", "path", "function_id", "params"),
    [
        ("GET", "/v1/wallets", "WalletList", {}),
        ("POST", "/v1/wallets", "WalletCreate", {}),
        ("GET", "/v1/wallets/a%20b", "WalletGet", {"wallet_id": "a b"}),
        ("GET", "/v1/wallets/abc/transactions", "History", {"wallet_id": "abc"}),
        ("GET", "/v1/wallets/special", "Special", {}),  # literal beats {wallet_id}
        ("DELETE", "/v1/wallets", None, None),
        ("GET", "/v1/wallets/a/b/c", None, None),
    ],
)
def test_most_specific_route_wins(method, path, function_id, params):
    router = apigw.Router(
        [
            HttpRoute("WalletGet", "GET", "/v1/wallets/{wallet_id}"),
            HttpRoute("History", "GET", "/v1/wallets/{wallet_id}/transactions"),
            HttpRoute("WalletCreate", "POST", "/v1/wallets"),
            HttpRoute("WalletList", "GET", "/v1/wallets"),
            HttpRoute("Special", "GET", "/v1/wallets/special"),
        ]
    )
    match = router.match(method, path)
    assert (match and (match.route.function_id, match.path_parameters)) == (
        function_id and (function_id, params)
    )


def _shape(value):
    return {k: _shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value).__name__


def test_event_has_the_shape_of_the_documented_payload_v2_and_powertools_reads_it():
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    request = apigw.Request(
        "POST",
        "/my/path",
        "parameter1=value1&parameter1=value2&parameter2=value",
        [
            ("Header1", "value1"),
            ("Header2", "value1"),
            ("header2", "value2"),
            ("Cookie", "cookie1; cookie2"),
            ("User-Agent", "agent"),
        ],
        b"Hello from Lambda",
        "192.0.2.1",
    )
    match = apigw.Match(HttpRoute("Fn", "POST", "/my/{parameter1}"), {"parameter1": "value1"})
    claims = {"claim1": "value1", "claim2": "value2"}
    event = apigw.build_event(request, match, claims=claims, now=1583348638.390)

    shape = _shape(event)
    shape["headers"] = _shape(AWS_DOCUMENTED_EVENT["headers"])  # we add x-forwarded-* as API Gateway does
    assert shape == _shape(AWS_DOCUMENTED_EVENT)
    for key in (
        "cookies",
        "queryStringParameters",
        "rawQueryString",
        "pathParameters",
        "body",
        "isBase64Encoded",
    ):
        assert event[key] == AWS_DOCUMENTED_EVENT[key], key
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /my/{parameter1}"
    assert (event["headers"]["header1"], event["headers"]["header2"]) == ("value1", "value1,value2")
    context = event["requestContext"]
    assert context["http"] == AWS_DOCUMENTED_EVENT["requestContext"]["http"]
    # (The guide's example disagrees with itself: its timeEpoch is 04/Mar, its time says 12/Mar.)
    assert (context["time"], context["timeEpoch"]) == ("04/Mar/2020:19:03:58 +0000", 1583348638390)

    parsed = APIGatewayProxyEventV2(event)
    assert parsed.request_context.authorizer.jwt_claim == claims
    assert parsed.get_query_string_value("parameter2") == "value"
    assert (parsed.cookies, parsed.decoded_body) == (["cookie1", "cookie2"], "Hello from Lambda")


def test_absent_parts_are_left_out_and_a_binary_body_is_base64():
    route = HttpRoute("Fn", "GET", "/health")
    event = apigw.build_event(
        apigw.Request("GET", "/health", "", [("Host", "127.0.0.1:3000")], b""), apigw.Match(route, {})
    )
    assert not {"cookies", "queryStringParameters", "pathParameters", "body"} & set(event)
    assert "authorizer" not in event["requestContext"]
    assert (event["isBase64Encoded"], event["requestContext"]["domainName"]) == (False, "127.0.0.1:3000")

    payload = bytes(range(256))
    event = apigw.build_event(apigw.Request("POST", "/u", "", [], payload), apigw.Match(route, {}))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


@pytest.mark.parametrize(
    ("result", "status", "headers", "body"),
    [
        (
            {
                "statusCode": 201,
                "headers": {"Content-Type": "image/png"},
                "cookies": ["a=1; Path=/", "b=2"],
                "body": base64.b64encode(b"\x89PNG\x00").decode(),
                "isBase64Encoded": True,
            },
            201,
            [("Content-Type", "image/png"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")],
            b"\x89PNG\x00",
        ),
        ({"statusCode": 204}, 204, [], b""),
        ({"message": "hi"}, 200, [("Content-Type", "application/json")], b'{"message": "hi"}'),
        ("Hello from Lambda!", 200, [("Content-Type", "application/json")], b"Hello from Lambda!"),
        (None, 200, [("Content-Type", "application/json")], b"null"),
    ],
)
def test_results_map_as_api_gateway_maps_them(result, status, headers, body):
    assert apigw.map_result(result) == apigw.Response(status, headers, body)


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 200, "body": "!", "isBase64Encoded": True},
        {"x": object()},
    ],
)
def test_results_api_gateway_cannot_map_raise(result):
    with pytest.raises((ValueError, TypeError)):
        apigw.map_result(result)
