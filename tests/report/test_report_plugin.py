"""The report plugin end to end on synthetic contract suites run by pytester."""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from obshell_contract import schemas
from tests.report.synthetic import ISOLATION, MIXED, SHOULD_ONLY, SuiteRun

pytest_plugins = ("pytester",)

Runner = Callable[..., SuiteRun]
Writer = Callable[..., Path]


def test_statuses_follow_outcomes_checks_and_skip_reasons(
    suite: Writer, run_suite: Runner
) -> None:
    suite(test_mixed=MIXED)

    run = run_suite()

    assert run.result.ret == 1
    statuses = run.statuses
    assert statuses["ENC-01"] == "passed"
    assert statuses["ENV-01"] == "passed"  # only a check said so
    assert statuses["REQ-05"] == "failed"
    assert statuses["ERR-04"] == "failed"
    assert statuses["ACC-01"] == "not run"
    assert statuses["REQ-02"] == "skipped"
    assert statuses["DISC-01"] == "not run"


def test_the_verdict_line_is_the_reports_verdict(
    suite: Writer, run_suite: Runner
) -> None:
    suite(test_mixed=MIXED)

    run = run_suite()

    expected = (
        "obshell-contract: FAIL under gate 'must' — 1 MUST clause failed (REQ-05); "
        "1 SHOULD clause failed (ERR-04), not gated; report: out/compliance.html"
    )
    assert run.verdict_line == expected
    assert run.document["verdict"]["line"] == expected
    assert run.html_verdict == expected


def test_a_should_failure_passes_gate_must_but_fails_gate_should(
    suite: Writer, run_suite: Runner
) -> None:
    suite(test_should=SHOULD_ONLY)

    under_must = run_suite()
    under_should = run_suite("--gate", "should")
    under_none = run_suite("--gate", "none")

    under_must.result.assert_outcomes(passed=1, failed=1)
    assert under_must.result.ret == 0
    assert "exit 0 although pytest saw a failed test" in under_must.verdict_line
    assert under_should.result.ret == 1
    assert under_should.verdict_line.startswith(
        "obshell-contract: FAIL under gate 'should' — 2 SHOULD clauses failed (ERR-03, ERR-04)"
    )
    assert under_none.result.ret == 0
    assert under_none.document["verdict"]["gate"] == "none"


def test_a_failed_check_in_a_passing_test_fails_its_clause_and_the_gate(
    suite: Writer, run_suite: Runner
) -> None:
    suite(
        test_check="""
        import pytest

        @pytest.mark.clause("ENC-01")
        def test_passes_but_sees_a_bad_envelope(evidence):
            evidence.check("ENV-02", False, expected="status 401", actual="status 200", pointer="/status")
        """
    )

    run = run_suite()

    run.result.assert_outcomes(passed=1)
    assert run.result.ret == 1
    assert run.statuses["ENV-02"] == "failed"
    (failure,) = run.document["failures"]
    assert failure["message"] == "1 failed check(s) about ENV-02 in a test that passed"
    assert failure["checks"][0]["pointer"] == "/status"


@pytest.mark.parametrize("gate", ["must", "none"])
def test_a_crash_in_setup_stays_fatal_under_every_gate(
    suite: Writer, run_suite: Runner, gate: str
) -> None:
    suite(
        test_crash="""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("cannot reach the agent")

        @pytest.mark.clause("ERR-04")
        def test_needs_it(broken):
            pass
        """
    )

    run = run_suite("--gate", gate)

    assert run.result.ret == 1
    assert run.document["verdict"]["result"] == "ERROR"
    assert run.statuses["ERR-04"] == "error"
    assert "1 test errored outside the clause checks" in run.verdict_line


def test_a_failing_test_without_a_clause_cannot_be_gated_away(
    suite: Writer, run_suite: Runner
) -> None:
    suite(test_bare="def test_no_clause():\n    assert False\n")

    run = run_suite("--gate", "none")

    assert run.result.ret == 1
    assert run.document["verdict"]["errors"] == [
        "contract_tests/test_bare.py::test_no_clause"
    ]


def test_no_tests_keeps_pytests_exit_status(suite: Writer, run_suite: Runner) -> None:
    suite(test_empty="")

    run = run_suite()

    assert run.result.ret == 5
    assert run.document["verdict"]["result"] == "ERROR"
    assert "no tests ran" in run.verdict_line


def test_the_json_report_is_valid_against_its_schema(
    suite: Writer, run_suite: Runner
) -> None:
    suite(test_mixed=MIXED)

    document = run_suite().document

    assert schemas.violations(document, "compliance-report") == []
    assert document["targets"][0]["mock_profile"] == "reference"
    assert document["timeline"][0]["node"] == "Create upgrade dir"


# -- waivers and baseline --------------------------------------------------------------


