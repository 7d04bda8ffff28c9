"""What the deploy and rollback workflows promise, read from their YAML (the offline `sam deploy`
run of each step is .ci/sam-deploy-checks): rollback shifts at once, no push can cancel a pending
rollback, SAM gives up waiting before the job is killed, the network comes from the environment."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SAM_DEPLOY = re.compile(r"\bsam\s+deploy\b")


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def _commands(script: str) -> str:
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


def steps(job: dict[str, Any], pattern: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if re.search(pattern, _commands(step.get("run", "")))]


def deploy_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, job_id, job)
        for name in ("deploy.yml", "rollback.yml")
        for job_id, job in workflow(name)["jobs"].items()
        if any(SAM_DEPLOY.search(_commands(step.get("run", ""))) for step in job.get("steps", []))
    ]


def concurrency_groups(name: str) -> set[str]:
    document = workflow(name)
    groups = set()
    for holder in [document, *document["jobs"].values()]:
        concurrency = holder.get("concurrency")
        if concurrency:
            groups.add(concurrency["group"] if isinstance(concurrency, dict) else concurrency)
    return groups


def test_every_deploy_job_of_both_workflows_is_found():
    assert {(name, job_id) for name, job_id, _ in deploy_jobs()} == {
        ("deploy.yml", "deploy-staging"),
        ("deploy.yml", "deploy-production"),
        ("rollback.yml", "rollback"),
    }


def test_the_rollback_shifts_traffic_all_at_once():
    (params,) = steps(workflow("rollback.yml")["jobs"]["rollback"], r"tools\.deploy_parameters")
    assert "--set DeploymentType=AllAtOnce" in " ".join(shlex.split(params["run"].replace("\\\n", " ")))


def test_a_push_never_shares_a_concurrency_group_with_a_rollback():
    """GitHub keeps the newest pending run of a group and cancels the older pending one."""
    deploy_groups, rollback_groups = concurrency_groups("deploy.yml"), concurrency_groups("rollback.yml")
    assert rollback_groups, "the rollback needs a group (one rollback per stage at a time)"
    assert not deploy_groups & rollback_groups
    for name in ("deploy.yml", "rollback.yml"):
        document = workflow(name)
        for holder in [document, *document["jobs"].values()]:
            concurrency = holder.get("concurrency")
            if isinstance(concurrency, dict):
                assert concurrency.get("cancel-in-progress") is False, name


def _max_wait(run: str, stage: str) -> int:
    """`--max-wait-duration` of the command, else samconfig's, else SAM's default of 60 minutes."""
    match = re.search(r"--max-wait-duration[ =](\d+)", run)
    if match:
        return int(match.group(1))
    return int(samconfig()[stage]["deploy"]["parameters"].get("max_wait_duration", 60))


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_sam_stops_waiting_before_the_job_times_out(stage):
    """A job killed mid-wait says nothing about the stack; SAM timing out prints its state."""
    for name, job_id, job in deploy_jobs():
        environment = job["environment"]["name"]
        if stage not in environment and "inputs.stage" not in environment:
            continue
        (deploy,) = steps(job, r"\bsam\s+deploy\b")
        budget = job["timeout-minutes"] - 5  # checkout, setup, download, smoke test
        if steps(job, r"\bsam\s+build\b"):
            budget -= 20  # the rollback builds in the same job
        assert _max_wait(deploy["run"], stage) <= budget, (name, job_id, stage)


def test_the_network_and_issuer_come_from_the_environment_of_the_job():
    for name, job_id, job in deploy_jobs():
        (params,) = steps(job, r"tools\.deploy_parameters")
        for variable in ("VPC_ID", "SUBNET_IDS", "SECURITY_GROUP_IDS", "JWT_ISSUER"):
            assert params["env"][variable] == f"${{{{ vars.{variable} }}}}", (name, job_id, variable)
        assert "--ci-run-number" in params["run"]
        assert "--git-branch" in params["run"]


def test_sam_deploy_reads_samconfig_although_the_template_is_the_built_one():
    for name, job_id, job in deploy_jobs():
        (deploy,) = steps(job, r"\bsam\s+deploy\b")
        if "--template-file" in deploy["run"] or "-t " in deploy["run"]:
            assert '--config-file "$PWD/samconfig.toml"' in deploy["run"], (name, job_id)
