"""The template's route table (Mappings.Routes), and the route API Gateway picks for a request, so a
test names the request (`api.post("/v1/transfers", ...)`) rather than the function that serves it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import yaml

from tests.support.lambda_runtime import ROOT


@dataclass(frozen=True)
class Route:
    module: str  # the handler's module folder in functions/, e.g. "transfer_create"
    method: str
    path: str  # the route's pattern, e.g. "/v1/wallets/{wallet_id}"

    @property
    def variables(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route serves the request, else None. A variable is one
        non-empty path segment, as in an HTTP API route."""
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml's plain YAML; intrinsic-function tags (!Ref, !Sub, ...) become None:
    the route table uses none of them."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@functools.cache
def route_table() -> tuple[Route, ...]:
    text = (ROOT / "template.yaml").read_text()
    rows = yaml.load(text, Loader=_CloudFormationLoader)["Mappings"]["Routes"]  # noqa: S506 - SafeLoader subclass
    return tuple(Route(row["Handler"].split(".")[0], row["Method"], row["Path"]) for row in rows.values())


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route serving `method path` and its path parameters. Like API Gateway, the most specific
    route wins: the one with the fewest path variables."""
    matches = [
        (route, params) for route in route_table() if (params := route.match(method, path)) is not None
    ]
    if not matches:
        raise LookupError(f"no route in template.yaml serves {method} {path}")
    return min(matches, key=lambda match: len(match[0].variables))
