"""Tests of the developer tools (tools/, bench/): the local runtime, the OpenAPI document, bench, soak,
deploy parameters."""
