"""Translate template.yaml exactly as the AWS::Serverless transform does (samtranslator, offline),
and the checks the infrastructure tests apply to the resulting CloudFormation.

Each check returns a list of problems (empty = fine) so a test can also prove the check notices a
broken template (a copy of template.yaml with one thing removed)."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform

from tools.local_runtime.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SAMCONFIG_PATH = ROOT / "samconfig.toml"

MIGRATION = "MigrationFunction"
HOOK = "PreTrafficHookFunction"
SCHEMA_MIGRATION = "SchemaMigration"
ALARM_KINDS = ("Errors", "Throttles", "Latency")
HOOK_NAME_LIMIT = 64  # Lambda function names
LONGEST_STACK_NAME = 38  # "CodeDeployHook_" + 38 + "-pretraffic" == 64


class _NoManagedPolicies:
    """The template names no managed policy, so SAM never needs IAM's list (nor boto3 credentials)."""

    def load(self) -> dict[str, str]:
        return {}


def raw_template() -> dict[str, Any]:
    """template.yaml as the SAM transform receives it: AWS::LanguageExtensions already applied."""
    return load_template(TEMPLATE_PATH)


def samconfig() -> dict[str, Any]:
    return tomllib.loads(SAMCONFIG_PATH.read_text())


def environments() -> list[str]:
    """Every samconfig.toml environment that `sam deploy --config-env` can deploy."""
    return [name for name, env in samconfig().items() if isinstance(env, dict) and "deploy" in env]


def overrides(environment: str) -> dict[str, str]:
    """The `Key=Value Key=Value` parameter_overrides of one samconfig environment."""
    text = samconfig()[environment]["deploy"]["parameters"].get("parameter_overrides", "")
    pairs = shlex.split(text) if isinstance(text, str) else list(text)
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def stack_name(environment: str) -> str:
    return samconfig()[environment]["global"]["parameters"]["stack_name"]


@functools.cache
def _directory_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def package(template: dict[str, Any], salt: dict[str, str] | None = None) -> dict[str, Any]:
    """What `sam package` does to the template: local code directories become S3 objects whose key
    is a digest of their content (`salt` simulates a change in one directory)."""
    packaged = copy.deepcopy(template)
    for resource in packaged.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            location = props.get(key)
            if isinstance(location, str) and not location.startswith("s3://"):
                directory = ROOT / location
                marker = (salt or {}).get(location.strip("/"), "")
                props[key] = f"s3://artifacts/{_directory_digest(directory)}{marker}"
    return packaged


