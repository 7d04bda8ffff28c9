"""Deployability check (.ci/expanded-lint, and tests/infrastructure/test_expanded_lint.py): expand
template.yaml the way CloudFormation does (AWS::LanguageExtensions, then the SAM transform) for every
samconfig.toml environment, and run cfn-lint on the result. cfn-lint 1.x lints the SAM template
without expanding it, so a circular dependency between generated resources (E3004) or any other
error in what CloudFormation really receives is only visible here.

    .venv/bin/python -m tests.infrastructure.expanded_lint     # exit 1 on any E-error
"""

from __future__ import annotations

import logging
import sys

from tests.infrastructure import sam


def errors_by_environment() -> dict[str, list[str]]:
    template = sam.raw_template()
    found: dict[str, list[str]] = {}
    for environment in sam.environments():
        try:
            cfn = sam.translate(template, sam.overrides(environment))
        except Exception as error:  # the SAM transform refusing is a finding too
            found[environment] = [f"SAM transform failed: {error}"]
            continue
        found[environment] = sam.lint_errors(cfn)
    return found


def main() -> int:
    logging.basicConfig(level=logging.ERROR)  # samtranslator's feature-toggle and metrics chatter
    found = errors_by_environment()
    for environment, errors in found.items():
        for error in errors:
            print(f"{environment}: {error}")
        print(f"expanded-lint {environment}: {len(errors)} error(s)")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
