"""Fixtures for the report plugin's tests: synthetic contract suites run by pytester."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from obshell_contract.strategies import PROFILE_QUICK
from tests.report.synthetic import (
    ISOLATION,
    SYNTHETIC_CONFTEST,
    RealRun,
    SuiteRun,
    run_real_suite,
)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write a synthetic ``contract_tests`` suite: ``suite(test_x="source", ...)``."""

    def write(**modules: str) -> Path:
        # An ini file pins the rootdir (the default reports/ goes there) and
        # turns warnings into errors, as the project's own configuration does.
        pytester.makeini("[pytest]\nfilterwarnings = error\n")
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
        return SuiteRun.read(result, pytester.path)

    return run


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target or password from the developer's shell must not leak into runs."""
    for name in ("OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD", "OBSHELL_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """The real suite, run once for every test that reads its outputs."""
    return run_real_suite(tmp_path_factory.mktemp("real-suite"), PROFILE_QUICK)
