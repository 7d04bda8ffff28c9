"""The overrides a deploy passes: samconfig's list for the environment plus the build's identity."""

from __future__ import annotations

import shlex

import pytest
from alembic.script import ScriptDirectory

import runner
from tools import deploy_parameters


def _pairs(line: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(line))


def test_overrides_keep_the_environment_list_and_add_the_build_identity(capsys):
    assert (
        deploy_parameters.main(["production", "--git-sha", "abc123", "--build-time", "2026-11-23T10:00:00Z"])
        == 0
    )

    pairs = _pairs(capsys.readouterr().out)

    assert pairs == {
        **deploy_parameters.environment_overrides("production"),
        "AppVersion": deploy_parameters.app_version(),
        "GitSha": "abc123",
        "BuildTime": "2026-11-23T10:00:00Z",
        "MigrationsHead": ScriptDirectory.from_config(runner.alembic_config()).get_current_head(),
    }
    assert pairs["DeploymentType"] == "Canary10Percent5Minutes"
    assert deploy_parameters.environment_overrides("staging")["DeploymentType"] == "AllAtOnce"


def test_github_output_names_the_stack_and_the_overrides(tmp_path):
    output = tmp_path / "github_output"

    deploy_parameters.main(
        ["staging", "--git-sha", "abc", "--github-output", str(output), "--prefix", "staging_"]
    )

    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert values["staging_stack_name"] == "wallet-staging"
    assert _pairs(values["staging_parameter_overrides"])["Stage"] == "staging"


def test_an_unknown_environment_is_a_clear_error():
    with pytest.raises(SystemExit, match=r"no \[prod\] environment"):
        deploy_parameters.main(["prod"])


def test_a_double_quote_in_a_value_is_refused():
    with pytest.raises(SystemExit, match="double quote: JwtIssuer"):
        deploy_parameters.render({"Stage": "x", "JwtIssuer": 'a"b'})
