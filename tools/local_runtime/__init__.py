"""Local runtime driven by template.yaml: `python -m tools.local_runtime --help`."""
