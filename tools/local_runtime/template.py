"""template.yaml is the single source of truth: this module reads it (CloudFormation short tags
included) and resolves the handful of intrinsics a local run needs.

Resolution is deliberately forgiving: a local run must never crash on an intrinsic it cannot know
(an ImportValue, a resource that only exists in AWS). Those become readable placeholder strings.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs we invent match the ones moto builds
STACK_NAME = "wallet-local"

# Short tag -> long form. `!GetAtt A.B` is the one scalar form that changes shape ([A, B]).
_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "Sub",
            "GetAtt",
            "If",
            "Equals",
            "Join",
            "Select",
            "FindInMap",
            "Not",
            "And",
            "Or",
            "ImportValue",
            "Split",
            "Base64",
            "Cidr",
            "GetAZs",
            "Transform",
            "Length",
            "ToJsonString",
            # rule functions (the Rules section)
            "Contains",
            "EachMemberEquals",
            "EachMemberIn",
            "RefAll",
            "ValueOf",
            "ValueOfAll",
        )
    },
}


class _NoValue:
    """AWS::NoValue: the property (or list item) it is assigned to disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class TemplateLoader(yaml.SafeLoader):
    """SafeLoader (never constructs arbitrary Python objects) plus the CloudFormation tags."""


def _construct(long_name: str):
    def construct(loader: TemplateLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if long_name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # YAML has no other kind of node: construct_mapping would refuse it the same way
            raise yaml.constructor.ConstructorError(
                None, None, f"unexpected node {node.tag}", node.start_mark
            )
        return {long_name: value}

    return construct


for _tag, _long in _SHORT_TAGS.items():
    TemplateLoader.add_constructor(f"!{_tag}", _construct(_long))


def load_yaml(text: str) -> dict[str, Any]:
    # TemplateLoader is a SafeLoader subclass: no arbitrary objects, only the CloudFormation tags.
    data = yaml.load(text, Loader=TemplateLoader)  # noqa: S506  # nosec B506
    return data or {}


LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"


class ExpansionError(ValueError):
    """The AWS::LanguageExtensions transform rejected the template (as CloudFormation would)."""


def expand(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation hands it to the SAM transform: `AWS::LanguageExtensions`
    (Fn::ForEach, Fn::FindInMap on literal keys, ...) applied first, by cfn-lint's implementation of
    that transform, and removed from `Transform`. A template without it is returned unchanged."""
    transforms = template.get("Transform") or []
    transforms = transforms if isinstance(transforms, list) else [transforms]
    if LANGUAGE_EXTENSIONS not in transforms:
        return template
    from cfnlint.template import Template as LintTemplate  # slow import: only when needed
    from cfnlint.template.transforms._language_extensions import language_extension

    shielded: dict[str, Any] = {}
    lint_template = LintTemplate("template.yaml", _shield(copy.deepcopy(template), shielded), [REGION])
    errors, expanded = language_extension(lint_template)
    if errors:
        raise ExpansionError("; ".join(str(error.message) for error in errors))
    expanded = _unshield(expanded, shielded)
    rest = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    expanded = dict(expanded)
    if rest:
        expanded["Transform"] = rest[0] if len(rest) == 1 else rest
    else:
        expanded.pop("Transform", None)
    return _plain(expanded)


def _pseudo_parameter_in(value: Any) -> bool:
    if isinstance(value, dict):
        ref = value.get("Ref")
        return (isinstance(ref, str) and ref.startswith("AWS::")) or any(
            _pseudo_parameter_in(item) for item in value.values()
        )
    return isinstance(value, list) and any(_pseudo_parameter_in(item) for item in value)


def _shield(value: Any, shielded: dict[str, Any]) -> Any:
    """Hide `Fn::FindInMap` lookups keyed by a pseudo parameter (`!Ref AWS::Region`) from cfn-lint's
    transform, which as a linter guesses a key for them; CloudFormation resolves them at deploy time."""
    if isinstance(value, dict):
        if "Fn::FindInMap" in value and _pseudo_parameter_in(value["Fn::FindInMap"]):
            token = f"__deploy_time_lookup_{len(shielded)}__"
            shielded[token] = value
            return token
        return {key: _shield(item, shielded) for key, item in value.items()}
    if isinstance(value, list):
        return [_shield(item, shielded) for item in value]
    return value


def _unshield(value: Any, shielded: dict[str, Any]) -> Any:
    if isinstance(value, str) and value in shielded:
        return copy.deepcopy(shielded[value])
    if isinstance(value, dict):
        return {key: _unshield(item, shielded) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshield(item, shielded) for item in value]
    return value


def _plain(value: Any) -> Any:
    """cfn-lint's nodes (str_node, dict_node) back to plain Python values."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


def load_template(path: Path) -> dict[str, Any]:
    """template.yaml read as CloudFormation reads it: short tags, then AWS::LanguageExtensions."""
    return expand(load_yaml(path.read_text()))


class Resolver:
    """Evaluates Ref/Sub/GetAtt/If/Equals/Join (and a few more) against parameter defaults,
    local overrides and the values the local runtime assigned to resources (queue URLs, ARNs)."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str] | None = None,
        refs: dict[str, str] | None = None,
        attributes: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.template = template
        self.parameters: dict[str, Any] = {}
        kinds = {}
        for name, spec in (template.get("Parameters") or {}).items():
            kinds[name] = str((spec or {}).get("Type", "String"))
            self.parameters[name] = (spec or {}).get("Default", "")
        self.parameters.update(parameters or {})
        for name, value in self.parameters.items():
            # Ref of a list parameter is a list, as in CloudFormation.
            is_list = kinds.get(name, "").startswith(("CommaDelimitedList", "List<"))
            if is_list and isinstance(value, str):
                self.parameters[name] = [item.strip() for item in value.split(",")] if value else []
            elif not is_list and isinstance(value, list):
                self.parameters[name] = ",".join(map(str, value))
        self.refs = refs if refs is not None else {}
        self.attributes = attributes if attributes is not None else {}
        self._conditions: dict[str, bool] = {}

    # -- conditions -------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = False  # guards against a (malformed) recursive definition
            definition = (self.template.get("Conditions") or {}).get(name)
            self._conditions[name] = bool(self.resolve(definition)) if definition is not None else False
        return self._conditions[name]

    # -- values -----------------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        return f"local-{name}"

    def get_att(self, logical_id: str, attribute: str) -> str:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        resource = (self.template.get("Resources") or {}).get(logical_id) or {}
        kind = resource.get("Type", "")
        if attribute == "Arn" and kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"
        if attribute == "Arn":
            return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{logical_id}"
        return f"local-{logical_id}.{attribute}"

    def _sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in (value[1] or {}).items()}
        else:
            text, variables = value, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} escapes a literal ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition":
                return self.condition(str(arg))
            if key.startswith("Fn::"):
                return self._intrinsic(key[4:], arg)
        result = {}
        for key, item in value.items():
            resolved = self.resolve(item)
            if resolved is not NO_VALUE:
                result[key] = resolved
        return result

    def _intrinsic(self, name: str, arg: Any) -> Any:  # noqa: PLR0912
        try:
            if name == "Sub":
                return self._sub(arg)
            if name == "GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else self.resolve(arg)
                return self.get_att(str(parts[0]), str(parts[1]) if len(parts) > 1 else "Arn")
            if name == "If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if name == "Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if name == "Not":
                return not self.resolve(arg)[0]
            if name == "And":
                return all(self.resolve(arg))
            if name == "Or":
                return any(self.resolve(arg))
            if name == "Join":
                delimiter, items = arg[0], self.resolve(arg[1])
                return str(delimiter).join(str(item) for item in items)
            if name == "Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if name == "Split":
                delimiter, text = self.resolve(arg)
                return str(text).split(str(delimiter))
            if name == "FindInMap":
                mapping, key, attribute = self.resolve(arg)[:3]
                return self.template["Mappings"][mapping][key][attribute]
            if name == "Base64":
                return base64.b64encode(str(self.resolve(arg)).encode()).decode()
            if name == "GetAZs":
                return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
            if name == "ToJsonString":
                return json.dumps(self.resolve(arg), separators=(",", ":"))
            if name == "Length":
                return len(self.resolve(arg))
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            pass  # an intrinsic we cannot evaluate locally: fall through to the placeholder
        return f"local-{name}"


# --------------------------------------------------------------------------------------------------
# What the local runtime needs from the template


@dataclass
class HttpRoute:
    function_id: str
    event_id: str
    method: str  # upper case, or ANY
    path: str  # as declared, e.g. /v1/wallets/{wallet_id}; "$default" for the catch-all route
    auth: str | None = None  # Auth.Authorizer of the event, if any ("NONE" disables auth)
    scopes: list[str] = field(default_factory=list)  # Auth.AuthorizationScopes (API Gateway checks them)

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass
class SqsSource:
    function_id: str
    event_id: str
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True


@dataclass
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int = 3
    memory_size: int = 128
    function_name: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.function_name or self.logical_id

    @property
    def module_path(self) -> Path:
        module = self.handler.rsplit(".", 1)[0]
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


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


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


class Template:
    """template.yaml, read once; resolution happens against a Resolver that callers can feed with
    local values (parameter overrides, queue URLs) before asking for environments."""

    def __init__(self, path: Path, parameters: dict[str, str] | None = None) -> None:
        self.path = path.resolve()
        self.root = self.path.parent
        self.raw = load_template(self.path)
        self.resolver = Resolver(self.raw, parameters)
        self.queues()  # gives every queue its local name, so GetAtt Queue.Arn resolves from the start

    # -- resources --------------------------------------------------------------------------------
    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        found = {}
        for logical_id, resource in (self.raw.get("Resources") or {}).items():
            if not isinstance(resource, dict) or resource.get("Type") != kind:
                continue
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue  # not created in this configuration
            found[logical_id] = resource
        return found

    def _globals(self) -> dict[str, Any]:
        return ((self.raw.get("Globals") or {}).get("Function")) or {}

    def layer_dirs(self) -> list[Path]:
        dirs = []
        for resource in self.resources("AWS::Serverless::LayerVersion").values():
            content = self.resolver.resolve((resource.get("Properties") or {}).get("ContentUri"))
            if isinstance(content, str) and (self.root / content).is_dir():
                dirs.append((self.root / content).resolve())
        return dirs

    def function(self, logical_id: str) -> Function:
        functions = self.resources("AWS::Serverless::Function")
        if logical_id not in functions:
            known = ", ".join(sorted(functions)) or "none"
            raise KeyError(
                f"no AWS::Serverless::Function {logical_id!r} in {self.path.name} (known: {known})"
            )
        return self._function(logical_id, functions[logical_id])

    def functions(self) -> dict[str, Function]:
        return {
            logical_id: self._function(logical_id, resource)
            for logical_id, resource in self.resources("AWS::Serverless::Function").items()
        }

    def _function(self, logical_id: str, resource: dict[str, Any]) -> Function:
        glob = self._globals()
        props = resource.get("Properties") or {}
        resolve = self.resolver.resolve
        code_uri = resolve(props.get("CodeUri", glob.get("CodeUri", ".")))
        handler = resolve(props.get("Handler", glob.get("Handler", "app.handler")))
        variables = {
            **((glob.get("Environment") or {}).get("Variables") or {}),
            **((props.get("Environment") or {}).get("Variables") or {}),
        }
        environment = {
            name: _env_value(value) for name, value in resolve(variables).items() if value is not None
        }
        name = resolve(props.get("FunctionName")) if props.get("FunctionName") else None
        return Function(
            logical_id=logical_id,
            code_uri=(self.root / str(code_uri)).resolve(),
            handler=str(handler),
            timeout=int(resolve(props.get("Timeout", glob.get("Timeout", 3)))),
            memory_size=int(resolve(props.get("MemorySize", glob.get("MemorySize", 128)))),
            function_name=str(name) if name else None,
            environment=environment,
        )

    def _events(self, kind: str):
        for logical_id, resource in self.resources("AWS::Serverless::Function").items():
            for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
                if isinstance(event, dict) and event.get("Type") == kind:
                    yield logical_id, event_id, self.resolver.resolve(event.get("Properties") or {})

    def http_routes(self) -> list[HttpRoute]:
        routes = []
        for logical_id, event_id, props in self._events("HttpApi"):
            path, method = props.get("Path"), props.get("Method")
            auth = (props.get("Auth") or {}).get("Authorizer")
            scopes = list((props.get("Auth") or {}).get("AuthorizationScopes") or [])
            if not path and not method:  # SAM: an HttpApi event without both is the $default route
                routes.append(HttpRoute(logical_id, event_id, "ANY", "$default", auth, scopes))
                continue
            method = str(method or "ANY").upper()
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            routes.append(HttpRoute(logical_id, event_id, method, str(path), auth, scopes))
        return routes

    def sqs_sources(self) -> list[SqsSource]:
        sources = []
        for logical_id, event_id, props in self._events("SQS"):
            responses = props.get("FunctionResponseTypes") or []
            sources.append(
                SqsSource(
                    function_id=logical_id,
                    event_id=event_id,
                    queue_arn=str(props.get("Queue")),
                    batch_size=max(1, min(int(props.get("BatchSize", 10)), 10)),
                    report_batch_item_failures="ReportBatchItemFailures" in responses,
                    enabled=props.get("Enabled", True) not in (False, "false", "False"),
                )
            )
        return sources

    def queues(self) -> dict[str, Queue]:
        """SQS queues with their local names; RedrivePolicy is linked to the DLQ's logical id."""
        raw = self.resources("AWS::SQS::Queue")
        queues: dict[str, Queue] = {}
        for logical_id, resource in raw.items():
            props = resource.get("Properties") or {}
            fifo = str(self.resolver.resolve(props.get("FifoQueue", False))).lower() == "true"
            name = self.resolver.resolve(props.get("QueueName")) if props.get("QueueName") else None
            if not name:
                name = f"{STACK_NAME}-{logical_id}" + (".fifo" if fifo else "")
            attributes = {}
            for attribute in (
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "DelaySeconds",
                "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds",
                "FifoQueue",
                "ContentBasedDeduplication",
            ):
                if attribute in props:
                    attributes[attribute] = _env_value(self.resolver.resolve(props[attribute]))
            queues[logical_id] = Queue(logical_id, str(name), attributes)
        # Now that every queue has a name (and so an ARN) the local runtime controls, expose them
        # to Ref / GetAtt, then link redrive policies to their DLQs.
        for queue in queues.values():
            self.resolver.attributes[(queue.logical_id, "Arn")] = queue.arn
            self.resolver.attributes[(queue.logical_id, "QueueName")] = queue.name
        for logical_id, resource in raw.items():
            policy = self.resolver.resolve((resource.get("Properties") or {}).get("RedrivePolicy"))
            if isinstance(policy, str):
                policy = json.loads(policy)
            if not isinstance(policy, dict):
                continue
            target = policy.get("deadLetterTargetArn")
            dlq = next((q for q in queues.values() if target in (q.arn, q.logical_id, q.name)), None)
            if dlq is not None:
                queues[logical_id].dead_letter_id = dlq.logical_id
                queues[logical_id].max_receive_count = int(policy.get("maxReceiveCount", 10))
        return queues
