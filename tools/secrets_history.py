"""Secrets scan of git history: every line a commit in a range added, against .secrets.baseline.

detect-secrets scans files, not history. For each commit this writes the files it changed, as
that commit left them, into a scratch tree and runs detect-secrets-hook there with the repository's
baseline, keeping the findings on lines the commit added: a secret committed and removed in a
later commit of the range is still found, while the audited false positives (matched by path, type
and hashed value) and `pragma: allowlist secret` lines pass, exactly as in the tree scan. Findings in old commits that were reviewed and are not
secrets are listed, with the reason, in .secrets.history.json (commit, path, type). Used by .ci/secrets --history RANGE (CI: the commits of
the push or pull request; nightly: the whole history).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# git's well-known empty tree: what a root commit is compared with.
NOT_SCANNED = {".secrets.baseline", ".secrets.history.json"}
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # pragma: allowlist secret (a git object id)


def _show(commit: str, path: str) -> bytes:
    return subprocess.run(  # nosec B607
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True
    ).stdout


def _git(*args: str) -> str:
    # git from PATH, as every developer and CI runs it.
    return subprocess.run(  # nosec B607
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def added_lines(commit: str) -> dict[str, set[int]]:
    """path -> the line numbers (in the commit's version of the file) that this commit added."""
    parents = _git("rev-list", "--parents", "-n", "1", commit).split()[1:]
    parent = parents[0] if parents else EMPTY_TREE
    diff = _git("diff", "--unified=0", "--no-color", "--no-renames", "--no-ext-diff", parent, commit)
    files: dict[str, set[int]] = {}
    path: str | None = None
    line_number = 0
    for line in diff.splitlines():
        if line.startswith("+++ "):
            target = line[4:]
            path = None if target == "/dev/null" else target.removeprefix("b/")
        elif line.startswith("@@") and path is not None:
            match = re.match(r"@@ -\S+ \+(\d+)", line)
            line_number = int(match[1]) if match else 0
        elif path is not None and line.startswith("+"):
            files.setdefault(path, set()).add(line_number)
            line_number += 1
    # Scan lists themselves are not scanned (the tree scan excludes them too).
    return {p: lines for p, lines in files.items() if p not in NOT_SCANNED}


def _findings(output: str) -> set[tuple[str, str, int]]:
    """(path, secret type, line) triples from detect-secrets-hook's report."""
    types = re.findall(r"^Secret Type: (.+)$", output, flags=re.MULTILINE)
    locations = re.findall(r"^Location:\s+(.+):(\d+)$", output, flags=re.MULTILINE)
    return {(path, kind, int(line)) for (path, line), kind in zip(locations, types, strict=True)}


def scan(commits: list[str], baseline: Path, hook: str, audited: list[dict[str, str]]) -> list[str]:
    findings: list[str] = []
    for commit in commits:
        files = added_lines(commit)
        if not files:
            continue
        with tempfile.TemporaryDirectory(prefix="secrets-history-") as scratch:
            # detect-secrets-hook diffs the baseline it updates with git: it needs a repository.
            subprocess.run(["git", "init", "-q", scratch], check=True)  # nosec B607
            # The whole file as the commit left it (the same context the tree scan sees); only
            # findings on the lines this commit added count.
            for path in files:
                target = Path(scratch) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_show(commit, path))
            # A fresh copy for every commit: the hook rewrites the baseline it is given (exit 3,
            # "baseline was updated", when it only moved line numbers or dropped entries).
            copy = Path(scratch) / ".baseline.json"
            copy.write_text(baseline.read_text())
            result = subprocess.run(
                [hook, "--baseline", str(copy), *sorted(files)],
                cwd=scratch,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode in (0, 3):
                continue
            found = _findings(result.stdout)
            added = {(path, kind) for path, kind, line in found if line in files.get(path, set())}
            known = {(a["path"], a["type"]) for a in audited if commit.startswith(a["commit"])}
            if (not found and result.stdout.strip()) or added - known:
                report = "\n".join(f"  {kind} at {path}:{line}" for path, kind, line in sorted(found))
                findings.append(f"commit {commit}:\n{report or result.stdout + result.stderr}")
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("range", help="git revision range, e.g. origin/main..HEAD, or HEAD for all history")
    parser.add_argument("--baseline", default=str(ROOT / ".secrets.baseline"))
    parser.add_argument("--hook", default="detect-secrets-hook")
    parser.add_argument("--audited", default=str(ROOT / ".secrets.history.json"))
    args = parser.parse_args(argv)

    commits = _git("rev-list", "--reverse", args.range).split()
    # The baseline is copied so the hook, which rewrites line numbers of a baseline it is given,
    # never touches the committed one.
    with tempfile.TemporaryDirectory() as keep:
        baseline = Path(keep) / "baseline.json"
        baseline.write_text(Path(args.baseline).read_text())
        # The hook runs inside each scratch tree: a relative path to it must not depend on the cwd.
        hook = str(Path(args.hook).absolute()) if "/" in args.hook else args.hook
        audited = json.loads(Path(args.audited).read_text())["audited"]
        findings = scan(commits, baseline, hook, audited)
    for finding in findings:
        print(finding)
    print(f"secrets history: {len(commits)} commit(s) in {args.range}, {len(findings)} with findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
