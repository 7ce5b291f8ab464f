"""Fixtures for the report plugin's tests: synthetic contract suites run by pytester.

A synthetic suite is a ``contract_tests`` directory whose conftest plays the part
of the suite's plugin: tests fill an ``evidence`` fixture, and a
``pytest_runtest_makereport`` wrapper attaches it (and a target) to every
report as the real plugin does. The real plugin is blocked in those runs
(``-p no:obshell_contract``) so that only the report plugin is under test.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ISOLATION = ("-p", "no:obshell_contract", "-p", "obshell_contract.report.plugin")

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
    """A finished run of a synthetic suite, with its outputs parsed."""

    result: pytest.RunResult
    root: Path

    @property
    def html_path(self) -> Path:
        return self.root / "out" / "compliance.html"

    @property
    def json_path(self) -> Path:
        return self.root / "out" / "compliance.json"

    @property
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.json_path.read_text("utf-8"))
        return loaded

    @property
    def html(self) -> str:
        return self.html_path.read_text("utf-8")

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


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write a synthetic ``contract_tests`` suite: ``suite(test_x="source", ...)``."""

    def write(**modules: str) -> Path:
        directory = pytester.path / "contract_tests"
        directory.mkdir(exist_ok=True)
        (directory / "conftest.py").write_text(SYNTHETIC_CONFTEST, "utf-8")
        for name, source in modules.items():
            (directory / f"{name}.py").write_text(textwrap.dedent(source), "utf-8")
        return directory

    return write


@pytest.fixture
def run_suite(pytester: pytest.Pytester) -> Callable[..., SuiteRun]:
    """Run the synthetic suite in-process with explicit report paths."""

    def run(*args: str, outputs: bool = True) -> SuiteRun:
        paths = (
            (
                "--compliance-report",
                "out/compliance.html",
                "--compliance-json",
                "out/compliance.json",
            )
            if outputs
            else ()
        )
        result = pytester.runpytest(*ISOLATION, "contract_tests", *paths, *args)
        return SuiteRun(result, pytester.path)

    return run


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target or password from the developer's shell must not leak into runs."""
    for name in ("OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD", "OBSHELL_URL"):
        monkeypatch.delenv(name, raising=False)
