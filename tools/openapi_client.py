"""A Python client generated from docs/openapi.json by openapi-python-client, a generator no one
here wrote: proof that tooling can consume the document. Cached under .local/client/<hash of the
document>/, so it is generated again only when the document changes.

    python -m tools.openapi_client     # prints the directory to put on sys.path (`make client`)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"
PACKAGE = "wallet_client"
CONFIG = f"package_name_override: {PACKAGE}\nproject_name_override: wallet-client\n"


class GenerationError(Exception):
    """openapi-python-client could not generate a client from the document."""


def generate(document: Path = DOCUMENT, cache: Path | None = None) -> Path:
    """The directory holding the `wallet_client` package for this document (generated if needed)."""
    cache = cache or ROOT / ".local" / "client"
    digest = hashlib.sha256(document.read_bytes()).hexdigest()[:16]
    target = cache / digest
    if (target / PACKAGE / "__init__.py").is_file():
        return target
    binary = Path(sys.executable).parent / "openapi-python-client"
    if not binary.is_file():
        raise GenerationError(f"{binary} is missing: `make` installs the dev dependencies")
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "config.yaml"
        config.write_text(CONFIG)
        output = Path(scratch) / PACKAGE
        # Its post-generation hook runs ruff, which lives beside this interpreter.
        env = {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        command = [str(binary), "generate", "--path", str(document), "--output-path", str(output)]
        command += ["--meta", "none", "--config", str(config), "--fail-on-warning"]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=300)
        if result.returncode != 0 or not (output / "__init__.py").is_file():
            raise GenerationError(f"openapi-python-client failed:\n{result.stdout}\n{result.stderr}")
        target.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target / PACKAGE, ignore_errors=True)
        shutil.copytree(output, target / PACKAGE)
    return target


def main() -> int:
    try:
        print(generate())
    except GenerationError as exc:
        print(f"client: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
