"""Deploy blockers and unsafe rollouts of issues #8 and #10 that live in template.yaml, each checked
on what CloudFormation receives (the production translation) or on the template's Rules evaluated
with a stage's parameters. Every test here failed on the template before these fixes."""

from __future__ import annotations

import json

import pytest

from tests.infrastructure import sam

# The contract's admin-only routes (wallet-api.md, "Routes"), plus the admin routes added since.
ADMIN_ROUTES = {
    "POST /v1/wallets/{wallet_id}/credits",
    "POST /v1/wallets/{wallet_id}/debits",
    "POST /v1/transactions/{transaction_id}/reversals",
    "POST /v1/wallets/{wallet_id}/freeze",
    "POST /v1/wallets/{wallet_id}/unfreeze",
    "POST /v1/wallets/{wallet_id}/close",
    "POST /v1/holds",
    "POST /v1/holds/{hold_id}/capture",
    "POST /v1/holds/{hold_id}/void",
    "GET /v1/wallets/{wallet_id}/balance-snapshots",
    "GET /v1/settlements/unresolved",
}
REAL_NETWORK = {
    "SubnetIds": "subnet-0a1b2c3d4e5f60718,subnet-0a1b2c3d4e5f60719",
    "SecurityGroupIds": "sg-0a1b2c3d4e5f60718",
}
PRODUCTION = {
    "Stage": "production",
    "CreateDatabase": "true",
    "VpcId": "vpc-0a1b2c3d4e5f60718",
    "JwtIssuer": "https://login.wallet.example.org/",
    "ProviderBridgeRoleArn": "arn:aws:iam::111122223333:role/provider-bridge",
    **REAL_NETWORK,
}


# ---------------------------------------------------------------- Rules: refused before any change


def test_a_complete_production_configuration_passes_every_rule(template):
    assert sam.evaluate_rules(template, PRODUCTION) == []
    assert sam.evaluate_rules(template, {"DatabaseSecretArn": "arn:secret"}) == []  # dev: no network needed


@pytest.mark.parametrize("stage", ["staging", "production"])
@pytest.mark.parametrize("missing", ["SubnetIds", "SecurityGroupIds"])
def test_deployed_stages_refuse_a_missing_network_with_a_clear_message(template, stage, missing):
    failed = sam.evaluate_rules(
        template,
        {
            **PRODUCTION,
            "Stage": stage,
            "CreateDatabase": "false",
            "DatabaseSecretArn": "arn:secret",
            missing: "",
        },
    )
    assert any(message.startswith(f"{missing} is empty") for message in failed), failed


def test_production_refuses_the_placeholder_issuer(template):
    for issuer in ("https://auth.example.com/", "https://auth.example.com"):
        failed = sam.evaluate_rules(template, {**PRODUCTION, "JwtIssuer": issuer})
        assert len(failed) == 1
        assert failed[0].startswith("JwtIssuer is the auth.example.com placeholder")
    assert (
        sam.evaluate_rules(
            template, {**PRODUCTION, "Stage": "staging", "JwtIssuer": "https://auth.example.com/"}
        )
        == []
    )


def test_production_needs_the_provider_bridge_role(template):
    failed = sam.evaluate_rules(template, {**PRODUCTION, "ProviderBridgeRoleArn": ""})
    assert len(failed) == 1
    assert failed[0].startswith("ProviderBridgeRoleArn is empty")


def test_iam_database_auth_with_a_created_database_is_refused(template):
    failed = sam.evaluate_rules(
        template, {**PRODUCTION, "DatabaseIamAuth": "true", "DatabaseResourceId": "prx-0abc"}
    )
    assert len(failed) == 1
    assert "existing database" in failed[0]
    existing = {
        **PRODUCTION,
        "CreateDatabase": "false",
        "DatabaseSecretArn": "arn:secret",
        "DatabaseIamAuth": "true",
    }
    assert any("DatabaseResourceId" in m for m in sam.evaluate_rules(template, existing))
    assert sam.evaluate_rules(template, {**existing, "DatabaseResourceId": "prx-0abc"}) == []


def test_regions_without_a_secrets_extension_mapping_need_the_layer_arn(template):
    (failed,) = sam.evaluate_rules(template, PRODUCTION, region="ap-southeast-2")
    assert "SecretsExtensionLayerArn" in failed
    assert (
        sam.evaluate_rules(
            template, {**PRODUCTION, "SecretsExtensionLayerArn": "arn:layer"}, "ap-southeast-2"
        )
        == []
    )
    for region in template["Mappings"]["SecretsExtension"]:
        assert sam.evaluate_rules(template, PRODUCTION, region=region) == [], region


# ---------------------------------------------------------------- rollouts


def test_every_api_function_rolls_back_on_the_5xx_it_answers(template, production):
    namespace = production["Resources"]["HoldGetFunction"]["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    for name in set(sam.route_table(template)) - {"Version"}:
        alarm = production["Resources"][f"{name}ServerErrorsAlarm"]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, "HandledServerErrors"), name
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions == {"service": "wallet", "function_name": {"Fn::Sub": f"${{{name}Function}}"}}
        group = production["Resources"][f"{name}FunctionDeploymentGroup"]["Properties"]
        assert {"Name": {"Fn::Sub": f"${{{name}ServerErrorsAlarm}}"}} in group["AlarmConfiguration"]["Alarms"]


