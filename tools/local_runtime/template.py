"""template.yaml is the single source of truth: this module reads it as CloudFormation does (cfn-lint
parses the short tags and applies AWS::LanguageExtensions), then resolves the few intrinsics left in
what a local run reads (functions, their events, queues) against the parameter defaults.

Resolution is forgiving: an intrinsic a local run cannot know (a resource only AWS creates, an
ImportValue) becomes a readable placeholder string, never a crash.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs we invent match the ones moto builds
STACK_NAME = "wallet-local"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
NO_VALUE = object()  # AWS::NoValue: the property (or list item) it is assigned to disappears


class ExpansionError(ValueError):
    """The AWS::LanguageExtensions transform rejected the template (as CloudFormation would)."""


def load_yaml(text: str) -> dict[str, Any]:
    from cfnlint.decode.cfn_yaml import loads  # a SafeLoader: the CloudFormation tags, no objects

    return _shield(loads(text), {}, back=True) or {}  # cfn-lint's nodes as plain values


def expand(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation hands it to the SAM transform: `AWS::LanguageExtensions`
    (Fn::ForEach, Fn::FindInMap on literal keys, ...) applied by cfn-lint's implementation of that
    transform, and removed from `Transform`. A template without it is returned unchanged."""
    transforms = template.get("Transform") or []
    transforms = transforms if isinstance(transforms, list) else [transforms]
    if LANGUAGE_EXTENSIONS not in transforms:
        return template
    from cfnlint.template import Template as LintTemplate
    from cfnlint.template.transforms._language_extensions import language_extension

    shielded: dict[str, Any] = {}
    errors, expanded = language_extension(
        LintTemplate("template.yaml", _shield(template, shielded), [REGION])
    )
    if errors:
        raise ExpansionError("; ".join(str(error.message) for error in errors))
    expanded = _shield(expanded, shielded, back=True)
    rest = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    expanded.pop("Transform", None)
    if rest:
        expanded["Transform"] = rest[0] if len(rest) == 1 else rest
    return expanded


def _shield(value: Any, shielded: dict[str, Any], back: bool = False) -> Any:
    """Hide `Fn::FindInMap` lookups keyed by a pseudo parameter (`!Ref AWS::Region`) from cfn-lint's
    transform, which as a linter guesses a key for them (CloudFormation resolves them at deploy
    time); `back=True` puts them back. Either way a new tree of plain dicts, lists and strs."""
    if isinstance(value, str):
        return copy.deepcopy(shielded[value]) if back and value in shielded else str(value)
    if isinstance(value, dict):
        lookup = value.get("Fn::FindInMap")
        if not back and lookup is not None and "'Ref': 'AWS::" in repr(lookup):
            token = f"__deploy_time_lookup_{len(shielded)}__"
            shielded[token] = value
            return token
        return {str(key): _shield(item, shielded, back) for key, item in value.items()}
    if isinstance(value, list):
        return [_shield(item, shielded, back) for item in value]
    return value


def load_template(path: Path) -> dict[str, Any]:
    """template.yaml read as CloudFormation reads it: short tags, then AWS::LanguageExtensions."""
    return expand(load_yaml(path.read_text()))


