"""The real contract suite against the embedded mock: secrets stay out of every output.

One run, made once for the module: distinctive root and agent passwords, and the
``echo-password`` fault, which makes the mock echo a password it was sent (the
root password, sent as the agent password, comes back in the 401 message).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from obshell_contract import schemas
from obshell_contract.strategies import PROFILE_QUICK

ROOT = Path(__file__).resolve().parents[2]
ROOT_PASSWORD = "Root-Zq8#secret-7f3"
AGENT_PASSWORD = "Agent-Kx5!secret-2c9"


@dataclass
class Run:
    out: Path
    stdout: str
    stderr: str
    returncode: int

    @property
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(
            (self.out / "compliance.json").read_text("utf-8")
        )
        return loaded


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("suite")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "contract_tests/test_encryption.py",
            "-p",
            "no:cacheprovider",
            # Few, fixed examples: this run is about the report, not the agent.
            f"--hypothesis-profile={PROFILE_QUICK}",
            "-rA",
            "--obshell-password",
            ROOT_PASSWORD,
            "--obshell-agent-password",
            AGENT_PASSWORD,
            "--mock-fault",
            "echo-password",
            f"--compliance-report={out / 'compliance.html'}",
            f"--compliance-json={out / 'compliance.json'}",
            f"--junitxml={out / 'junit.xml'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Run(out, done.stdout, done.stderr, done.returncode)


def forms(secret: str) -> set[str]:
    """The secret as it is, and as JSON, HTML and XML writers may spell it."""
    escaped = json.dumps(secret)[1:-1]
    return {
        secret,
        escaped,
        secret.replace("#", "&#35;"),
        secret.replace("!", "&#33;"),
        secret.replace("!", "\\u0021"),
    }


def test_no_password_reaches_any_file_or_the_terminal(run: Run) -> None:
    written = sorted(p for p in run.out.rglob("*") if p.is_file())
    texts = {str(p.relative_to(run.out)): p.read_text("utf-8") for p in written}
    texts["stdout"] = run.stdout
    texts["stderr"] = run.stderr

    assert {"compliance.html", "compliance.json", "junit.xml"} <= set(texts)
    leaks = [
        (name, form)
        for name, text in texts.items()
        for secret in (ROOT_PASSWORD, AGENT_PASSWORD)
        for form in forms(secret)
        if form in text
    ]
    assert leaks == []


def test_the_agent_did_echo_a_password_and_the_report_says_so(run: Run) -> None:
    # Without an echo the test above would prove nothing.
    clauses = {c["id"]: c for c in run.document["clauses"]}

    assert clauses["ERR-01"]["status"] == "failed"
    responses = [
        exchange["response_text"]
        for failure in run.document["failures"]
        for exchange in failure["exchanges"]
    ]
    assert any("Agent password is incorrect: [redacted]" in text for text in responses)


def test_the_suites_report_is_valid_and_its_verdict_is_the_printed_one(
    run: Run,
) -> None:
    document = run.document
    printed = [ln for ln in run.stdout.splitlines() if " under gate 'must' — " in ln]

    assert schemas.violations(document, "compliance-report") == []
    assert printed == [document["verdict"]["line"]]
    assert run.returncode == document["verdict"]["exit_status"]
    assert document["targets"][0]["mock_faults"] == ["echo-password"]
    assert len(document["suite"]["schema_hashes"]) == len(schemas.names())


def test_every_suite_test_carries_its_clauses_in_junit(run: Run) -> None:
    catalogue_levels = {c["id"]: c["level"] for c in run.document["clauses"]}
    cases = list(ElementTree.parse(run.out / "junit.xml").getroot().iter("testcase"))

    assert cases
    for case in cases:
        properties = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        clauses = [value for name, value in properties if name == "clause"]
        levels = [value for name, value in properties if name == "level"]
        assert clauses, case.get("name")
        assert levels == [catalogue_levels[c] for c in clauses]
