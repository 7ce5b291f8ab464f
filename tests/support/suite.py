"""Running pytest, and the contract suite, in a subprocess as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "clause_statuses", "run_contract_suite", "run_pytest"]

ROOT = Path(__file__).resolve().parent.parent.parent


def run_pytest(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_contract_suite(out: Path, *args: str) -> tuple[int, dict[str, str]]:
    """The whole contract suite, quickly, reports under ``out``.

    Returns the exit code and the status of every clause.
    """
    report = out / "compliance.json"
    result = run_pytest(
        "contract_tests",
        "-q",
        "--hypothesis-profile",
        "obshell-quick",
        "--dag-timeout",
        "4",
        "--compliance-json",
        str(report),
        "--compliance-report",
        str(out / "compliance.html"),
        "--junitxml",
        str(out / "junit.xml"),
        *args,
        timeout=600,
    )
    return result.returncode, clause_statuses(report)


def clause_statuses(report: Path) -> dict[str, str]:
    """Clause id -> status, from a ``compliance.json``."""
    document = json.loads(report.read_text(encoding="utf-8"))
    return {clause["id"]: clause["status"] for clause in document["clauses"]}
