"""The gate, waivers, the verdict line and the baseline diff, without pytest runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from obshell_contract.clauses import load_catalogue
from obshell_contract.errors import UsageError
from obshell_contract.report.gate import (
    RunFacts,
    Waiver,
    apply_waivers,
    decide,
    diff_baseline,
    load_baseline,
    load_waivers,
    parse_gate,
)
from obshell_contract.report.results import ClauseResult, clause_results

TODAY = dt.date(2026, 6, 1)
CLEAN = RunFacts(pytest_status=0, tests_run=5, pytest_failed=False, report="r.html")
FAILED = RunFacts(pytest_status=1, tests_run=5, pytest_failed=True, report="r.html")


def results(**statuses: str) -> dict[str, ClauseResult]:
    """Every clause not run, except ``REQ_05="failed"``-style overrides."""
    made = clause_results(load_catalogue(), [])
    for key, status in statuses.items():
        made[key.replace("_", "-")].status = status  # type: ignore[assignment]
    return made


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the gate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "result", "status"),
    [("must", "FAIL", 1), ("should", "FAIL", 1), ("none", "PASS", 0)],
)
def test_a_failed_must_clause_fails_gates_must_and_should(
    gate: str, result: str, status: int
) -> None:
    verdict = decide(
        results(ENC_01="failed", ENC_02="passed"), parse_gate(gate), [], FAILED, TODAY
    )

    assert (verdict.result, verdict.exit_status) == (result, status)
    assert verdict.failed_must == ["ENC-01"]


@pytest.mark.parametrize(("gate", "status"), [("must", 0), ("should", 1), ("none", 0)])
def test_a_failed_should_clause_fails_only_gate_should(gate: str, status: int) -> None:
    verdict = decide(results(ENC_02="failed"), parse_gate(gate), [], FAILED, TODAY)

    assert verdict.exit_status == status


def test_the_verdict_line_names_the_failed_clauses_the_waived_and_the_report() -> None:
    made = results(ENC_01="failed", REQ_05="failed", REQ_06="waived")

    verdict = decide(made, "must", [], FAILED, TODAY)

    assert verdict.line == (
        "obshell-contract: FAIL under gate 'must' — 2 MUST clauses failed "
        "(ENC-01, REQ-05); 1 waived; report: r.html"
    )


def test_an_ungated_failure_says_why_the_exit_status_is_zero() -> None:
    verdict = decide(
        results(ERR_04="failed", ENC_01="passed"), "must", [], FAILED, TODAY
    )

    assert verdict.result == "PASS"
    assert "1 SHOULD clause failed (ERR-04), not gated" in verdict.line
    assert "exit 0 although pytest saw a failed test" in verdict.line


def test_a_clean_run_passes_and_counts_its_clauses() -> None:
    verdict = decide(results(ENC_01="passed"), "must", [], CLEAN, TODAY)

    assert verdict.result == "PASS"
    assert f"1 of {len(load_catalogue())} clauses passed" in verdict.line
    assert "although" not in verdict.line


@pytest.mark.parametrize("gate", ["must", "should", "none"])
def test_errors_outside_the_clauses_stay_fatal_under_every_gate(gate: str) -> None:
    facts = RunFacts(1, 5, True, errors=["t.py::test_setup_crash"], report=None)

    verdict = decide(results(ENC_01="passed"), parse_gate(gate), [], facts, TODAY)

    assert (verdict.result, verdict.exit_status) == ("ERROR", 1)
    assert (
        "1 test errored outside the clause checks (t.py::test_setup_crash)"
        in verdict.line
    )
    assert verdict.line.endswith("report: none written")


@pytest.mark.parametrize(
    ("pytest_status", "words"), [(5, "no tests"), (2, "interrupted")]
)
def test_pytests_own_fatal_statuses_are_kept(pytest_status: int, words: str) -> None:
    facts = RunFacts(pytest_status, 0, False)

    verdict = decide(results(), "none", [], facts, TODAY)

    assert (verdict.result, verdict.exit_status) == ("ERROR", pytest_status)
    assert words in verdict.line


@pytest.mark.parametrize("value", ["MUST", "all", "", "must "])
def test_a_bad_gate_is_a_usage_error_naming_it(value: str) -> None:
    with pytest.raises(
        UsageError, match=r"^--gate '.*': expected one of must, should, none$"
    ):
        parse_gate(value)


# -- waivers ---------------------------------------------------------------------------


def test_waivers_load_with_toml_dates_and_quoted_dates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[waiver]]\nclause = "REQ-05"\nreason = "fixed in 4.5.1"\nexpires = 2027-01-31\n\n'
        '[[waiver]]\nclause = "ENV-05"\nreason = "Go zone bug"\nexpires = "2026-01-01"\n',
    )

    waivers = load_waivers(path, load_catalogue())

    assert waivers == [
        Waiver("REQ-05", "fixed in 4.5.1", dt.date(2027, 1, 31)),
        Waiver("ENV-05", "Go zone bug", dt.date(2026, 1, 1)),
    ]


def test_a_live_waiver_waives_a_failure_and_an_expired_one_does_not() -> None:
    made = results(REQ_05="failed", ENV_01="failed")
    waivers = [
        Waiver(
            "REQ-05", "tracked", dt.date(2026, 6, 1)
        ),  # expires today: still in force
        Waiver("ENV-01", "tracked", dt.date(2026, 5, 31)),
    ]

    apply_waivers(made, waivers, TODAY)
    verdict = decide(made, "must", waivers, FAILED, TODAY)

    assert made["REQ-05"].status == "waived"
    assert made["ENV-01"].status == "failed"
    assert verdict.result == "FAIL"
    assert verdict.waived == ["REQ-05"]
    assert verdict.expired_waivers == ["ENV-01"]
    assert "1 waiver expired (ENV-01)" in verdict.line


def test_a_waiver_never_turns_an_error_into_waived() -> None:
    made = results(REQ_05="error")

    apply_waivers(made, [Waiver("REQ-05", "x", dt.date(2030, 1, 1))], TODAY)

    assert made["REQ-05"].status == "error"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[waiver]]\nclause = "NOPE-99"\nreason = "x"\nexpires = 2027-01-01\n',
            r"waiver #1: clause 'NOPE-99' is not in the catalogue",
        ),
        (
            '[[waiver]]\nclause = "REQ-05"\nexpires = 2027-01-01\n',
            r"waiver #1 \(REQ-05\): reason must be a non-empty string, got None",
        ),
        (
            '[[waiver]]\nclause = "REQ-05"\nreason = "  "\nexpires = 2027-01-01\n',
            r"reason must be a non-empty string, got '  '",
        ),
        (
            '[[waiver]]\nclause = "REQ-05"\nreason = "x"\n',
            r"expires must be a date like 2027-01-31, got None",
        ),
        (
            '[[waiver]]\nclause = "REQ-05"\nreason = "x"\nexpires = "soon"\n',
            r"expires must be a date like 2027-01-31, got 'soon'",
        ),
        (
            '[[waiver]]\nclause = "REQ-05"\nreason = "x"\nexpires = 2027-01-01T00:00:00\n',
            r"expires must be a date",
        ),
        (
            '[[waiver]]\nclause = "REQ-05"\nreason = "x"\nexpires = 2027-01-01\nowner = "me"\n',
            r"unknown fields \['owner'\]",
        ),
        ("[[waiver]\n", r"not valid TOML"),
        ('[waivers]\nclause = "REQ-05"\n', r"expected only \[\[waiver\]\] tables"),
    ],
    ids=[
        "unknown-clause",
        "no-reason",
        "blank-reason",
        "no-expiry",
        "bad-expiry",
        "datetime",
        "unknown-field",
        "bad-toml",
        "wrong-table",
    ],
)
def test_a_bad_waiver_file_is_a_one_line_usage_error_naming_file_and_value(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(UsageError, match=message) as caught:
        load_waivers(path, load_catalogue())

    assert str(caught.value).startswith(f"--waivers {path}: ")
    assert "\n" not in str(caught.value)


def test_a_missing_waiver_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--waivers .*absent\.toml: cannot read it"):
        load_waivers(tmp_path / "absent.toml", load_catalogue())


# -- baseline --------------------------------------------------------------------------


def test_the_baseline_diff_names_newly_failing_and_fixed_clauses(
    tmp_path: Path,
) -> None:
    before = tmp_path / "before.json"
    rows = [
        {"id": "ENC-01", "status": "passed"},
        {"id": "REQ-05", "status": "failed"},
        {"id": "REQ-06", "status": "waived"},
        {"id": "ENV-05", "status": "failed"},
    ]
    before.write_text(json.dumps({"clauses": rows}), encoding="utf-8")
    now = results(
        ENC_01="failed",
        REQ_05="passed",
        REQ_06="passed",
        ENV_05="failed",
        ERR_04="waived",
    )

    diff = diff_baseline("before.json", load_baseline(before), now)

    assert diff.newly_failing == ["ENC-01", "ERR-04"]
    assert diff.fixed == ["REQ-05", "REQ-06"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"clauses": [{"id": 1}]}', "expected a compliance report"),
        ("[]", "expected a compliance report"),
    ],
)
def test_an_unusable_baseline_is_a_usage_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(UsageError, match=message) as caught:
        load_baseline(path)

    assert str(caught.value).startswith(f"--compliance-baseline {path}: ")


def test_a_missing_baseline_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        load_baseline(tmp_path / "gone.json")


DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_documented_waiver_files_load(tmp_path: Path) -> None:
    guide = (DOCS / "reports.md").read_text("utf-8")
    example = guide.split("```toml\n", 1)[1].split("```", 1)[0]

    documented = load_waivers(write(tmp_path, example), load_catalogue())
    pipeline = load_waivers(DOCS / "ci" / "waivers.toml", load_catalogue())

    assert [w.clause for w in documented] == ["REQ-05"]
    assert pipeline == []
