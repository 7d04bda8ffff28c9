"""What CloudFormation receives (template.yaml after AWS::LanguageExtensions and the SAM transform,
with each samconfig.toml environment's parameters) has no cfn-lint error: E3004 circular
dependencies between generated resources blocked every deploy before this check existed."""

from __future__ import annotations

import pytest

from tests.infrastructure import sam
from tests.infrastructure.expanded_lint import errors_by_environment


@pytest.fixture(scope="module")
def lint_results() -> dict[str, list[str]]:
    return errors_by_environment()


def test_every_samconfig_environment_is_checked(lint_results):
    assert set(lint_results) == set(sam.environments()) >= {"default", "staging", "production"}


@pytest.mark.parametrize("environment", ["default", "staging", "production"])
def test_expanded_template_has_no_lint_error(lint_results, environment):
    assert lint_results[environment] == []


def test_the_lint_notices_a_circular_dependency():
    cfn = {
        "Resources": {
            "Alarm": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": {"Fn::GetAtt": ["Other", "TopicName"]}},
            },
            "Other": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": {"Fn::GetAtt": ["Alarm", "TopicName"]}},
            },
        }
    }
    assert any(error.startswith("E3004 ") for error in sam.lint_errors(cfn))