def test_a_live_waiver_turns_the_verdict_and_an_expired_one_does_not(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_mixed=MIXED)
    pytester.makefile(
        ".toml",
        live='[[waiver]]\nclause = "REQ-05"\nreason = "fixed in 4.5.1"\nexpires = 2999-01-31\n',
        expired='[[waiver]]\nclause = "REQ-05"\nreason = "fixed in 4.5.1"\nexpires = 2001-01-31\n',
    )

    live = run_suite("--waivers", "live.toml")
    expired = run_suite("--waivers", "expired.toml")

    assert live.result.ret == 0
    assert live.statuses["REQ-05"] == "waived"
    assert "1 waived" in live.verdict_line
    assert expired.result.ret == 1
    assert expired.statuses["REQ-05"] == "failed"
    assert "1 waiver expired (REQ-05)" in expired.verdict_line
    assert "Waiver expired 2001-01-31: fixed in 4.5.1" in expired.html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--gate", "MUST"),
            "ERROR: --gate 'MUST': expected one of must, should, none",
        ),
        (
            ("--waivers", "bad.toml"),
            "ERROR: --waivers {root}/bad.toml: waiver #1: clause 'NOPE-99' is not in the catalogue",
        ),
        (
            ("--waivers", "absent.toml"),
            "ERROR: --waivers {root}/absent.toml: cannot read it: No such file or directory",
        ),
        (
            ("--compliance-baseline", "absent.json"),
            "ERROR: --compliance-baseline {root}/absent.json: cannot read it: No such file or directory",
        ),
    ],
    ids=["gate", "unknown-clause", "missing-waivers", "missing-baseline"],
)
def test_bad_inputs_are_one_line_usage_errors(
    suite: Writer,
    run_suite: Runner,
    pytester: pytest.Pytester,
    args: tuple[str, ...],
    message: str,
) -> None:
    suite(test_should=SHOULD_ONLY)
    pytester.makefile(
        ".toml",
        bad='[[waiver]]\nclause = "NOPE-99"\nreason = "x"\nexpires = 2030-01-01\n',
    )

    run = run_suite(*args)

    assert run.result.ret == 4
    errors = [line for line in run.result.errlines if line.strip()]
    assert errors == [message.format(root=pytester.path)]
    assert run.document == {}


def test_the_baseline_diff_shows_what_newly_fails_and_what_was_fixed(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_should=SHOULD_ONLY)
    shutil.copy(run_suite().json_path, pytester.path / "baseline.json")
    suite(
        test_should="""
        import pytest

        @pytest.mark.clause("ENC-01")
        def test_must_now_fails():
            assert False

        @pytest.mark.clause("ERR-04", "ERR-03")
        def test_should_now_passes():
            pass
        """
    )

    run = run_suite("--compliance-baseline", "baseline.json")

    assert run.document["baseline"] == {
        "path": "baseline.json",
        "newly_failing": ["ENC-01"],
        "fixed": ["ERR-03", "ERR-04"],
    }
    assert (
        '<li class="new">Newly failing: <a href="#clause-ENC-01">ENC-01</a></li>'
        in run.html
    )


# -- evidence for failures ---------------------------------------------------------------


def test_a_failure_carries_reproduce_and_replay_commands_and_its_cases(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_mixed=MIXED)

    run = run_suite()

    failure = next(f for f in run.document["failures"] if f["clauses"] == ["REQ-05"])
    assert (
        failure["message"]
        == "AssertionError: expected a 400 refusal, got 200 with a DAG"
    )
    assert failure["reproduce"] == (
        f"cd {pytester.path} && python -m pytest "
        "contract_tests/test_mixed.py::test_must_fails --mock-profile reference"
    )
    cases_file = "out/cases/contract_tests_test_mixed.py_test_must_fails.json"
    assert failure["cases_file"] == cases_file
    assert failure["replay"].endswith(f"obshell-contract-replay {cases_file} --url URL")
    cases = json.loads((pytester.path / cases_file).read_text("utf-8"))
    assert cases["cases"][0]["expect"] == {"status": 400, "rejected": True}
    assert cases["nodeid"] == "contract_tests/test_mixed.py::test_must_fails"


def test_cases_of_an_earlier_run_are_removed(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_mixed=MIXED)
    stale = (
        pytester.path / "out" / "cases" / "contract_tests_test_gone.py_test_old.json"
    )
    stale.parent.mkdir(parents=True)
    stale.write_text("{}", encoding="utf-8")

    run_suite()

    remaining = sorted(p.name for p in stale.parent.iterdir())
    assert remaining == ["contract_tests_test_mixed.py_test_must_fails.json"]


def test_a_live_target_gets_a_replay_command_with_its_url(
    suite: Writer, run_suite: Runner
) -> None:
    live = MIXED.replace(
        "import pytest\n",
        'import pytest\nTARGET = {"url": "http://127.0.0.1:2886", "mock_profile": None, "mock_faults": []}\n',
        1,
    )
    suite(test_live=live)

    failure = next(
        f for f in run_suite().document["failures"] if f["clauses"] == ["REQ-05"]
    )

    assert failure["replay"] == (
        "obshell-contract-replay out/cases/contract_tests_test_live.py_test_must_fails.json "
        "--url http://127.0.0.1:2886"
    )
    assert failure["reproduce"].endswith("--obshell-url http://127.0.0.1:2886")


