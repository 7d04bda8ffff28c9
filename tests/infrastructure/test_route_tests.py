"""Every route of the template's route table has its tests where a reader looks first:
tests/integration/test_<handler module>.py (cross-cutting behaviour keeps files named for it)."""

from __future__ import annotations

import ast

from tests.infrastructure import sam

INTEGRATION = sam.ROOT / "tests" / "integration"


def routes_without_tests(rows: dict[str, dict]) -> list[str]:
    """The handler modules of `rows` with no test_<module>.py holding at least one test function."""
    missing = []
    for row in rows.values():
        module = row["Handler"].split(".")[0]
        path = INTEGRATION / f"test_{module}.py"
        tests = (
            [
                node
                for node in ast.parse(path.read_text()).body
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            ]
            if path.is_file()
            else []
        )
        if not tests:
            missing.append(module)
    return sorted(missing)


def test_every_route_module_has_its_own_integration_test_file(template):
    rows = sam.route_table(template)

    assert len(rows) > 0
    assert routes_without_tests(rows) == [], "add tests/integration/test_<module>.py for each"


def test_the_check_notices_a_route_without_tests(template):
    rows = dict(sam.route_table(template))
    rows["PingGet"] = {"Handler": "ping_get.app.handler", "Method": "GET", "Path": "/v1/pings/{ping_id}"}

    assert routes_without_tests(rows) == ["ping_get"]
