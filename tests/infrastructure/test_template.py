"""template.yaml as CloudFormation sees it after the SAM transform, for the staging and production
values of samconfig.toml: safe deployment (aliases, CodeDeploy, alarms, PreTraffic hook), the
migration before any traffic, least privilege, bounded database connections, the ingestion queue.
Each check is also run against a deliberately broken copy, to prove it can fail."""

from __future__ import annotations

import copy
import json
import re

import pytest

from tests.infrastructure import sam
from wallet_core.schema_version import SCHEMA_HEAD

ENVIRONMENTS = ["staging", "production"]


@pytest.fixture(params=ENVIRONMENTS)
def environment(request, staging, production) -> tuple[str, dict]:
    return request.param, {"staging": staging, "production": production}[request.param]


def broken(template: dict, environment: str = "production", **edits) -> tuple[dict, dict]:
    """A translated copy of template.yaml after `edit(copy)`; returns (raw copy, CloudFormation)."""
    raw = copy.deepcopy(template)
    for edit in edits.values():
        edit(raw)
    return raw, sam.translate(raw, sam.overrides(environment))


# ---------------------------------------------------------------- the configuration itself


def test_samconfig_stages_and_deployment_types():
    assert sam.overrides("staging")["DeploymentType"] == "AllAtOnce"
    assert sam.overrides("production")["DeploymentType"].startswith("Canary")
    for environment, stage in [("default", "dev"), ("staging", "staging"), ("production", "production")]:
        assert sam.overrides(environment)["Stage"] == stage
        assert sam.stack_name(environment) == f"wallet-{stage}"
        deploy = sam.samconfig()[environment]["deploy"]["parameters"]
        assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
        assert deploy["resolve_s3"] is True
    assert sam.samconfig()["production"]["deploy"]["parameters"]["confirm_changeset"] is False


def test_samconfig_holds_no_secret():
    for environment in ("default", "staging", "production"):
        names = set(sam.overrides(environment))
        assert not names & {"DatabaseUrl", "DatabasePassword", "Password"}, environment


def test_every_function_directory_is_in_the_template_and_vice_versa(template):
    on_disk = {p.parent.name for p in (sam.ROOT / "functions").glob("*/app.py")}
    declared = {
        res["Properties"]["CodeUri"].strip("/").removeprefix("functions/")
        for res in sam.sam_functions(template).values()
        if res["Properties"]["CodeUri"].startswith("functions/")
    }
    assert declared == on_disk
    for lid, res in sam.sam_functions(template).items():
        assert res["Properties"]["Handler"] == "app.handler", lid
        assert (sam.ROOT / res["Properties"]["CodeUri"] / "app.py").is_file(), lid
    assert sam.sam_functions(template)[sam.MIGRATION]["Properties"]["CodeUri"] == "migrations/"


def test_migrations_head_parameter_is_the_schema_head_of_this_build(template):
    assert template["Parameters"]["MigrationsHead"]["Default"] == SCHEMA_HEAD


# ---------------------------------------------------------------- aliases and CodeDeploy


def test_every_traffic_function_has_a_live_alias(template, environment):
    _, cfn = environment
    assert len(sam.traffic_functions(template)) == 23
    assert sam.check_live_aliases(template, cfn) == []


def test_check_notices_a_function_without_alias(template):
    def drop_alias(raw):
        raw["Resources"]["TransferCreateFunction"]["Properties"]["AutoPublishAlias"] = ""
        raw["Resources"]["TransferCreateFunction"]["Properties"].pop("DeploymentPreference")

    raw, cfn = broken(template, drop_alias=drop_alias)
    assert sam.check_live_aliases(raw, cfn) == ["TransferCreateFunction: no `live` alias"]


@pytest.mark.parametrize(
    ("env", "expected"), [("staging", "AllAtOnce"), ("production", "Canary10Percent5Minutes")]
)
def test_deployment_group_per_function_with_alarms_hook_and_stage_config(
    template, staging, production, env, expected
):
    cfn = {"staging": staging, "production": production}[env]
    assert sam.check_deployment_groups(template, cfn, expected) == []
    assert len(sam.resources(cfn, "AWS::CodeDeploy::DeploymentGroup")) == 23


