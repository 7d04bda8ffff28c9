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
    pairs = _run(
        capsys,
        "production",
        "--git-sha",
        "abc123",
        "--build-time",
        "2026-11-23T10:00:00Z",
        "--ci-run-number",
        "318",
        "--git-branch",
        "main",
    )

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


def test_the_ci_run_and_branch_default_to_what_github_actions_sets(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_RUN_NUMBER", "77")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")

    pairs = _run(capsys, "staging", "--git-sha", "abc")

    assert (pairs["CiRunNumber"], pairs["GitBranch"]) == ("77", "main")


def test_a_manual_deploy_has_run_number_zero_and_the_checkout_branch(capsys, monkeypatch):
    monkeypatch.setattr(deploy_parameters, "git_branch", lambda root=None: "my-branch")

    pairs = _run(capsys, "staging", "--git-sha", "abc")

    assert (pairs["CiRunNumber"], pairs["GitBranch"]) == ("0", "my-branch")


def test_samconfig_holds_no_account_network_ids_or_issuer():
    """Placeholders there reach CloudFormation, which rejects ids that do not exist (#10.3)."""
    for environment in ("default", "staging", "production"):
        names = set(deploy_parameters.environment_overrides(environment))
        assert not names & {"VpcId", "SubnetIds", "SecurityGroupIds", "JwtIssuer"}, environment


@pytest.mark.parametrize("missing", ["SUBNET_IDS", "SECURITY_GROUP_IDS", "JWT_ISSUER", "VPC_ID"])
def test_a_missing_deploy_variable_stops_the_deploy_and_says_where_to_set_it(monkeypatch, missing):
    monkeypatch.delenv(missing)

    with pytest.raises(SystemExit) as stopped:
        deploy_parameters.main(["staging", "--git-sha", "abc"])

    message = str(stopped.value)
    assert missing in message
    assert "staging" in message
    assert "Settings" in message  # where a GitHub Environment variable is set


def test_every_missing_variable_is_named_at_once(monkeypatch):
    for name in NETWORK:
        monkeypatch.delenv(name)

    with pytest.raises(SystemExit) as stopped:
        deploy_parameters.main(["production", "--git-sha", "abc"])

    assert all(name in str(stopped.value) for name in NETWORK)


def test_an_empty_variable_counts_as_missing(monkeypatch):
    """An environment that does not define a variable gives `${{ vars.X }}` as an empty string."""
    monkeypatch.setenv("SUBNET_IDS", "")

    with pytest.raises(SystemExit, match="SUBNET_IDS"):
        deploy_parameters.main(["staging", "--git-sha", "abc"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VPC_ID", "vpc-xyz"),
        ("SUBNET_IDS", "subnet-0a1b2c3d4e5f60718,sg-0a1b2c3d4e5f60718"),
        ("SECURITY_GROUP_IDS", "0a1b2c3d"),
        ("JWT_ISSUER", "http://issuer.example.org/"),
    ],
)
def test_a_malformed_variable_is_refused_before_cloudformation_sees_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit, match=name):
        deploy_parameters.main(["staging", "--git-sha", "abc"])


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


def test_an_unknown_environment_is_a_clear_error():
    with pytest.raises(SystemExit, match=r"no \[prod\] environment"):
        deploy_parameters.main(["prod"])


def test_a_double_quote_in_a_value_is_refused():
    with pytest.raises(SystemExit, match="double quote: JwtIssuer"):
        deploy_parameters.render({"Stage": "x", "JwtIssuer": 'a"b'})


def test_set_overrides_a_samconfig_value_for_one_deploy(capsys):
    """The rollback workflow shifts traffic at once instead of the production canary (#10.8)."""
    pairs = _run(capsys, "production", "--git-sha", "abc", "--set", "DeploymentType=AllAtOnce")

    assert pairs["DeploymentType"] == "AllAtOnce"
    assert pairs["Stage"] == "production"


def test_set_refuses_a_parameter_the_build_identifies_itself_with():
    with pytest.raises(SystemExit, match="GitSha"):
        deploy_parameters.main(["production", "--git-sha", "abc", "--set", "GitSha=other"])


def test_set_needs_key_equals_value():
    with pytest.raises(SystemExit):
        deploy_parameters.main(["production", "--git-sha", "abc", "--set", "DeploymentType"])


def test_optional_account_values_pass_through_when_set(capsys, monkeypatch):
    monkeypatch.setenv("ALARM_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:wallet-alarms")
    monkeypatch.setenv("PROVIDER_BRIDGE_ROLE_ARN", "arn:aws:iam::123456789012:role/acme-pay-bridge")

    pairs = _run(capsys, "staging", "--git-sha", "abc")

    assert pairs["AlarmTopicArn"] == "arn:aws:sns:eu-west-1:123456789012:wallet-alarms"
    assert pairs["ProviderBridgeRoleArn"] == "arn:aws:iam::123456789012:role/acme-pay-bridge"


def test_a_malformed_optional_value_is_refused(monkeypatch):
    monkeypatch.setenv("PROVIDER_BRIDGE_ROLE_ARN", "acme-pay-bridge")

    with pytest.raises(SystemExit, match="PROVIDER_BRIDGE_ROLE_ARN"):
        deploy_parameters.main(["staging", "--git-sha", "abc"])
