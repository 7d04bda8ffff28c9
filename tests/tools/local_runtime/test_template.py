"""The template reader: CloudFormation short tags, the intrinsics a local run resolves, and what the
runtime learns from template.yaml (functions, routes, queues, event sources)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tools.local_runtime.template import NO_VALUE, ExpansionError, Resolver, Template, expand, load_yaml

ROOT = Path(__file__).resolve().parents[3]


def test_every_short_tag_loads_as_its_long_form():
    text = """
    a: !Ref Stage
    b: !Sub "x-${Stage}"
    c: !GetAtt Queue.Arn
    d: !If [Cond, 1, 2]
    e: !Equals [a, b]
    f: !Join [",", [a, b]]
    g: !Select [0, [a]]
    h: !FindInMap [M, k, v]
    i: !Not [!Condition C]
    j: !And [!Condition C, !Condition D]
    k: !Or [!Condition C, !Condition D]
    l: !ImportValue shared-vpc
    m: !Split [",", "a,b"]
    n: !Base64 hello
    o: !Cidr [10.0.0.0/16, 2, 8]
    p: !GetAZs ""
    q: !GetAtt [Queue, QueueName]
    """
    data = load_yaml(text.replace("\n    ", "\n"))
    assert data["a"] == {"Ref": "Stage"}
    assert data["b"] == {"Fn::Sub": "x-${Stage}"}
    assert data["c"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert data["d"] == {"Fn::If": ["Cond", 1, 2]}
    assert data["i"] == {"Fn::Not": [{"Condition": "C"}]}
    assert data["l"] == {"Fn::ImportValue": "shared-vpc"}
    assert data["o"] == {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}
    assert data["p"] == {"Fn::GetAZs": ""}
    assert data["q"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert set(data) == set("abcdefghijklmnopq")


def test_loader_stays_safe():
    with pytest.raises(yaml.constructor.ConstructorError):
        load_yaml("x: !!python/object/apply:os.system ['true']")


@pytest.fixture
def resolver() -> Resolver:
    template = load_yaml(
        """
Parameters:
  Stage: {Type: String, Default: dev}
  Names: {Type: CommaDelimitedList, Default: [a, b]}
Mappings:
  Sizes: {dev: {memory: 256}}
Conditions:
  IsDev: !Equals [!Ref Stage, dev]
  IsProd: !Equals [!Ref Stage, production]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition IsDev, !Condition NotProd]
  Either: !Or [!Condition IsProd, !Condition IsDev]
Resources:
  Api: {Type: AWS::Serverless::HttpApi}
  Fn: {Type: AWS::Serverless::Function}
