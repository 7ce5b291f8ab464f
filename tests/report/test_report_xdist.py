"""Results from pytest-xdist workers end up in one report on the controller."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.report.synthetic import ISOLATION, MIXED, SHOULD_ONLY, SuiteRun

pytest_plugins = ("pytester",)


def test_plain_string_attributes_survive_report_serialisation(
    pytestconfig: pytest.Config,
) -> None:
    made = pytest.TestReport("t.py::t", ("t.py", 0, "t"), {}, "passed", None, "call")
    made.obshell_evidence = '{"checks": []}'  # type: ignore[attr-defined]
    made.obshell_target = '{"url": "http://127.0.0.1:1"}'  # type: ignore[attr-defined]

    # The same hooks xdist uses to ship reports from workers to the controller.
    data = pytestconfig.hook.pytest_report_to_serializable(
        config=pytestconfig, report=made
    )
    back = pytestconfig.hook.pytest_report_from_serializable(
        config=pytestconfig, data=json.loads(json.dumps(data))
    )

    assert back.obshell_evidence == '{"checks": []}'
    assert back.obshell_target == '{"url": "http://127.0.0.1:1"}'


def test_two_workers_give_one_merged_report(
    suite: Callable[..., Path],
    run_suite: Callable[..., SuiteRun],
    pytester: pytest.Pytester,
) -> None:
    suite(test_mixed=MIXED, test_should=SHOULD_ONLY)
    single = run_suite()

    result = pytester.runpytest_subprocess(
        *ISOLATION,
        "-n",
        "2",
        "contract_tests",
        "--compliance-report=out/compliance.html",
        "--compliance-json=out/compliance.json",
        "--junitxml=out/junit.xml",
    )
    merged = SuiteRun.read(result, pytester.path)

    assert merged.result.ret == single.result.ret == 1
    assert merged.document["run"]["workers"] == 2
    assert len(merged.document["tests"]) == len(single.document["tests"]) == 7
    assert merged.statuses == single.statuses
    # ENV-01 is known only from evidence: the attribute crossed the workers.
    assert merged.statuses["ENV-01"] == "passed"
    failure = next(f for f in merged.document["failures"] if f["clauses"] == ["REQ-05"])
    assert failure["cases_file"] is not None
    assert merged.document["timeline"][0]["dag_id"] == "7"
    assert merged.verdict_line == merged.document["verdict"]["line"]
    assert merged.verdict_line.replace("out/", "") == single.verdict_line.replace(
        "out/", ""
    )

    cases = (
        ElementTree.parse(pytester.path / "out" / "junit.xml")
        .getroot()
        .iter("testcase")
    )
    clauses = {
        c.get("name"): [
            p.get("value") for p in c.iter("property") if p.get("name") == "clause"
        ]
        for c in cases
    }
    assert clauses["test_should_fails"] == ["ERR-04", "ERR-03"]