class Resolver:
    """Evaluates what the expansion leaves (Ref, Sub, GetAtt, If and the condition functions) against
    parameter defaults, local overrides and the values the local runtime gave resources (queues)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.template = template
        self.parameters: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            value = (parameters or {}).get(name, spec.get("Default", ""))
            if spec.get("Type", "").startswith(("CommaDelimitedList", "List<")) and isinstance(value, str):
                value = [item.strip() for item in value.split(",")] if value else []  # Ref is a list
            self.parameters[name] = value
        self.refs: dict[str, Any] = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve((self.template.get("Conditions") or {}).get(name, False)))

    def ref(self, name: str) -> Any:
        """A parameter, a pseudo parameter, or what the local runtime gave a resource (`refs`:
        "Queue" is its URL, "Queue.Arn" its GetAtt); a readable placeholder for the rest."""
        return self.parameters.get(name, self.refs.get(name, f"local-{name}"))

    def sub(self, arg: Any) -> str:
        text, variables = (arg[0], self.resolve(arg[1])) if isinstance(arg, list) else (arg, {})

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is a literal ${Literal}
                return "${" + name[1:] + "}"
            return str(variables[name] if name in variables else self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key in _INTRINSICS or key.startswith("Fn::"):
                try:
                    return _INTRINSICS[key](self, arg)
                except (LookupError, ValueError, TypeError):
                    return f"local-{key}"  # one a local run cannot evaluate (ImportValue, ...)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}


_INTRINSICS = {
    "Ref": lambda r, arg: r.ref(arg),
    "Condition": lambda r, arg: r.condition(arg),
    "Fn::Sub": lambda r, arg: r.sub(arg),
    "Fn::GetAtt": lambda r, arg: r.ref(".".join(r.resolve(arg))),
    "Fn::If": lambda r, arg: r.resolve(arg[1] if r.condition(arg[0]) else arg[2]),
    "Fn::Equals": lambda r, arg: len({str(item) for item in r.resolve(arg)}) == 1,
    "Fn::Not": lambda r, arg: not r.resolve(arg)[0],
    "Fn::And": lambda r, arg: all(r.resolve(arg)),
    "Fn::Or": lambda r, arg: any(r.resolve(arg)),
    "Fn::Join": lambda r, arg: str(arg[0]).join(map(str, r.resolve(arg[1]))),
    "Fn::Select": lambda r, arg: r.resolve(arg[1])[int(r.resolve(arg[0]))],
}


# --------------------------------------------------------------------------------------------------
# What the local runtime needs from the template


@dataclass
class HttpRoute:
    function_id: str
    method: str  # upper case
    path: str  # as declared, e.g. /v1/wallets/{wallet_id}
    auth: str | None = None  # Auth.Authorizer of the event ("NONE" disables auth)
    scopes: list[str] = field(default_factory=list)  # Auth.AuthorizationScopes (API Gateway checks them)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class SqsSource:
    function_id: str
    queue_arn: str
    batch_size: int  # at most 10: what one SQS receive returns
    report_batch_item_failures: bool


@dataclass
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, str]

    @property
    def module_path(self) -> Path:
        return self.code_uri / (self.handler.rsplit(".", 1)[0].replace(".", "/") + ".py")


@dataclass
class Queue:
    logical_id: str
    name: str
    attributes: dict[str, str]
    dead_letter_id: str | None = None  # logical id of the DLQ, found by its ARN
    max_receive_count: int | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{self.name}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")


class Template:
    """template.yaml, read once; resolution happens against a Resolver that callers can feed with
    local values (parameter overrides, queue URLs in `resolver.refs`) before asking for functions."""

    def __init__(self, path: Path, parameters: dict[str, str] | None = None) -> None:
        self.path = path.resolve()
        self.root = self.path.parent
        self.raw = load_template(self.path)
        self.resolver = Resolver(self.raw, parameters)
        self.queues()  # gives every queue its local name, so GetAtt Queue.Arn resolves from the start

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """Resources of one type that this configuration creates (their Condition holds)."""
        return {
            logical_id: resource
            for logical_id, resource in (self.raw.get("Resources") or {}).items()
            if resource.get("Type") == kind
            and ("Condition" not in resource or self.resolver.condition(resource["Condition"]))
        }

    def layer_dirs(self) -> list[Path]:
        layers = self.resources("AWS::Serverless::LayerVersion").values()
        return [(self.root / layer["Properties"]["ContentUri"]).resolve() for layer in layers]

    def function(self, logical_id: str, functions: dict[str, Function] | None = None) -> Function:
        functions = self.functions() if functions is None else functions
        if logical_id not in functions:
            raise KeyError(
                f"no function {logical_id!r} in {self.path.name} (known: {', '.join(sorted(functions))})"
            )
        return functions[logical_id]

    def functions(self) -> dict[str, Function]:
        glob = (self.raw.get("Globals") or {}).get("Function") or {}
        found = {}
        for logical_id, resource in self.resources("AWS::Serverless::Function").items():
            props = self.resolver.resolve({**glob, **resource["Properties"], "Events": None})
            glob_variables, own_variables = (
                (p.get("Environment") or {}).get("Variables") or {} for p in (glob, props)
            )
            variables = {**self.resolver.resolve(glob_variables), **own_variables}
            found[logical_id] = Function(
                logical_id,
                (self.root / props.get("CodeUri", ".")).resolve(),
                props["Handler"],
                int(props.get("Timeout", 3)),
                int(props.get("MemorySize", 128)),
                {name: _text(value) for name, value in variables.items()},
            )
        return found

    def _events(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (logical_id, self.resolver.resolve(event.get("Properties") or {}))
            for logical_id, resource in self.resources("AWS::Serverless::Function").items()
            for event in (resource["Properties"].get("Events") or {}).values()
            if event.get("Type") == kind
        ]

    def http_routes(self) -> list[HttpRoute]:
        return [
            HttpRoute(
                logical_id,
                str(props["Method"]).upper(),
                props["Path"],
                auth.get("Authorizer"),
                list(auth.get("AuthorizationScopes") or []),
            )
            for logical_id, props in self._events("HttpApi")
            for auth in [props.get("Auth") or {}]
        ]

    def sqs_sources(self) -> list[SqsSource]:
        return [
            SqsSource(
                logical_id,
                str(props["Queue"]),
                min(int(props.get("BatchSize", 10)), 10),
                "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            )
            for logical_id, props in self._events("SQS")
            if props.get("Enabled", True) not in (False, "false")
        ]

    def queues(self) -> dict[str, Queue]:
        """SQS queues with their local names (Ref / GetAtt of one resolve to them from then on);
        RedrivePolicy is linked to the DLQ's logical id."""
        raw = self.resources("AWS::SQS::Queue")
        queues: dict[str, Queue] = {}
        for logical_id, resource in raw.items():
            props = self.resolver.resolve(resource.get("Properties") or {})
            queue = Queue(logical_id, props.get("QueueName") or f"{STACK_NAME}-{logical_id}", {})
            queue.attributes = {key: _text(props[key]) for key in QUEUE_ATTRIBUTES if key in props}
            self.resolver.refs.update({f"{logical_id}.Arn": queue.arn, f"{logical_id}.QueueName": queue.name})
            queues[logical_id] = queue
        for queue in queues.values():
            policy = self.resolver.resolve(
                (raw[queue.logical_id].get("Properties") or {}).get("RedrivePolicy")
            )
            if isinstance(policy, dict):
                target = policy.get("deadLetterTargetArn")
                queue.dead_letter_id = next((q.logical_id for q in queues.values() if q.arn == target), None)
                queue.max_receive_count = int(policy.get("maxReceiveCount", 10))
        return queues
