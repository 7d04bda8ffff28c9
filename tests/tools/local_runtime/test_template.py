"""The template reader: the template expanded as CloudFormation does, the intrinsics a local run
resolves, and what the runtime learns from it (functions, routes, queues, event sources)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.local_runtime.template import ExpansionError, Resolver, Template, expand, load_yaml

ROOT = Path(__file__).resolve().parents[3]


def test_short_tags_load_as_their_long_form_and_the_loader_stays_safe():
    data = load_yaml("a: !GetAtt Queue.Arn\nb: !If [Cond, 1, !Ref Stage]\nc: !Sub x-${Stage}\n")
    assert data == {
        "a": {"Fn::GetAtt": ["Queue", "Arn"]},
        "b": {"Fn::If": ["Cond", 1, {"Ref": "Stage"}]},
        "c": {"Fn::Sub": "x-${Stage}"},
    }
    with pytest.raises(Exception, match="python/object"):
        load_yaml("x: !!python/object/apply:os.system ['true']")


@pytest.fixture
def resolver() -> Resolver:
    template = load_yaml(
        """
Parameters:
  Stage: {Type: String, Default: dev}
  Names: {Type: CommaDelimitedList, Default: "a, b"}
Conditions:
  IsDev: !Equals [!Ref Stage, dev]
  IsProd: !Equals [!Ref Stage, production]
  Both: !And [!Condition IsDev, !Not [!Condition IsProd]]
  Either: !Or [!Condition IsProd, !Condition IsDev]
"""
    )
    return Resolver(template, parameters={"Undeclared": "ignored"})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "Stage"}, "dev"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Ref": "Undeclared"}, "local-Undeclared"),  # a resource AWS would create
        ({"Fn::Sub": "${AWS::StackName}-${Stage}-${!Literal}"}, "wallet-local-dev-${Literal}"),
        (
            {"Fn::Sub": ["${A}/${Api.Endpoint}", {"A": {"Ref": "AWS::AccountId"}}]},
            "123456789012/local-Api.Endpoint",
        ),
        ({"Fn::If": ["IsProd", "yes", "no"]}, "no"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}, "a-dev"),
        ({"Fn::Select": [1, {"Ref": "Names"}]}, "b"),
        ({"Condition": "Both"}, True),
        ({"Condition": "Either"}, True),
        ({"Fn::ImportValue": "shared"}, "local-Fn::ImportValue"),
        ({"Fn::Select": [5, ["a"]]}, "local-Fn::Select"),
        ({"plain": {"Ref": "Stage"}}, {"plain": "dev"}),
        (
            {"keep": 1, "drop": {"Ref": "AWS::NoValue"}, "list": [1, {"Ref": "AWS::NoValue"}]},
            {"keep": 1, "list": [1]},
        ),
    ],
)
def test_resolver_evaluates_intrinsics(resolver, expression, expected):
    assert resolver.resolve(expression) == expected


def test_functions_queues_and_events_of_the_fake_project(fake_template):
    functions = fake_template.functions()
    echo, other = functions["EchoFunction"], functions["OtherFunction"]
    assert (echo.timeout, echo.memory_size, other.timeout) == (7, 256, 2)  # a function's own beats Globals
    assert echo.module_path == fake_template.root / "functions" / "echo" / "app.py"
    assert echo.environment["SHARED"] == "from-globals"
    assert (echo.environment["STAGE"], echo.environment["MODE"]) == ("dev", "relaxed")
    assert "OPTIONAL" not in echo.environment
    assert echo.environment["QUEUE_ARN"] == fake_template.queues()["WorkQueue"].arn
    assert fake_template.layer_dirs() == [fake_template.root / "layer"]

    queues = fake_template.queues()
    assert set(queues) == {"WorkQueue", "WorkDeadLetterQueue"}  # the conditional queue is not created
    work = queues["WorkQueue"]
    assert (work.dead_letter_id, work.max_receive_count, work.attributes) == (
        "WorkDeadLetterQueue",
        2,
        {"VisibilityTimeout": "1"},
    )
    routes = {(r.function_id, r.route_key, r.auth, tuple(r.scopes)) for r in fake_template.http_routes()}
    assert routes == {
        ("EchoFunction", "GET /v1/items/{item_id}", None, ()),
        ("EchoFunction", "GET /health", "NONE", ()),
        ("EchoFunction", "GET /v1/boom", None, ()),
        ("OtherFunction", "GET /v1/items", None, ()),
        ("OtherFunction", "GET /v1/items/special", None, ()),
        ("OtherFunction", "POST /v1/items/purge", "WalletJwt", ("items:admin", "wallet:admin")),
    }
    (source,) = fake_template.sqs_sources()
    assert (source.function_id, source.batch_size, source.report_batch_item_failures) == (
        "WorkerFunction",
        5,
        True,
    )
    assert source.queue_arn == work.arn


def test_parameter_overrides_change_conditions(fake_template_path):
    template = Template(fake_template_path, {"Stage": "production"})
    echo = template.function("EchoFunction")
    assert (echo.environment["MODE"], echo.environment["OPTIONAL"]) == ("strict", "set")
    assert "ProductionOnlyQueue" in template.queues()


def test_project_template_every_route_of_the_table_is_served_by_a_handler_on_disk():
    template = Template(ROOT / "template.yaml")
    routes = template.http_routes()
    assert {(r.function_id, r.queue_arn.rsplit(":", 1)[1]) for r in template.sqs_sources()} == {
        ("IngestEventsFunction", "wallet-local-ProviderEventsQueue")
    }
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


def test_language_extensions_are_expanded_as_cloudformation_does_before_the_sam_transform(tmp_path):
    expanded = expand(load_yaml(LOOPED))
    assert expanded["Transform"] == "AWS::Serverless-2016-10-31"
    assert set(expanded["Resources"]) == {"AlphaFunction", "BetaFunction"}
    beta = expanded["Resources"]["BetaFunction"]["Properties"]
    assert beta["Handler"] == "beta.app.handler"
    assert beta["Description"] == {"Fn::Sub": "Beta in ${AWS::StackName}"}
    assert beta["Events"] == {"Beta": {"Type": "HttpApi", "Properties": {"Method": "GET", "Path": "/b"}}}
    # A lookup by region is left for CloudFormation (a linter's transform would guess one).
    assert beta["Layers"] == [{"Fn::FindInMap": ["Layers", {"Ref": "AWS::Region"}, "Arm64"]}]

    plain = load_yaml("Transform: AWS::Serverless-2016-10-31\nResources: {A: {Type: AWS::SNS::Topic}}")
    assert expand(plain) is plain
    with pytest.raises(ExpansionError, match="Duplicate"):
        expand(load_yaml(LOOPED.replace("- [Alpha, Beta]", "- [Alpha, Alpha]")))

    (tmp_path / "template.yaml").write_text(LOOPED)
    template = Template(tmp_path / "template.yaml")
    assert {(r.function_id, r.route_key) for r in template.http_routes()} == {
        ("AlphaFunction", "GET /a"),
        ("BetaFunction", "GET /b"),
    }
