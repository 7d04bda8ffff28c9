"""The offline `sam deploy` check (.ci/sam_deploy_offline.py) finds the workflows' real deploy steps
and refuses to guess a value it does not know; running them needs aws-sam-cli (.ci/sam-deploy-checks)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def offline():
    spec = importlib.util.spec_from_file_location(
        "sam_deploy_offline", ROOT / ".ci" / "sam_deploy_offline.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sam_deploy_offline"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("sam_deploy_offline", None)


def test_every_deploy_step_is_found_with_its_stages_and_parameter_step(offline):
    steps = {(s.workflow, s.job): s for s in offline.deploy_steps()}

    assert set(steps) == {
        ("deploy.yml", "deploy-staging"),
        ("deploy.yml", "deploy-production"),
        ("rollback.yml", "rollback"),
    }
    assert steps[("deploy.yml", "deploy-staging")].stages == ("staging",)
    assert steps[("rollback.yml", "rollback")].stages == ("staging", "production")
    assert all([setup["id"] for setup in s.setup] == ["params"] for s in steps.values())


def test_a_comment_mentioning_sam_deploy_is_not_a_deploy_step(offline, tmp_path):
    (tmp_path / "w.yml").write_text(
        "jobs:\n"
        "  j:\n"
        "    environment: staging\n"
        "    steps:\n"
        "      - run: |\n"
        "          # sam deploy comes later\n"
        "          echo hello\n"
    )

    assert offline.deploy_steps(tmp_path) == []


def test_an_expression_without_a_fake_value_stops_the_check(offline):
    with pytest.raises(SystemExit, match=r"vars\.SOMETHING_NEW"):
        offline.substitute("x=${{ vars.SOMETHING_NEW }}", dict(offline.FAKE_CONTEXT))


def test_known_expressions_are_replaced(offline):
    text = offline.substitute("${{ github.sha }} ${{vars.AWS_REGION}}", dict(offline.FAKE_CONTEXT))

    assert text == f"{offline.FAKE_SHA} us-east-1"
