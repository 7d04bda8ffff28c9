"""The local HTTP server answers every method as API Gateway would (no route: 404 JSON, never
http.server's 501 HTML), and serves /openapi.json and /docs without the internet."""

from __future__ import annotations

import http.client
import json

import pytest

from tools.local_runtime import docs
from tools.local_runtime.server import Gateway, LocalHttpServer


@pytest.fixture
def server(fake_host):
    running = LocalHttpServer(Gateway(fake_host), 0).start()
    yield running
    running.stop()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "BREW"])
def test_a_method_no_route_has_is_a_gateway_404_not_a_501(server, method):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.request(method, "/health")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"message": "Not Found"}


def test_docs_urls_are_served_before_routing(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.request("GET", "/openapi.json")
    response = connection.getresponse()
    document = json.loads(response.read())
    assert (response.status, document["openapi"]) == (200, "3.1.0")
    connection.request("GET", "/docs/swagger-ui.css")
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Type")) == (200, "text/css; charset=utf-8")
    assert len(response.read()) > 10_000
    connection.close()


def test_a_missing_document_is_a_problem_that_says_how_to_fix_it(tmp_path):
    response = docs.serve("GET", "/openapi.json", document=tmp_path / "missing.json")
    assert response.status == 503
    assert json.loads(response.body)["detail"].endswith("run `make openapi`")


def test_other_paths_and_methods_are_left_to_the_router():
    assert docs.serve("POST", "/openapi.json") is None
    assert docs.serve("GET", "/v1/wallets") is None
    assert docs.serve("GET", "/docs/../template.yaml") is None
