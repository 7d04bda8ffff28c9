"""README "Add a route", done literally in a temporary copy of the repository: one handler module,
one row in the Routes table (and its name in the Fn::ForEach list), nothing else. The local runtime
then serves the new route over HTTP, and the expanded template gives it everything a route has in
AWS: a function on the shared code asset, its `live` alias, its rollback alarms and its deployment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.infrastructure import sam
from tests.tools.local_runtime.conftest import request
from tools.local_runtime import auth
from tools.local_runtime.context import FunctionHost
from tools.local_runtime.server import Gateway, LocalHttpServer
from tools.local_runtime.template import Template, load_template

ROOT = Path(__file__).resolve().parents[3]

HANDLER = '''\
"""GET /v1/pings/{ping_id}: a throwaway route written by tests/tools/local_runtime/test_add_a_route.py."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http.api import create_app, logger

app = create_app()


@app.get("/v1/pings/<ping_id>")
def ping_get(ping_id: str):
    return {"ping": ping_id}


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
'''
ROW = (
    '    PingGet: {Handler: ping_get.app.handler, Method: GET, Path: "/v1/pings/{ping_id}",'
    " Auth: WalletJwt, Scopes: [], Memory: 256, Timeout: 10}\n"
)


@pytest.fixture(scope="module")
def repo_with_a_new_route(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__")
    for directory in ("functions", "layers", "migrations"):
        shutil.copytree(ROOT / directory, repo / directory, ignore=ignore)
    # Step 1: the handler module.
    (repo / "functions" / "ping_get").mkdir()
    (repo / "functions" / "ping_get" / "app.py").write_text(HANDLER)
    # Step 2: one table row, and the name in the Fn::ForEach list.
    text = (ROOT / "template.yaml").read_text()
    rows = "  Routes:\n"
    assert text.count(rows) == 1
    text = text.replace(rows, rows + ROW)
    listed = "    - [WalletCreate, "
    assert text.count(listed) == 1
    text = text.replace(listed, "    - [PingGet, WalletCreate, ")
    (repo / "template.yaml").write_text(text)
    return repo


def test_the_local_runtime_serves_the_new_route(repo_with_a_new_route):
    template = Template(repo_with_a_new_route / "template.yaml")
    assert "GET /v1/pings/{ping_id}" in {route.route_key for route in template.http_routes()}
    function = template.function("PingGetFunction")
    assert function.module_path == repo_with_a_new_route / "functions" / "ping_get" / "app.py"
    assert (function.memory_size, function.timeout) == (256, 10)
    assert function.environment["WALLET_ROUTE"] == "GET /v1/pings/{ping_id}"

    server = LocalHttpServer(Gateway(FunctionHost(template)), 0).start()
    try:
        status, _, raw = request(server, "GET", "/v1/pings/p-1", token=auth.issue_token("user-1"))
        assert (status, json.loads(raw)) == (200, {"ping": "p-1"})
        assert request(server, "GET", "/v1/pings/p-1")[0] == 401  # the route table's authorizer applies
    finally:
        server.stop()


def test_the_new_route_deploys_like_every_other(repo_with_a_new_route):
    production = sam.translate(sam.raw_template(), sam.overrides("production"))
    raw = load_template(repo_with_a_new_route / "template.yaml")
    cfn = sam.translate(raw, sam.overrides("production"))
    assert sam.check_live_aliases(raw, cfn) == []
    assert sam.check_deployment_groups(raw, cfn, "Canary10Percent5Minutes") == []
    assert sam.check_migration_first(raw, cfn) == []
    function = cfn["Resources"]["PingGetFunction"]["Properties"]
    assert function["Handler"] == "ping_get.app.handler"
    assert function["Code"] == production["Resources"]["TransferCreateFunction"]["Properties"]["Code"]
    new = set(cfn["Resources"]) - set(production["Resources"])
    assert {"PingGetFunction", "PingGetFunctionDeploymentGroup", "PingGetServerErrorsAlarm"} <= new
