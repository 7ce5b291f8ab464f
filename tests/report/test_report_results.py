"""From pytest's test reports to per-test records and per-clause statuses."""

from __future__ import annotations

import json

import pytest

from obshell_contract.clauses import load_catalogue
from obshell_contract.evidence import Check, Evidence
from obshell_contract.redaction import Redactor
from obshell_contract.report.results import (
    Collector,
    TestRecord,
    clause_results,
    falsifying_example,
    skip_reason,
)

NODE = "contract_tests/test_x.py::test_y"
SECRET = "pw-Zq81-results"


def report(
    when: str,
    outcome: str,
    *,
    longrepr: object = None,
    clauses: tuple[str, ...] = ("REQ-05",),
    evidence: Evidence | None = None,
    **attributes: object,
) -> pytest.TestReport:
    made = pytest.TestReport(
        NODE,
        ("contract_tests/test_x.py", 1, "test_y"),
        {},
        outcome,  # type: ignore[arg-type]
        longrepr,  # type: ignore[arg-type]
        when,  # type: ignore[arg-type]
        duration=0.25,
        user_properties=[("clause", c) for c in clauses],
    )
    if evidence is not None:
        made.obshell_evidence = evidence.to_json()  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(made, name, value)
    return made


def collect(*reports: pytest.TestReport) -> TestRecord:
    collector = Collector(Redactor([SECRET]))
    for made in reports:
        collector.add(made)
    (record,) = collector.records
    return record


def test_a_passing_test_passes_over_its_three_phases() -> None:
    record = collect(
        report("setup", "passed"),
        report("call", "passed"),
        report("teardown", "passed"),
    )

    assert record.outcome == "passed"
    assert record.clauses == ["REQ-05"]
    assert record.duration == pytest.approx(0.75)


def test_a_failing_call_is_a_failure_with_its_redacted_traceback() -> None:
    record = collect(
        report("setup", "passed"),
        report("call", "failed", longrepr=f"E   AssertionError: echoed {SECRET}"),
        report("teardown", "passed"),
    )

    assert record.outcome == "failed"
    assert record.failed_phase == "call"
    assert SECRET not in (record.longrepr or "")
    assert "[redacted]" in (record.longrepr or "")


@pytest.mark.parametrize("when", ["setup", "teardown"])
def test_a_crash_outside_the_call_is_an_error(when: str) -> None:
    phases = {"setup": "passed", "call": "passed", "teardown": "passed", when: "failed"}

    record = collect(*(report(w, o, longrepr="E   boom") for w, o in phases.items()))

    assert record.outcome == "error"
    assert record.failed_phase == when


def test_a_teardown_error_after_a_failure_keeps_the_failure() -> None:
    record = collect(
        report("call", "failed", longrepr="E   first"),
        report("teardown", "failed", longrepr="E   second"),
    )

    assert record.outcome == "failed"
    assert record.longrepr == "E   first"


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("not run: the run may not upgrade", "not run"),
        ("not applicable: the agent predates REQ-02", "skipped"),
        ("no reason at all", "skipped"),
    ],
)
def test_skip_reasons_choose_between_skipped_and_not_run(
    reason: str, outcome: str
) -> None:
    longrepr = ("contract_tests/test_x.py", 3, f"Skipped: {reason}")

    record = collect(report("setup", "skipped", longrepr=longrepr))

    assert record.outcome == outcome
    assert record.reason == reason


def test_an_expected_failure_is_xfailed_with_its_reason() -> None:
    record = collect(report("call", "skipped", longrepr=None, wasxfail="known gap"))

    assert record.outcome == "xfailed"
    assert record.reason == "xfail: known gap"


def test_evidence_and_target_come_from_string_attributes_redacted() -> None:
    evidence = Evidence()
    evidence.check("ENV-01", True, expected="an envelope", actual=f"echo {SECRET}")
    target = json.dumps({"url": "http://127.0.0.1:1", "password": SECRET})

    record = collect(report("call", "passed", evidence=evidence, obshell_target=target))

    assert record.evidence.checks[0].actual == "echo [redacted]"
    assert record.target == {"url": "http://127.0.0.1:1", "password": "[redacted]"}


