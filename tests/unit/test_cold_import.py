"""Cold starts: a function imports only what its requests use. SQLAlchemy is for Alembic and the
migration function; the API handlers, the SQS consumer, the probes and the sweep reach PostgreSQL
through psycopg alone, so their cold import never pays for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "common"
# Every function whose code is in functions/: API routes, probes, SQS ingestion, the sweep, the hook.
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))

# Imported as Lambda does (the function's directory first on sys.path, the layer under it), each in
# turn in one fresh interpreter: the first function whose import loads a forbidden module is named.
_SCRIPT = """
import importlib.util, json, sys
root, layer, names, forbidden = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
sys.path.insert(0, layer)
found = {}
for name in names:
    directory = f"{root}/functions/{name}"
    sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(f"app_{name}", f"{directory}/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.remove(directory)
    loaded = sorted(m for m in forbidden if m in sys.modules)
    if loaded:
        found[name] = loaded
        break
print(json.dumps({"imported": len(names), "found": found}))
"""


def _first_importer_of(forbidden: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _SCRIPT,
            str(ROOT),
            str(LAYER),
            json.dumps(FUNCTIONS),
            json.dumps(forbidden),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_no_function_handler_imports_sqlalchemy_or_alembic():
    assert len(FUNCTIONS) > 20  # the API routes, probes, ingestion, sweep and hook are all checked

    answer = _first_importer_of(["sqlalchemy", "alembic"])

    assert answer["found"] == {}, "this handler's cold import loads SQLAlchemy"
