"""The test client finds a request's function as API Gateway would: by method and path pattern in
template.yaml's route table, the most specific route winning."""

from __future__ import annotations

import re

import pytest

from tests.support.routes import resolve, route_table


def test_every_row_of_the_route_table_serves_its_own_pattern():
    for route in route_table():
        concrete = re.sub(r"\{\w+\}", "some-id", route.path)

        found, parameters = resolve(route.method, concrete)

        assert found == route
        assert parameters == dict.fromkeys(route.variables, "some-id")


def test_a_literal_route_wins_over_one_with_a_variable_and_methods_are_distinct():
    assert resolve("GET", "/v1/wallets")[0].module == "wallet_list"
    assert resolve("POST", "/v1/wallets")[0].module == "wallet_create"
    assert resolve("GET", "/v1/wallets/w-1")[1] == {"wallet_id": "w-1"}
    assert resolve("GET", "/v1/wallets/w-1")[0].module == "wallet_get"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nowhere"), ("DELETE", "/v1/wallets"), ("GET", "/v1/wallets/a/b")]
)
def test_a_request_no_route_serves_is_a_lookup_error(method, path):
    with pytest.raises(LookupError, match=r"no route in template\.yaml"):
        resolve(method, path)