def test_evidence_in_user_properties_is_read_too() -> None:
    evidence = Evidence()
    evidence.check("ENV-02", False, expected="status 400", actual="status 200")
    made = report("call", "passed")
    made.user_properties.append(("obshell_evidence", evidence.to_json()))

    record = collect(made)

    assert record.failed_checks == [Check("ENV-02", False, "status 400", "status 200")]
    assert record.has_failure


def test_an_empty_later_evidence_does_not_hide_an_earlier_one() -> None:
    evidence = Evidence()
    evidence.check("ENV-01", True, expected="x", actual="x")

    record = collect(
        report("call", "passed", evidence=evidence),
        report("teardown", "passed", evidence=Evidence()),
    )

    assert len(record.evidence.checks) == 1


def test_unreadable_evidence_is_a_note_not_a_crash() -> None:
    made = report("call", "passed", obshell_target="{not json")
    made.obshell_evidence = '{"checks": [{"clause": 1}]}'  # type: ignore[attr-defined]

    record = collect(made)

    assert record.target is None
    assert record.evidence.notes == [
        "unreadable evidence: TypeError: Check.__init__() missing 3 required "
        "positional arguments: 'passed', 'expected', and 'actual'"
    ]


def test_skip_reason_drops_pytests_prefix() -> None:
    assert skip_reason(("f.py", 1, "Skipped: not run: x")) == "not run: x"
    assert skip_reason("Skipped: y") == "y"


@pytest.mark.parametrize(
    ("traceback", "example"),
    [
        (
            "E   assert 10 < 10\nE   Failing test case: test_hyp(\nE       x=10,\nE   )\n\nfile.py:3",
            "Failing test case: test_hyp(\n    x=10,\n)",
        ),
        (
            "E   Falsifying example: test_one(x=1)\nother",
            "Falsifying example: test_one(x=1)",
        ),
        (
            "Falsifying explicit example: test_two(\n    body='{} x',\n)\n",
            "Falsifying explicit example: test_two(\n    body='{} x',\n)",
        ),
        ("E   assert False", None),
    ],
    ids=["failing-test-case", "falsifying-one-line", "explicit", "none"],
)
def test_the_shrunk_example_is_cut_from_the_traceback(
    traceback: str, example: str | None
) -> None:
    assert falsifying_example(traceback) == example


# -- clause results ----------------------------------------------------------------


def record(nodeid: str, outcome: str, clauses: list[str], *checks: Check) -> TestRecord:
    return TestRecord(
        nodeid, clauses, outcome, 0.1, evidence=Evidence(checks=list(checks))
    )  # type: ignore[arg-type]


def test_a_failed_check_fails_its_clause_even_in_a_passing_test() -> None:
    records = [
        record(
            "t::a",
            "passed",
            ["ENC-01"],
            Check("ENV-05", False, "RFC 3339", "no offset"),
        ),
        record("t::b", "passed", ["ENV-05"]),
    ]

    results = clause_results(load_catalogue(), records)

    assert results["ENC-01"].status == "passed"
    assert results["ENV-05"].status == "failed"
    assert results["ENV-05"].failing_tests == ["t::a"]


def test_passed_checks_alone_pass_a_clause_no_test_names() -> None:
    records = [record("t::a", "passed", ["ENC-01"], Check("ENV-01", True, "x", "x"))]

    results = clause_results(load_catalogue(), records)

    assert results["ENV-01"].status == "passed"
    assert results["ENV-01"].passed_checks == 1


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        (["passed", "failed"], "failed"),
        (["passed", "error"], "error"),
        (["passed", "skipped"], "passed"),
        (["skipped", "not run"], "skipped"),
        (["xfailed"], "skipped"),
        (["not run", "not run"], "not run"),
        ([], "not run"),
    ],
)
def test_the_worst_outcome_decides_a_clause(outcomes: list[str], status: str) -> None:
    records = [record(f"t::{n}", o, ["REQ-05"]) for n, o in enumerate(outcomes)]

    results = clause_results(load_catalogue(), records)

    assert results["REQ-05"].status == status


def test_every_catalogue_clause_gets_a_result_in_catalogue_order() -> None:
    results = clause_results(load_catalogue(), [record("t::a", "passed", ["NOPE-99"])])

    assert list(results) == list(load_catalogue())
    assert "NOPE-99" not in results