def test_the_shrunk_hypothesis_example_is_kept(
    suite: Writer, run_suite: Runner
) -> None:
    suite(
        test_hyp="""
        import pytest
        from hypothesis import given, settings, strategies as st

        @pytest.mark.clause("REQ-12")
        @settings(database=None)
        @given(st.integers(min_value=0))
        def test_small(x):
            assert x < 7
        """
    )

    run = run_suite("--hypothesis-seed", "3")

    (failure,) = run.document["failures"]
    assert failure["example"] == "Failing test case: test_small(\n    x=7,\n)"
    assert run.document["run"]["hypothesis"]["seed"] == "3"
    assert "--hypothesis-seed 3" in failure["reproduce"]
    assert "x=7," in run.html


# -- JUnit, defaults, switches -----------------------------------------------------------


def junit_properties(path: Path) -> dict[str, list[tuple[str, str]]]:
    cases = ElementTree.parse(path).getroot().iter("testcase")
    return {
        case.get("name", ""): [
            (p.get("name", ""), p.get("value", "")) for p in case.iter("property")
        ]
        for case in cases
    }


def test_junit_carries_clause_and_level_properties(
    suite: Writer, run_suite: Runner
) -> None:
    suite(test_should=SHOULD_ONLY)

    run = run_suite("--junitxml", "out/junit.xml")

    properties = junit_properties(run.root / "out" / "junit.xml")
    assert properties["test_must_passes"] == [("clause", "ENC-01"), ("level", "MUST")]
    assert properties["test_should_fails"] == [
        ("clause", "ERR-04"),
        ("level", "SHOULD"),
        ("clause", "ERR-03"),
        ("level", "SHOULD"),
    ]


def test_a_contract_run_writes_html_json_and_junit_by_default(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_should=SHOULD_ONLY)

    run = run_suite(outputs=False)

    reports = pytester.path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == [
        "compliance.html",
        "compliance.json",
        "junit.xml",
    ]
    assert run.verdict_line.endswith("report: reports/compliance.html")
    assert junit_properties(reports / "junit.xml")["test_must_passes"] == [
        ("clause", "ENC-01"),
        ("level", "MUST"),
    ]


def test_no_compliance_report_writes_nothing_but_still_gates(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_mixed=MIXED)

    run = run_suite("--no-compliance-report", outputs=False)

    assert run.result.ret == 1
    assert run.verdict_line.endswith("report: none written")
    assert not (pytester.path / "reports").exists()


def test_listing_the_suite_writes_and_judges_nothing(
    suite: Writer, run_suite: Runner, pytester: pytest.Pytester
) -> None:
    suite(test_should=SHOULD_ONLY)

    run = run_suite("--collect-only", "-q")

    assert run.result.ret == 0
    assert not (pytester.path / "out").exists()
    assert not (pytester.path / "reports").exists()


def test_a_run_outside_the_contract_suite_is_left_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.clause("ERR-04")
        def test_should_fails():
            assert False
        """
    )

    result = pytester.runpytest(*ISOLATION)

    assert result.ret == 1
    assert not (pytester.path / "reports").exists()
    assert not any(line.startswith("obshell-contract: ") for line in result.outlines)


# -- secrets -----------------------------------------------------------------------------

SECRET = "Pw-3x!Q<secret>"

LEAKY = """
import pytest
from obshell_contract.evidence import Case

SECRET = "Pw-3x!Q<secret>"
TARGET = {"url": "http://127.0.0.1:1", "identity": SECRET, "mock_profile": "reference"}


@pytest.mark.clause("ENC-06")
def test_echoes_the_password(evidence, request):
    print("the agent said", SECRET)
    request.node.user_properties.append(("echo", SECRET))
    evidence.check("ERR-01", False, expected="no secret", actual="found " + SECRET)
    evidence.exchanges.append({"method": "POST", "uri": "/x", "status": 401,
                               "header_fields": {"Auth": "whatever", "Ts": "1"},
                               "response_text": '{"message": "' + SECRET + '"}'})
    evidence.cases.append(Case("POST", "/x", {"password": SECRET}, None, {"status": 401}))
    assert False, "wrong password " + SECRET


@pytest.mark.clause("ENC-07")
def test_skips_with_it():
    pytest.skip("not applicable: " + SECRET)
"""


def test_the_runs_secrets_reach_no_output(
    suite: Writer,
    run_suite: Runner,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OBSHELL_PASSWORD", SECRET)
    suite(test_leaky=LEAKY)

    run = run_suite("-rA", "--junitxml=out/junit.xml")

    outputs = {
        p.name: p.read_text("utf-8") for p in (pytester.path / "out").rglob("*.*")
    }
    outputs["stdout"] = run.result.stdout.str()
    assert len(outputs) == 5  # html, json, junit, one cases file, stdout
    escaped = {
        SECRET,
        json.dumps(SECRET)[1:-1],
        html.escape(SECRET),
        "Pw-3x!Q\\u003csecret",
    }
    assert [
        (name, form)
        for name, text in outputs.items()
        for form in escaped
        if form in text
    ] == []
    assert all("[redacted]" in text for text in outputs.values())
