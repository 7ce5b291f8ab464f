"""Runs for the report plugin's tests: synthetic suites, and the real one once.

A synthetic suite is a ``contract_tests`` directory whose conftest stands in for
the suite's plugin: tests fill an ``evidence`` fixture, and a
``pytest_runtest_makereport`` wrapper attaches it (and a target) to every
report as plain string attributes, as the real plugin does. The real plugin is
blocked in those runs (``-p no:obshell_contract.plugin``) so that only the report
plugin is under test.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The suite's plugin is registered under its module name (root conftest and
# pytest11 entry point alike); blocking it keeps the embedded mock out.
ISOLATION = (
    "-p",
    "no:obshell_contract.plugin",
    "-p",
    "obshell_contract.report.plugin",
)

SYNTHETIC_CONFTEST = """
import json

import pytest

from obshell_contract.evidence import Case, Evidence, TimelineEntry

TARGET = {
    "url": "http://127.0.0.1:1",
    "agent_version": "4.5.0.0-100000012026050801",
    "identity": "CLUSTER AGENT",
    "key_bits": 1024,
    "error_scheme": "errCode",
    "mock_profile": "reference",
    "mock_faults": [],
}


@pytest.fixture
def evidence(request):
    found = Evidence()
    request.node.synthetic_evidence = found
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    found = getattr(item, "synthetic_evidence", None) or Evidence()
    report.obshell_evidence = found.to_json()
    report.obshell_target = json.dumps(getattr(item.module, "TARGET", TARGET))
    return report
"""


@dataclass
class SuiteRun:
    """A finished run of a synthetic suite, its outputs read as it left them."""

    result: pytest.RunResult
    root: Path
    json_path: Path
    document: dict[str, Any]
    html: str

    @classmethod
    def read(cls, result: pytest.RunResult, root: Path) -> SuiteRun:
        # Read now: a later run in the same test writes to the same paths.
        json_path = root / "out" / "compliance.json"
        html_path = root / "out" / "compliance.html"
        document = (
            json.loads(json_path.read_text("utf-8")) if json_path.exists() else {}
        )
        page = html_path.read_text("utf-8") if html_path.exists() else ""
        return cls(result, root, json_path, document, page)

    @property
    def html_path(self) -> Path:
        return self.json_path.with_name("compliance.html")

    @property
    def html_verdict(self) -> str:
        """The verdict paragraph of the HTML report, unescaped."""
        found = re.search(r'<p class="verdict \w+" id="verdict">(.*?)</p>', self.html)
        assert found, "no verdict in the HTML report"
        return html.unescape(found.group(1))

    @property
    def statuses(self) -> dict[str, str]:
        return {c["id"]: c["status"] for c in self.document["clauses"]}

    @property
    def verdict_line(self) -> str:
        lines = [
            ln for ln in self.result.outlines if ln.startswith("obshell-contract: ")
        ]
        verdicts = [ln for ln in lines if " under gate " in ln]
        assert len(verdicts) == 1, self.result.outlines
        return verdicts[0]


# A suite with one test of each kind: MUST pass, MUST fail (with a case and a
# DAG timeline), SHOULD fail, not run, not applicable.
MIXED = """
import pytest
from obshell_contract.evidence import Case, TimelineEntry


@pytest.mark.clause("ENC-01")
def test_must_passes(evidence):
    evidence.check("ENV-01", True, expected="an envelope", actual="an envelope")


@pytest.mark.clause("REQ-05")
def test_must_fails(evidence):
    evidence.cases.append(
        Case("POST", "/api/v1/agent/upgrade", {"version": "x", "release": "1.el7"},
             None, {"status": 400, "rejected": True})
    )
    evidence.timeline.append(TimelineEntry("7", 1, "Create upgrade dir", "RUNNING", 0.0, 0.2))
    assert False, "expected a 400 refusal, got 200 with a DAG"


@pytest.mark.clause("ERR-04")
def test_should_fails(evidence):
    assert False, "markup in the message"


@pytest.mark.clause("ACC-01")
def test_not_run():
    pytest.skip("not run: the run may not upgrade")


@pytest.mark.clause("REQ-02")
def test_not_applicable():
    pytest.skip("not applicable: the agent predates REQ-02")
"""

SHOULD_ONLY = """
import pytest


@pytest.mark.clause("ENC-01")
def test_must_passes():
    pass


@pytest.mark.clause("ERR-04", "ERR-03")
def test_should_fails():
    assert False
"""


# -- the real contract suite ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
ROOT_PASSWORD = "Root-Zq8#secret-7f3"
AGENT_PASSWORD = "Agent-Kx5!secret-2c9"


@dataclass
class RealRun:
    """One run of the real suite against the embedded mock, and what it wrote."""

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

    @property
    def html_path(self) -> Path:
        return self.out / "compliance.html"


def run_real_suite(out: Path, profile: str) -> RealRun:
    """Encryption and error tests with distinctive passwords and two faults.

    ``echo-password`` makes the mock echo a password it was sent (the root
    password, sent as the agent password, comes back in the 401 message);
    ``markup-in-errors`` puts ``<script>alert(1)</script><b>x</b>`` in every
    error message. Both break SHOULD clauses and ERR-01 (a MUST).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSHELL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "contract_tests/test_errors.py",
            "contract_tests/test_encryption.py",
            "-p",
            "no:cacheprovider",
            "-rA",
            # Few, fixed examples: this run is about the report, not the agent.
            f"--hypothesis-profile={profile}",
            f"--obshell-password={ROOT_PASSWORD}",
            f"--obshell-agent-password={AGENT_PASSWORD}",
            "--mock-fault=echo-password",
            "--mock-fault=markup-in-errors",
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
    return RealRun(out, done.stdout, done.stderr, done.returncode)
