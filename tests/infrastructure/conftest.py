from __future__ import annotations

import pytest

from tests.infrastructure import sam


@pytest.fixture(scope="session")
def template() -> dict:
    return sam.raw_template()


@pytest.fixture(scope="session")
def staging(template) -> dict:
    return sam.translate(template, sam.overrides("staging"))


@pytest.fixture(scope="session")
def production(template) -> dict:
    return sam.translate(template, sam.overrides("production"))
