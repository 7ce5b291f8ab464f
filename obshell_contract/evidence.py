"""What a contract test leaves behind for the report: checks, exchanges, cases.

Evidence travels from the test to the reporter inside ``report.user_properties``
as JSON, so it crosses pytest-xdist workers unchanged. Everything put here has
already been redacted by the recorder; the plugin redacts the serialised JSON
once more with the run's secrets as a last line of defence.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CLAUSE_PROPERTY",
    "EVIDENCE_PROPERTY",
    "LEVEL_PROPERTY",
    "NOT_APPLICABLE_PREFIX",
    "NOT_RUN_PREFIX",
    "TARGET_PROPERTY",
    "Case",
    "Check",
    "Evidence",
    "TimelineEntry",
]

# Keys under which the plugin stores data in ``item.user_properties``; JUnit XML
# shows the clause and level ones as <property> elements.
EVIDENCE_PROPERTY = "obshell_evidence"
TARGET_PROPERTY = "obshell_target"
CLAUSE_PROPERTY = "clause"
LEVEL_PROPERTY = "level"

# How a skip reason starts says why the clause was not checked: the run was
# not allowed to (a live run without --allow-upgrade), or the agent predates it.
NOT_RUN_PREFIX = "not run: "
NOT_APPLICABLE_PREFIX = "not applicable: "


@dataclass
class Check:
    """One expectation about one clause, met or not.

    A test passes or fails as a whole; checks let one test also observe other
    clauses (every envelope is checked against ENV-* in every test).
    """

    clause: str
    passed: bool
    expected: str
    actual: str
    pointer: str | None = None


@dataclass
class Case:
    """A request in plaintext, enough to resend it later with fresh encryption.

    ``forgery`` names the deliberate defect (None for a well-formed request) and
    ``expect`` what a compliant agent answers (``status``, ``err_code``,
    ``rejected``), so a replay can say whether the failure still reproduces.
    """

    method: str
    path: str
    body: Any = None
    forgery: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimelineEntry:
    """A DAG stage as observed by polling: when it was first and last seen."""

    dag_id: str
    stage: int
    node: str
    state: str
    first_seen: float
    last_seen: float


@dataclass
class Evidence:
    """Everything one test observed, in a JSON-serialisable shape."""

    checks: list[Check] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    example: str | None = None
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # Hypothesis prints a test's arguments; keep this one short.
        return f"Evidence(<{len(self.checks)} checks, {len(self.exchanges)} exchanges>)"

    def check(
        self,
        clause: str,
        passed: bool,
        *,
        expected: str,
        actual: str,
        pointer: str | None = None,
    ) -> bool:
        """Record an observation about ``clause``; returns ``passed``."""
        self.checks.append(Check(clause, passed, expected, actual, pointer))
        return passed

    @property
    def failed_checks(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def compacted(self, keep: int = 20) -> Evidence:
        """A copy small enough for a report: one line per clause that held,
        the first ``keep`` failures per clause, the last ``keep`` exchanges.

        A Hypothesis test sends hundreds of requests; the last ones belong to
        the shrunk example, which is the one worth showing.
        """
        held: dict[str, int] = {}
        failures: dict[str, list[Check]] = {}
        for check in self.checks:
            if check.passed:
                held[check.clause] = held.get(check.clause, 0) + 1
            else:
                failures.setdefault(check.clause, []).append(check)

        checks = [found[:keep] for found in failures.values()]
        summary = [
            Check(
                clause,
                True,
                expected="held on every reply",
                actual=f"held {count} times",
            )
            for clause, count in held.items()
            if clause not in failures
        ]
        dropped = len(self.exchanges) - keep
        notes = list(self.notes)
        if dropped > 0:
            notes.append(
                f"{dropped} earlier exchanges omitted; the last {keep} are shown"
            )
        return Evidence(
            checks=[check for group in checks for check in group] + summary,
            exchanges=self.exchanges[-keep:],
            cases=self.cases[-keep:],
            timeline=list(self.timeline),
            example=self.example,
            notes=notes,
        )

    def is_empty(self) -> bool:
        return not (self.checks or self.exchanges or self.cases or self.timeline)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        raw = json.loads(text)
        return cls(
            checks=[Check(**item) for item in raw.get("checks", [])],
            exchanges=list(raw.get("exchanges", [])),
            cases=[Case(**item) for item in raw.get("cases", [])],
            timeline=[TimelineEntry(**item) for item in raw.get("timeline", [])],
            example=raw.get("example"),
            notes=list(raw.get("notes", [])),
        )
