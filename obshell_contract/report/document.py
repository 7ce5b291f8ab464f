"""The compliance document: one JSON object from which the HTML is rendered.

The JSON file (``compliance.json``) and the HTML page are both written from this
document, so they cannot disagree; ``schemas/compliance-report.schema.json``
describes it. It is redacted as a whole before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from obshell_contract.redaction import Redactor
from obshell_contract.report.gate import BaselineDiff, Verdict, Waiver
from obshell_contract.report.results import STATUSES, ClauseResult, TestRecord

__all__ = ["REPORT_FORMAT", "RunInfo", "build_document", "case_file_id"]

REPORT_FORMAT = "obshell-contract/compliance-report/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class RunInfo:
    """Facts about the run that pytest's reports do not carry."""

    suite_version: str
    started_at: dt.datetime
    duration: float
    gate: str
    hypothesis: dict[str, Any]
    schema_hashes: dict[str, str]
    workers: int = 0
    waivers_file: str | None = None
    baseline_file: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Commands:
    """How to reproduce a failing test; filled by the plugin, which knows the options."""

    reproduce: Callable[[TestRecord], str]
    replay: Callable[[TestRecord], str | None]
    cases_file: Callable[[TestRecord], str | None]


def build_document(
    results: Mapping[str, ClauseResult],
    records: Sequence[TestRecord],
    verdict: Verdict,
    run: RunInfo,
    *,
    waivers: Sequence[Waiver] = (),
    baseline: BaselineDiff | None = None,
    commands: Commands,
    redactor: Redactor,
) -> dict[str, Any]:
    """Assemble the document; the result is redacted with the run's secrets."""
    today = run.started_at.date()
    document = {
        "format": REPORT_FORMAT,
        "suite": {
            "name": "obshell-contract",
            "version": run.suite_version,
            "schema_hashes": run.schema_hashes,
        },
        "run": _run(run),
        "targets": _targets(records),
        "verdict": verdict.to_dict(),
        "summary": _summary(results),
        "clauses": [_clause(r, waivers, today) for r in results.values()],
        "tests": [_test(record) for record in records],
        "failures": [
            _failure(record, commands) for record in records if record.has_failure
        ],
        "timeline": _timeline(records),
        "waivers": [w.to_dict(today) for w in waivers],
        "baseline": baseline.to_dict() if baseline else None,
    }
    redacted: dict[str, Any] = redactor.json(document)
    return redacted


def case_file_id(nodeid: str) -> str:
    """A file name for a test's cases: the node id with unsafe characters folded."""
    return _UNSAFE.sub("_", nodeid).strip("_")[:150] or "test"


def _run(run: RunInfo) -> dict[str, Any]:
    return {
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "duration_s": round(run.duration, 3),
        "gate": run.gate,
        "hypothesis": run.hypothesis,
        "workers": run.workers,
        "waivers_file": run.waivers_file,
        "baseline_file": run.baseline_file,
        "notes": run.notes,
    }


_TARGET_FIELDS: dict[str, Any] = {
    "url": "",
    "agent_version": None,
    "identity": None,
    "key_bits": None,
    "error_scheme": None,
    "mock_profile": None,
    "mock_faults": [],
}


def _targets(records: Sequence[TestRecord]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.target:
            target = {**_TARGET_FIELDS, **record.target}
            seen.setdefault(json.dumps(target, sort_keys=True, default=str), target)
    return list(seen.values())


def _summary(results: Mapping[str, ClauseResult]) -> dict[str, Any]:
    by_area: dict[str, dict[str, int]] = {}
    by_level: dict[str, dict[str, int]] = {}
    for result in results.values():
        clause = result.clause
        _bump(by_area.setdefault(clause.area, _zero()), result.status)
        _bump(by_level.setdefault(clause.level, _zero()), result.status)

    total = _zero()
    for result in results.values():
        _bump(total, result.status)
    return {
        "total": total,
        "by_area": [{"area": a, "counts": c} for a, c in by_area.items()],
        "by_level": by_level,
    }


def _zero() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def _bump(counts: dict[str, int], status: str) -> None:
    counts[status] = counts.get(status, 0) + 1


def _clause(
    result: ClauseResult, waivers: Sequence[Waiver], today: dt.date
) -> dict[str, Any]:
    clause = result.clause
    waiver = next((w for w in waivers if w.clause == clause.id), None)
    return {
        "id": clause.id,
        "title": clause.title,
        "level": clause.level,
        "area": clause.area,
        "source": clause.source,
        "status": result.status,
        "duration_s": round(result.duration, 3),
        "tests": [{"nodeid": t.nodeid, "outcome": t.outcome} for t in result.tests],
        "failing_tests": result.failing_tests,
        "failed_checks": [
            {"nodeid": nodeid, **asdict(check)}
            for nodeid, check in result.failed_checks
        ],
        "passed_checks": result.passed_checks,
        "reasons": list(dict.fromkeys(result.reasons)),
        "waiver": waiver.to_dict(today) if waiver else None,
    }


def _test(record: TestRecord) -> dict[str, Any]:
    return {
        "nodeid": record.nodeid,
        "clauses": record.clauses,
        "outcome": record.outcome,
        "duration_s": round(record.duration, 3),
        "reason": record.reason,
    }


def _failure(record: TestRecord, commands: Commands) -> dict[str, Any]:
    evidence = record.evidence
    return {
        "nodeid": record.nodeid,
        "clauses": record.clauses,
        "outcome": record.outcome,
        "phase": record.failed_phase,
        "message": _message(record),
        "longrepr": record.longrepr,
        "checks": [asdict(check) for check in record.failed_checks],
        "exchanges": evidence.exchanges,
        "example": record.example,
        "notes": evidence.notes,
        "target": record.target,
        "reproduce": commands.reproduce(record),
        "replay": commands.replay(record),
        "cases_file": commands.cases_file(record),
    }


def _message(record: TestRecord) -> str:
    """One line saying what went wrong: the exception, or the failed checks."""
    if record.crash:
        return record.crash.splitlines()[0][:500]
    if record.longrepr:
        lines = [
            ln[1:].strip() for ln in record.longrepr.splitlines() if ln.startswith("E ")
        ]
        candidates = lines or [ln for ln in record.longrepr.splitlines() if ln.strip()]
        if candidates:
            return candidates[0][:500]
    checks = record.failed_checks
    clauses = ", ".join(dict.fromkeys(check.clause for check in checks))
    return f"{len(checks)} failed check(s) about {clauses} in a test that passed"


def _timeline(records: Sequence[TestRecord]) -> list[dict[str, Any]]:
    return [
        {"nodeid": record.nodeid, **asdict(entry)}
        for record in records
        for entry in record.evidence.timeline
    ]