def translate(template: dict[str, Any], parameters: dict[str, str], salt: dict | None = None) -> dict:
    """samtranslator's transform with the parameter values CloudFormation would pass."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # SAM asks boto3 for a region, nothing else
    values: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        value = parameters.get(name, spec.get("Default"))
        if value is None:
            continue
        if str(spec.get("Type", "")).startswith(("List<", "CommaDelimitedList")) and isinstance(value, str):
            value = value.split(",")
        values[name] = value
    return transform(package(template, salt), values, _NoManagedPolicies())


def lint_errors(cfn: dict) -> list[str]:
    """cfn-lint's errors (E....) on translated CloudFormation: what CloudFormation would refuse.
    Warnings and informational findings are not deploy blockers and are left out."""
    from cfnlint.api import ManualArgs, lint  # slow import: only for this check

    matches = lint(json.dumps(cfn), config=ManualArgs(regions=["us-east-1"]))
    return sorted(
        f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path)) if m.path else m.linenumber})"
        for m in matches
        if m.rule.id.startswith("E")
    )


# ------------------------------------------------------------------------------------------------
# Reading the CloudFormation output


def resources(cfn: dict, kind: str) -> dict[str, dict]:
    return {lid: res for lid, res in cfn["Resources"].items() if res["Type"] == kind}


def sam_functions(template: dict) -> dict[str, dict]:
    return {
        lid: res
        for lid, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def traffic_functions(template: dict) -> list[str]:
    """Functions that serve traffic (API, SQS, schedule): each one is deployed through CodeDeploy."""
    return sorted(lid for lid, res in sam_functions(template).items() if res["Properties"].get("Events"))


def depends_on(resource: dict) -> list[str]:
    value = resource.get("DependsOn", [])
    return [value] if isinstance(value, str) else list(value)


def references(value: Any) -> Iterator[str]:
    """Logical ids a value refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                yield item
            elif key == "Fn::GetAtt":
                yield (item.split(".")[0] if isinstance(item, str) else item[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    yield name.split(".")[0]
                if isinstance(item, list):
                    yield from references(item[1])
            else:
                yield from references(item)


def dependencies(cfn: dict, logical_id: str) -> set[str]:
    """Every resource CloudFormation creates/updates before `logical_id` (transitively)."""
    all_resources = cfn["Resources"]
    seen: set[str] = set()
    stack = [logical_id]
    while stack:
        resource = all_resources.get(stack.pop())
        if resource is None:
            continue
        direct = set(depends_on(resource)) | set(references(resource.get("Properties", {})))
        for name in direct & set(all_resources) - seen:
            seen.add(name)
            stack.append(name)
    return seen


def iam_statements(cfn: dict) -> Iterator[tuple[str, dict]]:
    for lid, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        else:
            continue
        for document in documents:
            statements = document.get("Statement", [])
            for statement in [statements] if isinstance(statements, dict) else statements:
                yield lid, statement


def sub_text(value: Any, variables: dict[str, str]) -> str:
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{([^}]+)\}", lambda m: variables[m.group(1)], text)


# ------------------------------------------------------------------------------------------------
# Checks: each returns the problems it found


def check_live_aliases(template: dict, cfn: dict) -> list[str]:
    aliases = resources(cfn, "AWS::Lambda::Alias")
    problems = []
    for function in traffic_functions(template):
        found = [
            a
            for a in aliases.values()
            if a["Properties"]["Name"] == "live" and a["Properties"]["FunctionName"] == {"Ref": function}
        ]
        if not found:
            problems.append(f"{function}: no `live` alias")
    return problems


def _alias(cfn: dict, function: str) -> tuple[str, dict] | None:
    for lid, alias in resources(cfn, "AWS::Lambda::Alias").items():
        if alias["Properties"]["FunctionName"] == {"Ref": function}:
            return lid, alias
    return None


HTTP_API_5XX_ALARM = "HttpApiServerErrorsAlarm"  # paging only: never in a deployment group


def _has_http_api_event(template: dict, function: str) -> bool:
    events = template["Resources"][function]["Properties"].get("Events") or {}
    return any(event.get("Type") == "HttpApi" for event in events.values())


def logical_id_of(value: Any) -> str | None:
    """`{"Ref": X}` or its Fn::ForEach spelling `{"Fn::Sub": "${X}"}` -> X."""
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return value["Ref"]
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        found = re.fullmatch(r"\$\{([A-Za-z0-9]+)\}", value["Fn::Sub"])
        return found.group(1) if found else None
    return None


def route_table(template: dict) -> dict[str, dict]:
    """The Routes mapping: one row per API function (logical id without `Function`)."""
    return template["Mappings"]["Routes"]


def database_functions(template: dict) -> list[str]:
    """Functions that hold database credentials (they read a database secret)."""
    return sorted(
        name
        for name, function in sam_functions(template).items()
        if "secretsmanager:GetSecretValue" in json.dumps(function["Properties"].get("Policies", []))
    )


def evaluate_rules(template: dict, parameters: dict[str, str], region: str = "us-east-1") -> list[str]:
    """The AssertDescription of every Rules assertion that fails for these parameter values
    (Fn::Equals/Not/And/Or/Contains and Ref, the rule functions this template uses)."""
    values: dict[str, Any] = {"AWS::Region": region}
    for name, spec in template.get("Parameters", {}).items():
        value = parameters.get(name, spec.get("Default", ""))
        if str(spec.get("Type", "")).startswith(("List<", "CommaDelimitedList")):
            value = [item.strip() for item in value.split(",")] if isinstance(value, str) else value
        values[name] = value

    def evaluate(node: Any) -> Any:
        if isinstance(node, list):
            return [evaluate(item) for item in node]
        if not isinstance(node, dict):
            return node
        ((function, argument),) = node.items()
        if function == "Ref":
            return values[argument]
        args = evaluate(argument)
        operations = {
            "Fn::Equals": lambda: str(args[0]) == str(args[1]),
            "Fn::Not": lambda: not args[0],
            "Fn::And": lambda: all(args),
            "Fn::Or": lambda: any(args),
            "Fn::Contains": lambda: args[1] in args[0],
        }
        return operations[function]()

    failed = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"]):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not evaluate(a["Assert"])]
    return failed


def check_deployment_groups(template: dict, cfn: dict, deployment_type: str) -> list[str]:
    groups = resources(cfn, "AWS::CodeDeploy::DeploymentGroup")
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    problems = []
    for function in traffic_functions(template):
        group = groups.get(f"{function}DeploymentGroup")
        if group is None:
            problems.append(f"{function}: no CodeDeploy deployment group")
            continue
        props = group["Properties"]
        config = props.get("DeploymentConfigName")
        resolved = (
            sub_text(config["Fn::Sub"][0], config["Fn::Sub"][1]) if isinstance(config, dict) else config
        )
        if resolved != f"CodeDeployDefault.Lambda{deployment_type}":
            problems.append(f"{function}: deployment config {resolved!r}, expected {deployment_type}")
        if not props.get("AutoRollbackConfiguration", {}).get("Enabled"):
            problems.append(f"{function}: automatic rollback disabled")
        alarm_config = props.get("AlarmConfiguration") or {}
        names = {logical_id_of(alarm["Name"]) for alarm in alarm_config.get("Alarms", [])}
        base = function.removesuffix("Function")
        expected = {f"{base}{kind}Alarm" for kind in ALARM_KINDS}
        if _has_http_api_event(template, function) and function in database_functions(template):
            expected.add(f"{base}ServerErrorsAlarm")  # handled 500/503 never reach Lambda's Errors
        if not alarm_config.get("Enabled") or names != expected:
            problems.append(f"{function}: deployment alarms {sorted(names)}, expected {sorted(expected)}")
        for name in expected & set(alarms):
            problems += [f"{name}: {p}" for p in _alarm_watches(alarms[name]["Properties"], function)]
        alias = _alias(cfn, function)
        hook = (alias[1].get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate", {}) if alias else {}).get(
            "BeforeAllowTrafficHook"
        )
        if hook != {"Ref": HOOK}:
            problems.append(f"{function}: PreTraffic hook is {hook!r}")
    return problems


def _alarm_watches(alarm: dict, function: str) -> list[str]:
    """Problems if the alarm does not watch `function` (its `live` alias for Lambda's metrics)."""
    metrics = [alarm] + [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
    problems = []
    for metric in metrics:
        if "MetricName" not in metric:
            continue
        dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
        if metric.get("Namespace") == "AWS/Lambda":
            on_alias = dimensions.get("Resource") == {"Fn::Sub": f"${{{function}}}:live"}
            if logical_id_of(dimensions.get("FunctionName")) != function or not on_alias:
                problems.append(f"not on {function}:live ({dimensions})")
        elif logical_id_of(dimensions.get("function_name")) != function:
            problems.append(f"not on {function} ({dimensions})")
    return problems


def check_migration_first(template: dict, cfn: dict) -> list[str]:
    problems = []
    for function in traffic_functions(template):
        if SCHEMA_MIGRATION not in depends_on(cfn["Resources"][function]):
            problems.append(f"{function}: does not DependsOn {SCHEMA_MIGRATION}")
        alias = _alias(cfn, function)
        if alias is None or SCHEMA_MIGRATION not in dependencies(cfn, alias[0]):
            problems.append(f"{function}: its alias/version can change before {SCHEMA_MIGRATION}")
    return problems


def check_no_wildcard_actions(cfn: dict) -> list[str]:
    problems = []
    for lid, statement in iam_statements(cfn):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        for action in [actions] if isinstance(actions, str) else actions:
            if not isinstance(action, str) or "*" in action:
                problems.append(f"{lid}: wildcard action {action!r}")
        if "NotAction" in statement:
            problems.append(f"{lid}: NotAction grants everything else")
    return problems