def test_check_notices_missing_alarm_wrong_config_and_missing_hook(template, production):
    assert sam.check_deployment_groups(template, production, "AllAtOnce")  # production is a canary

    def drop_alarm(raw):
        raw["Resources"]["DebitCreateFunction"]["Properties"]["DeploymentPreference"]["Alarms"].pop()

    def drop_hook(raw):
        raw["Resources"]["HoldVoidFunction"]["Properties"]["DeploymentPreference"].pop("Hooks")

    raw, cfn = broken(template, drop_alarm=drop_alarm, drop_hook=drop_hook)
    problems = sam.check_deployment_groups(raw, cfn, "Canary10Percent5Minutes")
    assert any(p.startswith("DebitCreateFunction: deployment alarms") for p in problems)
    assert "HoldVoidFunction: PreTraffic hook is None" in problems
    assert len(problems) == 2


def test_alarms_watch_the_live_alias_and_notify_the_optional_topic(production):
    alarms = sam.resources(production, "AWS::CloudWatch::Alarm")
    latency = alarms["TransferCreateLatencyAlarm"]["Properties"]
    assert latency["MetricName"] == "Duration"
    assert latency["ExtendedStatistic"] == "p99"
    for name, alarm in alarms.items():
        assert "AlarmActions" in alarm["Properties"], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name


# ---------------------------------------------------------------- migration before traffic


def test_schema_migration_custom_resource(template, production):
    migration = production["Resources"][sam.SCHEMA_MIGRATION]
    assert migration["Type"] == "Custom::SchemaMigration"
    props = migration["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["MigrationFunction", "Arn"]}
    assert props["SchemaHead"] == {"Ref": "MigrationsHead"}
    assert "GitSha" in props["CodeVersion"]["Fn::Sub"]  # reruns (idempotently) on every deploy
    function = production["Resources"][sam.MIGRATION]["Properties"]
    assert function["Timeout"] == 300
    assert function["ReservedConcurrentExecutions"] == 1
    writer = function["Environment"]["Variables"]["DATABASE_HOST"]
    assert writer["Fn::If"][1] == {"Fn::GetAtt": ["DatabaseCluster", "Endpoint.Address"]}
    # ... while everything else goes through the proxy.
    api_host = production["Resources"]["TransferCreateFunction"]["Properties"]["Environment"]["Variables"]
    assert api_host["DATABASE_HOST"]["Fn::If"][1] == {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}


def test_every_traffic_function_and_its_alias_wait_for_the_migration(template, environment):
    _, cfn = environment
    assert sam.check_migration_first(template, cfn) == []


def test_check_notices_a_function_that_does_not_wait_for_the_migration(template):
    def drop(raw):
        raw["Resources"]["WalletGetFunction"].pop("DependsOn")

    raw, cfn = broken(template, drop=drop)
    problems = sam.check_migration_first(raw, cfn)
    assert "WalletGetFunction: does not DependsOn SchemaMigration" in problems
    assert all(p.startswith("WalletGetFunction") for p in problems)


# ---------------------------------------------------------------- the layer publishes versions


def _versions(cfn: dict) -> dict[str, str]:
    return {
        res["Properties"]["FunctionName"]["Ref"]: lid
        for lid, res in sam.resources(cfn, "AWS::Lambda::Version").items()
    }


def test_layer_change_alone_publishes_a_new_version_of_every_function(template, production):
    changed = sam.translate(template, sam.overrides("production"), salt={"layers/common": "-changed"})
    (layer,) = sam.resources(production, "AWS::Lambda::LayerVersion")
    (new_layer,) = sam.resources(changed, "AWS::Lambda::LayerVersion")
    assert layer.startswith("WalletCoreLayer")
    assert new_layer != layer  # a new LayerVersion resource ...
    for function in sam.traffic_functions(template):
        assert {"Ref": layer} in production["Resources"][function]["Properties"]["Layers"]
        assert {"Ref": new_layer} in changed["Resources"][function]["Properties"]["Layers"]
    before, after = _versions(production), _versions(changed)
    for function in sam.traffic_functions(template):  # ... and a new version behind every `live`
        assert before[function] != after[function], function


def test_without_publish_lambda_version_a_layer_change_would_not_reach_live(template):
    raw = copy.deepcopy(template)
    raw["Resources"]["WalletCoreLayer"]["Properties"].pop("PublishLambdaVersion")
    before = sam.translate(raw, sam.overrides("production"))
    after = sam.translate(raw, sam.overrides("production"), salt={"layers/common": "-changed"})
    assert _versions(before)["TransferCreateFunction"] == _versions(after)["TransferCreateFunction"]


# ---------------------------------------------------------------- the PreTraffic hook


def test_hook_name_and_target(template, production):
    hook = production["Resources"][sam.HOOK]["Properties"]
    name = hook["FunctionName"]
    for stack in ("wallet-production", "wallet-staging", "x" * sam.LONGEST_STACK_NAME):
        resolved = sam.sub_text(name, {"AWS::StackName": stack})
        assert resolved.startswith("CodeDeployHook_")
        assert len(resolved) <= sam.HOOK_NAME_LIMIT, resolved
    ready = hook["Environment"]["Variables"]["READY_FUNCTION_ARN"]
    assert ready["Ref"].startswith("ReadyFunctionVersion")  # the NEW version, not $LATEST or live
    assert "VpcConfig" not in hook or hook["VpcConfig"] == {"Ref": "AWS::NoValue"}
    # The hook itself is not traffic-shifted by CodeDeploy.
    assert f"{sam.HOOK}DeploymentGroup" not in production["Resources"]


def test_hook_permissions_are_exactly_invoke_probe_and_report_status(production):
    role = production["Resources"][f"{sam.HOOK}Role"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    actions = {s["Action"] for s in statements}
    assert actions == {"lambda:InvokeFunction", "codedeploy:PutLifecycleEventHookExecutionStatus"}
    invoke = next(s for s in statements if s["Action"] == "lambda:InvokeFunction")
    assert {"Fn::GetAtt": ["ReadyFunction", "Arn"]} in invoke["Resource"]
    report = next(s for s in statements if s["Action"].startswith("codedeploy:"))
    assert ":deploymentgroup:${ServerlessDeploymentApplication}/" in report["Resource"]["Fn::Sub"]


# ---------------------------------------------------------------- least privilege


def test_no_iam_statement_has_a_wildcard_action(environment):
    _, cfn = environment
    assert list(sam.iam_statements(cfn))
    assert sam.check_no_wildcard_actions(cfn) == []


def test_check_notices_a_wildcard_action(template):
    def widen(raw):
        policies = raw["Resources"]["IngestEventsFunction"]["Properties"]["Policies"]
        policies.append({"Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]})

    _, cfn = broken(template, widen=widen)
    assert sam.check_no_wildcard_actions(cfn) == ["IngestEventsFunctionRole: wildcard action 'sqs:*'"]


def test_database_secret_is_read_by_arn_only(template, production):
    for function in [*sam.traffic_functions(template), sam.MIGRATION]:
        role = production["Resources"][f"{function}Role"]["Properties"]
        statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
        secret = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
        assert len(secret) == 1, function
        assert secret[0]["Resource"]["Fn::If"][1] == {
            "Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]
        }
        env = production["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert "DATABASE_URL" not in env, function
        assert env["DATABASE_SECRET_ARN"] == secret[0]["Resource"], function


# ---------------------------------------------------------------- bounded database connections


def test_every_database_function_has_bounded_concurrency(template, production):
    mappings = sam.resources(production, "AWS::Lambda::EventSourceMapping")
    bounded_by_mapping = {
        m["Properties"]["FunctionName"]["Ref"].split("Alias")[0]
        for m in mappings.values()
        if m["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
    }
    for function in sam.traffic_functions(template):
        props = production["Resources"][function]["Properties"]
        assert "ReservedConcurrentExecutions" in props or function in bounded_by_mapping, function


# ---------------------------------------------------------------- the ingestion queue


def _deployed_value(cfn: dict, value):
    """A literal, or the default of the parameter it refers to (local runs override those)."""
    if isinstance(value, dict) and "Ref" in value:
        return int(cfn["Parameters"][value["Ref"]]["Default"])
    return value


def test_ingestion_queue_dead_letter_queue_and_event_source(production):
    queue = production["Resources"]["ProviderEventsQueue"]["Properties"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ProviderEventsDeadLetterQueue", "Arn"]}
    assert 3 <= _deployed_value(production, redrive["maxReceiveCount"]) <= 10
    assert queue["SqsManagedSseEnabled"] is True
    timeout = production["Resources"]["IngestEventsFunction"]["Properties"]["Timeout"]
    assert _deployed_value(production, queue["VisibilityTimeout"]) >= 6 * timeout
    (mapping,) = sam.resources(production, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["ProviderEventsQueue", "Arn"]}
    assert props["FunctionName"] == {"Ref": "IngestEventsFunctionAliaslive"}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] >= 2
    assert 10 <= props["BatchSize"] <= 100


def test_dead_letter_and_drift_alarms_watch_what_the_code_emits(production):
    from wallet_core.sqs import consumer

    alarms = sam.resources(production, "AWS::CloudWatch::Alarm")
    dlq = alarms["ProviderEventsDeadLetterAlarm"]["Properties"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ProviderEventsDeadLetterQueue", "QueueName"]}
    drift = alarms["ReconciliationDriftAlarm"]["Properties"]
    assert drift["MetricName"] == consumer.DRIFT_METRIC
    env = production["Resources"]["IngestEventsFunction"]["Properties"]["Environment"]["Variables"]
    assert drift["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert drift["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]


# ---------------------------------------------------------------- routes and auth


def _operations(cfn: dict):
    body = cfn["Resources"]["HttpApi"]["Properties"]["Body"]
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_v1_route_uses_the_jwt_authorizer_and_probes_none(template, environment):
    _, cfn = environment
    operations = list(_operations(cfn))
    assert len(operations) == 21
    for path, method, operation in operations:
        if path.startswith("/v1/"):
            assert operation["security"] == [{"WalletJwt": []}], (path, method)
        else:
            assert path in {"/health", "/ready", "/version"}
            assert operation["security"] == [{"NONE": []}], path
        uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        assert re.search(r"\$\{\w+FunctionAliaslive\}", uri), (path, "must invoke the live alias")
    authorizer = cfn["Resources"]["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    assert authorizer["WalletJwt"]["x-amazon-apigateway-authorizer"]["type"] == "jwt"


def test_route_check_notices_a_v1_route_without_authorizer(template):
    def open_route(raw):
        event = raw["Resources"]["WalletListFunction"]["Properties"]["Events"]["WalletList"]
        event["Properties"]["Auth"] = {"Authorizer": "NONE"}

    _, cfn = broken(template, open_route=open_route)
    opened = [
        path
        for path, _, op in _operations(cfn)
        if path.startswith("/v1") and op["security"] != [{"WalletJwt": []}]
    ]
    assert opened == ["/v1/wallets"]


def test_api_stage_has_access_logs_and_throttling(production):
    (stage,) = sam.resources(production, "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_functions_log_to_a_group_with_retention(template, production):
    group = production["Resources"]["FunctionLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for function in sam.sam_functions(template):
        logging = production["Resources"][function]["Properties"]["LoggingConfig"]
        assert logging["LogGroup"] == {"Ref": "FunctionLogGroup"}, function


def test_every_function_runs_arm64_python313_traced_with_the_secrets_extension(template, production):
    for function in sam.sam_functions(template):
        props = production["Resources"][function]["Properties"]
        assert props["Runtime"] == "python3.13", function
        assert props["Architectures"] == ["arm64"], function
        assert props["TracingConfig"] == {"Mode": "Active"}, function
        extension = props["Layers"][1]["Fn::If"][2]
        assert extension == {"Fn::FindInMap": ["SecretsExtension", {"Ref": "AWS::Region"}, "Arm64"]}, function
    for region in template["Mappings"]["SecretsExtension"].values():
        assert re.fullmatch(
            r"arn:aws:lambda:[a-z0-9-]+:\d{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:\d+",
            region["Arm64"],
        )


def test_the_http_api_5xx_alarm_watches_this_api(production):
    alarm = production["Resources"][sam.HTTP_API_5XX_ALARM]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert dimensions["ApiId"] == {"Ref": "HttpApi"}


def test_iam_database_auth_is_one_switch_that_every_database_function_follows(template, production):
    switch = {"Fn::If": ["UseIamAuth", {"Ref": "DatabaseIamConnectPolicy"}, {"Ref": "AWS::NoValue"}]}
    database_functions = [
        name
        for name, function in sam.sam_functions(template).items()
        if "ReadDatabaseSecret" in json.dumps(function["Properties"].get("Policies", []))
    ]
    assert "MigrationFunction" in database_functions
    assert len(database_functions) == len(sam.traffic_functions(template)) + 1
    for name in database_functions:
        assert switch in production["Resources"][f"{name}Role"]["Properties"]["ManagedPolicyArns"], name
    (statement,) = production["Resources"]["DatabaseIamConnectPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Action"] == "rds-db:connect"
    assert statement["Resource"]["Fn::Sub"].endswith(":dbuser:*/${DatabaseUser}")