"""
    )
    return Resolver(template, parameters={"Extra": "override"})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "Stage"}, "dev"),
        ({"Ref": "Extra"}, "override"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Ref": "Api"}, "local-Api"),
        ({"Fn::Sub": "${AWS::StackName}-${Stage}-${!Literal}"}, "wallet-local-dev-${Literal}"),
        ({"Fn::Sub": ["${A}/${Stage}", {"A": {"Ref": "AWS::AccountId"}}]}, "123456789012/dev"),
        ({"Fn::Sub": "${Fn.Arn}"}, "arn:aws:lambda:us-east-1:123456789012:function:Fn"),
        ({"Fn::GetAtt": ["Fn", "Arn"]}, "arn:aws:lambda:us-east-1:123456789012:function:Fn"),
        ({"Fn::GetAtt": ["Api", "ApiEndpoint"]}, "local-Api.ApiEndpoint"),
        ({"Fn::If": ["IsDev", "yes", "no"]}, "yes"),
        ({"Fn::If": ["IsProd", "yes", "no"]}, "no"),
        ({"Fn::Equals": [{"Ref": "Stage"}, "dev"]}, True),
        ({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}, "a-dev"),
        ({"Fn::Select": [1, {"Ref": "Names"}]}, "b"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "x,y"]}]}, "y"),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "memory"]}, 256),
        ({"Fn::Base64": "hi"}, "aGk="),
        ({"Condition": "Both"}, True),
        ({"Condition": "Either"}, True),
        ({"Condition": "Unknown"}, False),
        ({"Fn::ImportValue": "shared"}, "local-ImportValue"),
        ({"Fn::FindInMap": ["Nope", "x", "y"]}, "local-FindInMap"),
    ],
)
def test_resolver_evaluates_intrinsics(resolver, expression, expected):
    assert resolver.resolve(expression) == expected


def test_no_value_removes_keys_and_list_items(resolver):
    resolved = resolver.resolve(
        {
            "keep": 1,
            "drop": {"Fn::If": ["IsProd", 2, {"Ref": "AWS::NoValue"}]},
            "list": [1, {"Ref": "AWS::NoValue"}],
        }
    )
    assert resolved == {"keep": 1, "list": [1]}
    assert NO_VALUE not in resolved.values()


def test_functions_merge_globals_and_resolve_environment(fake_template):
    functions = fake_template.functions()
    echo, other = functions["EchoFunction"], functions["OtherFunction"]
    assert (echo.timeout, echo.memory_size) == (7, 256)
    assert other.timeout == 2  # the function's own Timeout beats Globals
    assert echo.handler == "app.handler"
    assert echo.module_path == fake_template.root / "functions" / "echo" / "app.py"
    assert echo.environment["STAGE"] == "dev"
    assert echo.environment["SHARED"] == "from-globals"
    assert echo.environment["MODE"] == "relaxed"
    assert "OPTIONAL" not in echo.environment
    assert echo.environment["QUEUE_ARN"].startswith("arn:aws:sqs:us-east-1:123456789012:t")
    assert fake_template.layer_dirs() == [fake_template.root / "layer"]


def test_parameter_overrides_change_conditions(fake_template_path):
    template = Template(fake_template_path, {"Stage": "production"})
    echo = template.function("EchoFunction")
    assert echo.environment["MODE"] == "strict"
    assert echo.environment["OPTIONAL"] == "set"
    assert "ProductionOnlyQueue" in template.queues()


def test_queues_link_redrive_policy_to_the_dead_letter_queue(fake_template):
    queues = fake_template.queues()
    assert set(queues) == {"WorkQueue", "WorkDeadLetterQueue"}  # the conditional queue is not created
    work = queues["WorkQueue"]
    assert work.name.endswith("-work")
    assert work.dead_letter_id == "WorkDeadLetterQueue"
    assert work.max_receive_count == 2
    assert work.attributes == {"VisibilityTimeout": "1"}


def test_http_routes_and_sqs_sources(fake_template):
    routes = {(r.function_id, r.route_key) for r in fake_template.http_routes()}
    assert routes == {
        ("EchoFunction", "GET /v1/items/{item_id}"),
        ("EchoFunction", "ANY /v1/files/{proxy+}"),
        ("EchoFunction", "GET /health"),
        ("EchoFunction", "GET /v1/boom"),
        ("OtherFunction", "GET /v1/items"),
        ("OtherFunction", "GET /v1/items/special"),
        ("OtherFunction", "POST /v1/items/purge"),
    }
    scoped = {r.route_key: r.scopes for r in fake_template.http_routes() if r.scopes}
    assert scoped == {"POST /v1/items/purge": ["items:admin", "wallet:admin"]}
    (source,) = fake_template.sqs_sources()
    assert source.function_id == "WorkerFunction"
    assert source.batch_size == 5
    assert source.report_batch_item_failures
    assert source.queue_arn == fake_template.queues()["WorkQueue"].arn


def test_project_template_every_http_api_event_becomes_a_route():
    """The real template.yaml: one route per HttpApi event, each with a handler file on disk."""
    template = Template(ROOT / "template.yaml")
    raw = template.raw["Resources"]
    declared = {
        (logical_id, event_id)
        for logical_id, resource in raw.items()
        if resource.get("Type") == "AWS::Serverless::Function"
        for event_id, event in (resource["Properties"].get("Events") or {}).items()
        if event.get("Type") == "HttpApi"
    }
    routes = template.http_routes()
    assert {(r.function_id, r.event_id) for r in routes} == declared
    assert len({r.route_key for r in routes}) == len(routes), "two events declare the same route"
    assert {"GET /health", "GET /ready", "GET /version", "POST /v1/transfers"} <= {
        r.route_key for r in routes
    }
    admin = {r.route_key for r in routes if r.scopes == ["wallet:admin"]}
    assert {"POST /v1/wallets/{wallet_id}/credits", "POST /v1/holds"} <= admin
    assert "POST /v1/transfers" not in admin
    functions = template.functions()
    assert "MigrationFunction" in functions
    for route in routes:
        assert functions[route.function_id].module_path.is_file(), route


LOOPED = """
Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]
Mappings:
  Rows:
    Alpha: {Handler: alpha.app.handler, Path: /a}
    Beta: {Handler: beta.app.handler, Path: /b}
  Layers:
    us-east-1: {Arm64: arn-use1}
    eu-west-1: {Arm64: arn-euw1}
Resources:
  Fn::ForEach::Rows:
    - Name
    - [Alpha, Beta]
    - ${Name}Function:
        Type: AWS::Serverless::Function
        Properties:
          Handler: !FindInMap [Rows, !Ref Name, Handler]
          Layers: [!FindInMap [Layers, !Ref AWS::Region, Arm64]]
          Description: !Sub "${Name} in ${AWS::StackName}"
          Events:
            ${Name}: {Type: HttpApi, Properties: {Method: GET, Path: !FindInMap [Rows, !Ref Name, Path]}}
"""


def test_language_extensions_are_expanded_as_cloudformation_does_before_the_sam_transform():
    expanded = expand(load_yaml(LOOPED))
    assert expanded["Transform"] == "AWS::Serverless-2016-10-31"
    assert set(expanded["Resources"]) == {"AlphaFunction", "BetaFunction"}
    beta = expanded["Resources"]["BetaFunction"]["Properties"]
    assert beta["Handler"] == "beta.app.handler"
    assert beta["Description"] == {"Fn::Sub": "Beta in ${AWS::StackName}"}
    assert beta["Events"] == {"Beta": {"Type": "HttpApi", "Properties": {"Method": "GET", "Path": "/b"}}}
    # A lookup by region is left for CloudFormation (a linter's transform would guess one).
    assert beta["Layers"] == [{"Fn::FindInMap": ["Layers", {"Ref": "AWS::Region"}, "Arm64"]}]


def test_a_template_without_language_extensions_is_read_unchanged():
    plain = load_yaml("Transform: AWS::Serverless-2016-10-31\nResources: {A: {Type: AWS::SNS::Topic}}")
    assert expand(plain) is plain


def test_an_invalid_loop_is_refused_with_the_transform_error():
    broken = LOOPED.replace("- [Alpha, Beta]", "- [Alpha, Alpha]")
    with pytest.raises(ExpansionError, match="Duplicate"):
        expand(load_yaml(broken))


def test_the_local_runtime_reads_the_expanded_route_table(tmp_path):
    (tmp_path / "template.yaml").write_text(LOOPED)
    template = Template(tmp_path / "template.yaml")
    assert {(r.function_id, r.route_key) for r in template.http_routes()} == {
        ("AlphaFunction", "GET /a"),
        ("BetaFunction", "GET /b"),
    }
    assert template.function("AlphaFunction").handler == "alpha.app.handler"
