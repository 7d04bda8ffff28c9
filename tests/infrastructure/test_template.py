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


def test_every_function_directory_is_a_handler_of_the_template_and_vice_versa(template):
    """API, SQS and schedule functions share the one `functions/` code asset with module-path
    handlers (`transfer_create.app.handler`); no second list of function directories exists."""
    on_disk = {p.parent.name for p in (sam.ROOT / "functions").glob("*/app.py")}
    declared = set()
    for lid, res in sam.sam_functions(template).items():
        props = res["Properties"]
        if props["CodeUri"] == "functions/":
            module, attribute = props["Handler"].rsplit(".", 1)
            assert attribute == "handler", lid
            assert (sam.ROOT / "functions" / (module.replace(".", "/") + ".py")).is_file(), lid
            declared.add(module.split(".")[0])
        elif props["CodeUri"].startswith("functions/"):
            assert props["Handler"] == "app.handler", lid
            declared.add(props["CodeUri"].strip("/").removeprefix("functions/"))
    assert declared == on_disk
    assert sam.sam_functions(template)[sam.MIGRATION]["Properties"]["CodeUri"] == "migrations/"


def test_route_table_rows_and_api_functions_agree(template):
    """Each row of the Routes mapping is one API function with that method, path and authorizer."""
    rows = sam.route_table(template)
    api_functions = {
        lid.removesuffix("Function")
        for lid in sam.sam_functions(template)
        if any(
            e["Type"] == "HttpApi"
            for e in (template["Resources"][lid]["Properties"].get("Events") or {}).values()
        )
    }
    assert set(rows) == api_functions, "add the route's name to both the Routes table and Fn::ForEach::Routes"
    for name, row in rows.items():
        props = template["Resources"][f"{name}Function"]["Properties"]
        (event,) = props["Events"].values()
        assert event["Properties"]["Method"] == row["Method"], name
        assert event["Properties"]["Path"] == row["Path"], name
        assert event["Properties"]["Auth"] == {
            "Authorizer": row["Auth"],
            "AuthorizationScopes": row["Scopes"],
        }
        assert props["Handler"] == row["Handler"], name
        route = props["Environment"]["Variables"]["WALLET_ROUTE"]
        assert route == {"Fn::Join": [" ", [row["Method"], row["Path"]]]}, name


def test_migrations_head_parameter_is_the_schema_head_of_this_build(template):
    assert template["Parameters"]["MigrationsHead"]["Default"] == SCHEMA_HEAD


# ---------------------------------------------------------------- aliases and CodeDeploy


def test_every_traffic_function_has_a_live_alias(template, environment):
    _, cfn = environment
    assert set(sam.route_table(template)) < {
        f.removesuffix("Function") for f in sam.traffic_functions(template)
    }
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
    groups = sam.resources(cfn, "AWS::CodeDeploy::DeploymentGroup")
    assert len(groups) == len(sam.traffic_functions(template))


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


def test_hook_permissions_read_the_deployment_exercise_this_stacks_functions_and_report(production):
    role = production["Resources"][f"{sam.HOOK}Role"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    granted = {(action, json.dumps(s["Resource"])) for s in statements for action in s["Action"]}
    deployment_group = json.dumps(
        {
            "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:"
            "deploymentgroup:${ServerlessDeploymentApplication}/*"
        }
    )
    functions = json.dumps(
        {
            "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-*"
        }
    )
    assert granted == {
        ("codedeploy:GetDeployment", deployment_group),
        ("codedeploy:PutLifecycleEventHookExecutionStatus", deployment_group),
        ("lambda:GetFunctionConfiguration", functions),
        ("lambda:InvokeFunction", functions),
    }
    assert "VPCAccess" not in json.dumps(role.get("ManagedPolicyArns"))


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


def _secret_statements(cfn: dict, function: str) -> list[dict]:
    role = cfn["Resources"][f"{function}Role"]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    return [s for s in statements if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])]


APP_SECRET = {"Fn::If": ["CreateDatabase", {"Ref": "AppDatabaseSecret"}, {"Ref": "DatabaseSecretArn"}]}


def test_app_functions_read_the_app_login_and_only_the_migration_the_owner(template, production):
    app_functions = [f for f in sam.database_functions(template) if f != sam.MIGRATION]
    assert set(sam.route_table(template)) - {"Version"} <= {f.removesuffix("Function") for f in app_functions}
    for function in app_functions:
        (secret,) = _secret_statements(production, function)
        assert secret["Resource"] == APP_SECRET, function
        env = production["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["DATABASE_URL"] == "", function  # declared for `sam local invoke --env-vars` only
        assert env["DATABASE_SECRET_ARN"] == APP_SECRET, function
    master = {"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]}
    migration = production["Resources"][sam.MIGRATION]["Properties"]["Environment"]["Variables"]
    assert migration["DATABASE_SECRET_ARN"]["Fn::If"][1] == master
    assert migration["APP_DATABASE_SECRET_ARN"] == APP_SECRET
    (statement,) = _secret_statements(production, sam.MIGRATION)
    assert statement["Resource"][0]["Fn::If"][1] == master
    assert statement["Resource"][1] == APP_SECRET
    secret = production["Resources"]["AppDatabaseSecret"]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "password"
    assert secret["SecretStringTemplate"] == {"Fn::Sub": '{"username": "${DatabaseUser}"}'}
    proxy_secrets = [a["SecretArn"] for a in production["Resources"]["DatabaseProxy"]["Properties"]["Auth"]]
    assert proxy_secrets == [{"Ref": "AppDatabaseSecret"}]  # the owner never goes through the proxy


def test_functions_without_database_get_no_secret_no_network_no_database_permission(template, production):
    for function in ("VersionFunction", sam.HOOK):
        props = production["Resources"][function]["Properties"]
        assert _secret_statements(production, function) == [], function
        assert "VpcConfig" not in props, function
        env = props["Environment"]["Variables"]
        assert env["DATABASE_SECRET_ARN"] == env["DATABASE_HOST"] == "", function
        managed = json.dumps(
            production["Resources"][f"{function}Role"]["Properties"].get("ManagedPolicyArns")
        )
        assert "DatabaseIamConnectPolicy" not in managed, function
        assert "VPCAccess" not in managed, function
        assert function not in sam.database_functions(template)
    version = production["Resources"]["VersionFunction"]["Properties"]
    assert "ReservedConcurrentExecutions" not in version
    assert version["Environment"]["Variables"]["CI_RUN_NUMBER"] == {"Ref": "CiRunNumber"}
    assert version["Environment"]["Variables"]["GIT_BRANCH"] == {"Ref": "GitBranch"}


# ---------------------------------------------------------------- bounded database connections


def test_every_database_function_has_bounded_concurrency(template, production):
    mappings = sam.resources(production, "AWS::Lambda::EventSourceMapping")
    bounded_by_mapping = {
        m["Properties"]["FunctionName"]["Ref"].split("Alias")[0]
        for m in mappings.values()
        if m["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
    }
    for function in set(sam.traffic_functions(template)) & set(sam.database_functions(template)):
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
    assert len(operations) == len(sam.route_table(template))
    for path, _, operation in operations:
        if path.startswith("/v1/"):
            assert operation["security"] in ([{"WalletJwt": []}], [{"WalletJwt": ["wallet:admin"]}]), path
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
        if path.startswith("/v1") and op["security"] == [{"NONE": []}]
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


def test_the_http_api_5xx_alarm_pages_but_rolls_nothing_back(production):
    alarm = production["Resources"][sam.HTTP_API_5XX_ALARM]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert dimensions["ApiId"] == {"Ref": "HttpApi"}
    for group in sam.resources(production, "AWS::CodeDeploy::DeploymentGroup").values():
        assert sam.HTTP_API_5XX_ALARM not in json.dumps(group), "cycle: alarm -> API -> alias -> group"


def test_iam_database_auth_is_one_switch_scoped_to_one_proxy_or_cluster(template, production):
    switch = {"Fn::If": ["UseIamAuth", {"Ref": "DatabaseIamConnectPolicy"}, {"Ref": "AWS::NoValue"}]}
    database_functions = sam.database_functions(template)
    assert "MigrationFunction" in database_functions
    for name in database_functions:
        assert switch in production["Resources"][f"{name}Role"]["Properties"]["ManagedPolicyArns"], name
    (statement,) = production["Resources"]["DatabaseIamConnectPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Action"] == "rds-db:connect"
    assert statement["Resource"]["Fn::Sub"].endswith(":dbuser:${DatabaseResourceId}/${DatabaseUser}")
