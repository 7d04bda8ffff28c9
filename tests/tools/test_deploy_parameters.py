"""The overrides a deploy passes: samconfig's list for the environment, the account's network and
issuer from the deploy environment's variables, plus the build's identity."""

from __future__ import annotations

import shlex

import pytest
from alembic.script import ScriptDirectory

import runner
from tools import deploy_parameters

NETWORK = {
    "VPC_ID": "vpc-0a1b2c3d4e5f60718",
    "SUBNET_IDS": "subnet-0a1b2c3d4e5f60718, subnet-0a1b2c3d4e5f60719",
    "SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60718",
    "JWT_ISSUER": "https://issuer.example.org/",
}


@pytest.fixture(autouse=True)
def deploy_environment(monkeypatch):
    """What a GitHub Environment's variables put into the parameter step's environment."""
    optional = ("JWT_AUDIENCE", "ALARM_TOPIC_ARN", "PROVIDER_BRIDGE_ROLE_ARN")
    for name in (*NETWORK, *optional, "GITHUB_RUN_NUMBER", "GITHUB_REF_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in NETWORK.items():
        monkeypatch.setenv(name, value)


def _pairs(line: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(line))


def _run(capsys, *argv: str) -> dict[str, str]:
    assert deploy_parameters.main(list(argv)) == 0
    return _pairs(capsys.readouterr().out)


def test_overrides_keep_the_environment_list_and_add_the_network_and_the_build_identity(capsys):
    argv = (
        "production --git-sha abc123 --build-time 2026-11-23T10:00:00Z --ci-run-number 318 --git-branch main"
    )
    pairs = _run(capsys, *argv.split())

    assert pairs == {
        **deploy_parameters.environment_overrides("production"),
        "VpcId": "vpc-0a1b2c3d4e5f60718",
        "SubnetIds": "subnet-0a1b2c3d4e5f60718,subnet-0a1b2c3d4e5f60719",
        "SecurityGroupIds": "sg-0a1b2c3d4e5f60718",
        "JwtIssuer": "https://issuer.example.org/",
        "AppVersion": deploy_parameters.app_version(),
        "GitSha": "abc123",
        "BuildTime": "2026-11-23T10:00:00Z",
        "MigrationsHead": ScriptDirectory.from_config(runner.alembic_config()).get_current_head(),
        "CiRunNumber": "318",
        "GitBranch": "main",
    }
    assert pairs["DeploymentType"] == "Canary10Percent5Minutes"
    assert deploy_parameters.environment_overrides("staging")["DeploymentType"] == "AllAtOnce"


def test_the_ci_run_and_branch_default_to_github_actions_or_a_manual_deploy(capsys, monkeypatch):
    monkeypatch.setattr(deploy_parameters, "git", lambda *args: "my-branch")
    pairs = _run(capsys, "staging", "--git-sha", "abc")
    assert (pairs["CiRunNumber"], pairs["GitBranch"]) == ("0", "my-branch")

    monkeypatch.setenv("GITHUB_RUN_NUMBER", "77")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    pairs = _run(capsys, "staging", "--git-sha", "abc")
    assert (pairs["CiRunNumber"], pairs["GitBranch"]) == ("77", "main")


def test_samconfig_holds_no_account_network_ids_or_issuer():
    """Placeholders there reach CloudFormation, which rejects ids that do not exist (#10.3)."""
    for environment in ("default", "staging", "production"):
        names = set(deploy_parameters.environment_overrides(environment))
        assert not names & {"VpcId", "SubnetIds", "SecurityGroupIds", "JwtIssuer"}, environment


@pytest.mark.parametrize(
    ("variables", "argv", "says"),
    [
        # Missing (an undefined `${{ vars.X }}` is an empty string): named, with where to set it.
        *(({name: None}, [], [name, "staging", "Settings"]) for name in NETWORK),
        ({"SUBNET_IDS": ""}, [], ["SUBNET_IDS"]),
        (dict.fromkeys(NETWORK), [], list(NETWORK)),  # every one at once
        # Malformed: refused before CloudFormation sees it.
        ({"VPC_ID": "vpc-xyz"}, [], ["VPC_ID"]),
        ({"SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,sg-0a1b2c3d4e5f60718"}, [], ["SUBNET_IDS"]),
        ({"SECURITY_GROUP_IDS": "0a1b2c3d"}, [], ["SECURITY_GROUP_IDS"]),
        ({"JWT_ISSUER": "http://issuer.example.org/"}, [], ["JWT_ISSUER"]),
        ({"PROVIDER_BRIDGE_ROLE_ARN": "acme-pay-bridge"}, [], ["PROVIDER_BRIDGE_ROLE_ARN"]),
        ({}, ["--set", "GitSha=other"], ["GitSha"]),  # the build's identity has its own options
        ({}, ["--set", "DeploymentType"], ["Key=Value"]),
        ({"JWT_ISSUER": 'https://a"b'}, [], ["JWT_ISSUER"]),
    ],
)
def test_what_cannot_deploy_stops_with_what_to_fix(monkeypatch, variables, argv, says):
    for name, value in variables.items():
        monkeypatch.delenv(name) if value is None else monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        deploy_parameters.main(["staging", "--git-sha", "abc", *argv])
    assert all(text in str(stopped.value) for text in says), stopped.value
    with pytest.raises(SystemExit, match=r"no \[prod\] environment"):
        deploy_parameters.main(["prod"])
    with pytest.raises(SystemExit, match="double quote: JwtIssuer"):
        deploy_parameters.render({"Stage": "x", "JwtIssuer": 'a"b'})


def test_vpc_id_is_needed_only_when_the_stack_creates_the_database():
    base = {
        "SubnetIds": "subnet-0a1b2c3d4e5f60718",
        "SecurityGroupIds": "sg-0a1b2c3d4e5f60718",
        "JwtIssuer": "https://issuer.example.org/",
    }
    assert deploy_parameters.problems({**base, "CreateDatabase": "false"}) == []
    assert [p.split(":")[0] for p in deploy_parameters.problems({**base, "CreateDatabase": "true"})] == [
        "VPC_ID (VpcId)"
    ]


def test_github_output_names_the_stack_and_the_overrides(tmp_path):
    output = tmp_path / "github_output"
    deploy_parameters.main(
        ["staging", "--git-sha", "abc", "--github-output", str(output), "--prefix", "staging_"]
    )
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert values["staging_stack_name"] == "wallet-staging"
    assert _pairs(values["staging_parameter_overrides"])["Stage"] == "staging"
    assert _pairs(values["staging_parameter_overrides"])["VpcId"] == NETWORK["VPC_ID"]


def test_set_and_optional_account_values_pass_through(capsys, monkeypatch):
    """--set: the rollback workflow shifts traffic at once instead of the production canary (#10.8)."""
    monkeypatch.setenv("ALARM_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:wallet-alarms")
    monkeypatch.setenv("PROVIDER_BRIDGE_ROLE_ARN", "arn:aws:iam::123456789012:role/acme-pay-bridge")
    pairs = _run(capsys, "production", "--git-sha", "abc", "--set", "DeploymentType=AllAtOnce")
    assert (pairs["DeploymentType"], pairs["Stage"]) == ("AllAtOnce", "production")
    assert pairs["AlarmTopicArn"] == "arn:aws:sns:eu-west-1:123456789012:wallet-alarms"
    assert pairs["ProviderBridgeRoleArn"] == "arn:aws:iam::123456789012:role/acme-pay-bridge"