def test_a_flood_on_a_public_probe_cannot_trip_a_rollback_alarm(template, production):
    """Probes keep the full reserved concurrency (no tiny reservation), the gateway throttles them
    first, and throttling rolls back only as a rate over a minimum number of requests."""
    stage = next(iter(sam.resources(production, "AWS::ApiGatewayV2::Stage").values()))["Properties"]
    for name in ("Health", "Ready", "Version"):
        row = sam.route_table(template)[name]
        assert row["Auth"] == "NONE"
        limits = stage["RouteSettings"][f"{row['Method']} {row['Path']}"]
        assert 0 < limits["ThrottlingRateLimit"] <= 10, name
        assert 0 < limits["ThrottlingBurstLimit"] <= 10, name
        reserved = production["Resources"][f"{name}Function"]["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        assert reserved in (
            None,
            {
                "Fn::If": [
                    "HasApiReservedConcurrency",
                    {"Ref": "ApiReservedConcurrency"},
                    {"Ref": "AWS::NoValue"},
                ]
            },
        ), name
        throttles = production["Resources"][f"{name}ThrottlesAlarm"]["Properties"]
        rate = next(m for m in throttles["Metrics"] if m.get("ReturnData"))
        assert ">= 20" in rate["Expression"], name
        assert 0 < throttles["Threshold"] < 1, name


def test_log_groups_do_not_block_recreating_a_failed_first_create(production):
    groups = sam.resources(production, "AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert group["DeletionPolicy"] == "RetainExceptOnCreate", name


def test_migration_is_never_retried_and_cloudformation_does_not_wait_an_hour(template, production):
    configs = sam.resources(production, "AWS::Lambda::EventInvokeConfig").values()
    migration = [
        c["Properties"] for c in configs if c["Properties"]["FunctionName"] == {"Ref": sam.MIGRATION}
    ]
    assert {c["Qualifier"] for c in migration} == {"$LATEST", "live"}  # what CloudFormation invokes, and live
    assert all(c["MaximumRetryAttempts"] == 0 for c in migration)
    timeout = production["Resources"][sam.MIGRATION]["Properties"]["Timeout"]
    service_timeout = production["Resources"][sam.SCHEMA_MIGRATION]["Properties"]["ServiceTimeout"]
    assert timeout < service_timeout <= 2 * timeout
    assert "NAT" in template["Description"]
    assert "S3 gateway endpoint" in template["Description"]
    reserved = production["Resources"][sam.MIGRATION]["Properties"].get("ReservedConcurrentExecutions")
    assert reserved == {
        "Fn::If": [
            "HasMigrationReservedConcurrency",
            {"Ref": "MigrationReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Parameters"]["MigrationReservedConcurrency"]["Default"] == 0
    sweep = production["Resources"]["HoldExpirySweepFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert sweep["Fn::If"][1] == {"Ref": "SweepReservedConcurrency"}


# ---------------------------------------------------------------- money safety (#8)


def test_admin_only_routes_require_the_admin_scope_at_the_gateway(production):
    body = production["Resources"]["HttpApi"]["Properties"]["Body"]
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            route = f"{method.upper()} {path}"
            expected = [{"WalletJwt": ["wallet:admin"]}] if route in ADMIN_ROUTES else operation["security"]
            assert operation["security"] == expected, route
            assert route in ADMIN_ROUTES or "wallet:admin" not in json.dumps(operation["security"]), route
    assert (
        body["components"]["securitySchemes"]["WalletJwt"]["x-amazon-apigateway-authorizer"]["type"] == "jwt"
    )


def test_only_the_provider_bridge_role_may_send_provider_events(template, production):
    policy = production["Resources"]["ProviderEventsQueuePolicy"]
    assert policy["Condition"] == "HasProviderBridgeRole"
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    bridge = {"Ref": "ProviderBridgeRoleArn"}
    assert statements["ProviderBridgeSends"]["Principal"] == {"AWS": bridge}
    deny = statements["NobodyElseSends"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:SendMessage")
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": bridge}}
    env = production["Resources"]["IngestEventsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["WALLET_PROVIDERS"] == {"Ref": "Providers"}
    assert env["WALLET_BOUND_PROVIDER"] == {"Ref": "BoundProvider"}
    assert template["Parameters"]["Providers"]["Default"] == "acme-pay"
    assert template["Parameters"]["BoundProvider"]["Default"] == ""


def test_a_settlement_held_for_an_operator_pages(production):
    alarm = production["Resources"]["UnresolvedSettlementsAlarm"]["Properties"]
    env = production["Resources"]["IngestEventsFunction"]["Properties"]["Environment"]["Variables"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        "UnresolvedSettlements",
    )
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )
