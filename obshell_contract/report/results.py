"""Turning pytest's test reports into per-test records and per-clause results.

A test names its clauses with ``@pytest.mark.clause``; the plugin copies them
into ``user_properties`` so that they survive pytest-xdist. A clause fails when
one of its tests fails *or* when any test recorded a failed check about it (every
envelope is checked against the ENV-* clauses, whatever the test is about).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from obshell_contract.clauses import Clause
from obshell_contract.evidence import (
    CLAUSE_PROPERTY,
    EVIDENCE_PROPERTY,
    NOT_RUN_PREFIX,
    TARGET_PROPERTY,
    Check,
    Evidence,
)
from obshell_contract.redaction import Redactor

__all__ = [
    "EXAMPLE_LIMIT",
    "FAILING",
    "STATUSES",
    "ClauseResult",
    "Collector",
    "Status",
    "TestRecord",
    "clause_results",
    "falsifying_example",
    "skip_reason",
]

Status = Literal["failed", "error", "waived", "passed", "skipped", "not run"]
# Worst first: the order of the report's filters and of the summary.
STATUSES: tuple[Status, ...] = (
    "failed",
    "error",
    "waived",
    "passed",
    "skipped",
    "not run",
)
# A clause in one of these states is not met, whatever the gate says.
FAILING: frozenset[str] = frozenset({"failed", "error", "waived"})

Outcome = Literal["passed", "failed", "error", "skipped", "not run", "xfailed"]
EXAMPLE_LIMIT = 4000
# Hypothesis wrote "Falsifying example: ..." until 6.1xx, "Failing test case: ..."
# since; explicit @example cases say "explicit example" in either wording.
_EXAMPLE = re.compile(
    r"^(?:E\s+)?((?:Falsifying|Failing) (?:explicit example|example|test case): .*)$"
)


@dataclass
class TestRecord:
    """One test as the controller saw it over its setup, call and teardown.

    ``outcome`` is the test's worst phase: a crash in setup or teardown is an
    ``error`` (the test never judged its clauses), an expected failure
    (``xfail``) counts as skipped with its reason.
    """

    # Not a test class, whatever its name says.
    __test__ = False

    nodeid: str
    clauses: list[str] = field(default_factory=list)
    outcome: Outcome = "passed"
    duration: float = 0.0
    reason: str | None = None
    longrepr: str | None = None
    # pytest's one-line summary of the failure (its "reprcrash" message).
    crash: str | None = None
    evidence: Evidence = field(default_factory=Evidence)
    target: dict[str, Any] | None = None
    failed_phase: str | None = None

    @property
    def failed_checks(self) -> list[Check]:
        return self.evidence.failed_checks

    @property
    def example(self) -> str | None:
        """The shrunk Hypothesis example, from the evidence or the traceback.

        Capped: Hypothesis prints every argument, fixtures included, and a
        fixture's repr can run to pages.
        """
        example = self.evidence.example or falsifying_example(self.longrepr or "")
        if example is None or len(example) <= EXAMPLE_LIMIT:
            return example
        return f"{example[:EXAMPLE_LIMIT]}…[{len(example) - EXAMPLE_LIMIT} more characters]"

    @property
    def has_failure(self) -> bool:
        """Whether the report must show this test's evidence."""
        return self.outcome in ("failed", "error") or bool(self.failed_checks)


class Collector:
    """Accumulates test reports, redacting everything on the way in."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._records: dict[str, TestRecord] = {}

    def add(self, report: pytest.TestReport) -> None:
        record = self._records.setdefault(report.nodeid, TestRecord(report.nodeid))
        record.duration += report.duration
        _merge_clauses(record, report.user_properties)
        self._merge_attachments(record, report)
        self._merge_outcome(record, report)

    @property
    def records(self) -> list[TestRecord]:
        """Every test seen, in the order their first report arrived."""
        return list(self._records.values())

    def _merge_attachments(self, record: TestRecord, report: pytest.TestReport) -> None:
        evidence_text = _attachment(report, EVIDENCE_PROPERTY)
        if evidence_text:
            evidence = _parse(Evidence.from_json, self.redactor.text(evidence_text))
            if isinstance(evidence, str):
                record.evidence.notes.append(f"unreadable evidence: {evidence}")
            # Later phases carry everything earlier ones did, and more.
            elif not evidence.is_empty() or evidence.example or evidence.notes:
                record.evidence = evidence

        target_text = _attachment(report, TARGET_PROPERTY)
        if target_text:
            target = _parse(json.loads, target_text)
            if isinstance(target, dict):
                record.target = self.redactor.json(target)

    def _merge_outcome(self, record: TestRecord, report: pytest.TestReport) -> None:
        if report.failed:
            # The first failing phase says what went wrong; teardown after a
            # failed call adds an error but keeps the failure.
            if record.outcome not in ("failed", "error"):
                record.outcome = "failed" if report.when == "call" else "error"
                record.failed_phase = report.when
                record.longrepr = self.redactor.text(report.longreprtext)
                record.crash = self.redactor.text(_crash_message(report.longrepr))
            return

        if report.skipped:
            record.outcome, record.reason = _skip_outcome(report)
            record.reason = self.redactor.text(record.reason)


def _parse(parser: Callable[[str], Any], text: str) -> Any:
    """``parser(text)``, or the error as a string: bad evidence must not stop a run."""
    try:
        return parser(text)
    except (ValueError, TypeError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _crash_message(longrepr: object) -> str:
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    return message if isinstance(message, str) else ""


def _attachment(report: pytest.TestReport, name: str) -> str | None:
    # The suite's plugin sets plain string attributes; user_properties are the
    # fallback the evidence module documents.
    value = getattr(report, name, None)
    if isinstance(value, str):
        return value
    for key, prop in reversed(report.user_properties):
        if key == name and isinstance(prop, str):
            return prop
    return None


def _merge_clauses(
    record: TestRecord, properties: Iterable[tuple[str, object]]
) -> None:
    for key, value in properties:
        if key == CLAUSE_PROPERTY and str(value) not in record.clauses:
            record.clauses.append(str(value))


def _skip_outcome(report: pytest.TestReport) -> tuple[Outcome, str]:
    xfail_reason = getattr(report, "wasxfail", None)
    if xfail_reason is not None:
        return "xfailed", f"xfail: {xfail_reason}" if xfail_reason else "xfail"

    reason = skip_reason(report.longrepr)
    return ("not run" if reason.startswith(NOT_RUN_PREFIX) else "skipped"), reason


def skip_reason(longrepr: object) -> str:
    """The reason a skipped report gives, without pytest's ``Skipped: `` prefix."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr or "")
    return reason.removeprefix("Skipped: ")


def falsifying_example(text: str) -> str | None:
    """The shrunk example Hypothesis adds to a traceback (``Falsifying example:``)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _EXAMPLE.match(line)
        if match:
            indent = line.index(match.group(1))
            return _example_block(match.group(1), lines[index + 1 :], indent)
    return None


def _example_block(first: str, rest: Sequence[str], indent: int) -> str:
    if not first.rstrip().endswith("("):
        return first

    # A multi-line call, under pytest's "E       " margin: keep lines until
    # the one closing the parenthesis.
    block = [first]
    for line in rest:
        margin, text = line[:indent], line[indent:]
        if margin.strip() not in ("", "E"):
            break
        block.append(text)
        if text.strip() == ")":
            break
    return "\n".join(block)


# -- clauses ---------------------------------------------------------------------


@dataclass
class ClauseResult:
    """A clause's verdict over the whole run, with the tests behind it."""

    clause: Clause
    status: Status = "not run"
    tests: list[TestRecord] = field(default_factory=list)
    failed_checks: list[tuple[str, Check]] = field(default_factory=list)
    passed_checks: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(test.duration for test in self.tests)

    @property
    def failing_tests(self) -> list[str]:
        failing = [t.nodeid for t in self.tests if t.outcome in ("failed", "error")]
        failing += [nodeid for nodeid, _ in self.failed_checks]
        return list(dict.fromkeys(failing))


def clause_results(
    catalogue: Mapping[str, Clause], records: Sequence[TestRecord]
) -> dict[str, ClauseResult]:
    """One result per catalogue clause, in catalogue order."""
    results = {cid: ClauseResult(clause) for cid, clause in catalogue.items()}
    for record in records:
        for cid in record.clauses:
            if cid in results:
                results[cid].tests.append(record)
        for check in record.evidence.checks:
            _add_check(results, record.nodeid, check)

    for result in results.values():
        result.status = _status(result)
    return results


def _add_check(results: dict[str, ClauseResult], nodeid: str, check: Check) -> None:
    result = results.get(check.clause)
    if result is None:
        return
    if check.passed:
        result.passed_checks += 1
    else:
        result.failed_checks.append((nodeid, check))


def _status(result: ClauseResult) -> Status:
    outcomes = {test.outcome for test in result.tests}
    if "failed" in outcomes or result.failed_checks:
        return "failed"
    if "error" in outcomes:
        return "error"
    if "passed" in outcomes or result.passed_checks:
        return "passed"

    result.reasons = [t.reason for t in result.tests if t.reason]
    # "skipped" (not applicable, xfail) says more than "the run could not".
    if outcomes & {"skipped", "xfailed"}:
        return "skipped"
    return "not run"
