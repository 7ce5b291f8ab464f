"""Release gating: the gate, waivers, the verdict, and the diff against a baseline.

Every defect in what the user hands in (a gate name, a waiver file, a baseline)
is a :class:`UsageError` whose one-line message names the file or option and
the offending value.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from obshell_contract.clauses import Clause
from obshell_contract.errors import UsageError
from obshell_contract.report.results import FAILING, ClauseResult

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "GATES",
    "BaselineDiff",
    "Gate",
    "Verdict",
    "Waiver",
    "apply_waivers",
    "decide",
    "diff_baseline",
    "load_baseline",
    "load_waivers",
    "parse_gate",
]

Gate = Literal["must", "should", "none"]
GATES: tuple[Gate, ...] = ("must", "should", "none")
_WAIVER_FIELDS = frozenset({"clause", "reason", "expires"})


def parse_gate(value: str) -> Gate:
    """Check a ``--gate`` value."""
    for gate in GATES:
        if value == gate:
            return gate
    raise UsageError(f"--gate {value!r}: expected one of {', '.join(GATES)}")


# -- waivers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Waiver:
    """An accepted failure of one clause, until ``expires`` (inclusive)."""

    clause: str
    reason: str
    expires: dt.date

    def is_expired(self, today: dt.date) -> bool:
        return today > self.expires

    def to_dict(self, today: dt.date) -> dict[str, Any]:
        return {
            "clause": self.clause,
            "reason": self.reason,
            "expires": self.expires.isoformat(),
            "expired": self.is_expired(today),
        }


def load_waivers(path: Path, catalogue: Mapping[str, Clause]) -> list[Waiver]:
    """Read a ``[[waiver]]`` TOML file; every defect is a one-line UsageError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--waivers {path}: cannot read it: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--waivers {path}: not valid TOML: {exc}") from None

    entries = raw.get("waiver", [])
    unknown_tables = set(raw) - {"waiver"}
    if unknown_tables or not isinstance(entries, list):
        raise UsageError(
            f"--waivers {path}: expected only [[waiver]] tables, got {sorted(raw)!r}"
        )
    return [
        _parse_waiver(entry, index, path, catalogue)
        for index, entry in enumerate(entries, start=1)
    ]


def _parse_waiver(
    entry: Any, index: int, path: Path, catalogue: Mapping[str, Clause]
) -> Waiver:
    where = f"--waivers {path}: waiver #{index}"
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected a table, got {entry!r}")
    unknown = set(entry) - _WAIVER_FIELDS
    if unknown:
        raise UsageError(f"{where}: unknown fields {sorted(unknown)!r}")

    clause = entry.get("clause")
    if not isinstance(clause, str) or clause not in catalogue:
        raise UsageError(f"{where}: clause {clause!r} is not in the catalogue")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(
            f"{where} ({clause}): reason must be a non-empty string, got {reason!r}"
        )
    return Waiver(clause, reason.strip(), _expiry(entry.get("expires"), where, clause))


def _expiry(value: Any, where: str, clause: str) -> dt.date:
    # TOML has a date type (expires = 2027-01-31); a quoted date is accepted too.
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise UsageError(
        f"{where} ({clause}): expires must be a date like 2027-01-31, got {value!r}"
    )


def apply_waivers(
    results: Mapping[str, ClauseResult], waivers: Sequence[Waiver], today: dt.date
) -> None:
    """Turn failed clauses with a live waiver into ``waived``.

    Errors are never waived: a test that crashed judged nothing.
    """
    for waiver in waivers:
        result = results[waiver.clause]
        if result.status == "failed" and not waiver.is_expired(today):
            result.status = "waived"


# -- the verdict -----------------------------------------------------------------


@dataclass
class Verdict:
    """What the run means for a release, and the exit status that says it."""

    gate: Gate
    result: Literal["PASS", "FAIL", "ERROR"]
    exit_status: int
    line: str
    failed_must: list[str] = field(default_factory=list)
    failed_should: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    expired_waivers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "gate": self.gate,
            "exit_status": self.exit_status,
            "line": self.line,
            "failed_must": self.failed_must,
            "failed_should": self.failed_should,
            "waived": self.waived,
            "expired_waivers": self.expired_waivers,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class RunFacts:
    """What pytest itself saw, beside the clause results."""

    pytest_status: int
    tests_run: int
    pytest_failed: bool
    errors: Sequence[str] = ()
    report: str | None = None
    # Why pytest stopped before running every test (-x, --maxfail), if it did.
    stopped: str | None = None


# pytest's own exit statuses that no verdict may hide.
_FATAL_STATUSES = {
    2: "pytest was interrupted",
    3: "pytest hit an internal error",
    4: "pytest stopped on a usage error",
    5: "no tests ran",
}


def decide(
    results: Mapping[str, ClauseResult],
    gate: Gate,
    waivers: Sequence[Waiver],
    facts: RunFacts,
    today: dt.date,
) -> Verdict:
    """Judge the run under ``gate``; errors outside clause checks stay fatal."""
    verdict = Verdict(gate=gate, result="PASS", exit_status=0, line="")
    verdict.failed_must = _ids(results, "failed", "MUST")
    verdict.failed_should = _ids(results, "failed", "SHOULD")
    verdict.waived = _ids(results, "waived")
    verdict.expired_waivers = [
        w.clause
        for w in waivers
        if w.is_expired(today) and results[w.clause].status == "failed"
    ]
    verdict.errors = list(facts.errors)

    verdict.result, verdict.exit_status = _result(verdict, facts)
    verdict.line = _line(verdict, results, facts)
    return verdict


def _ids(
    results: Mapping[str, ClauseResult], status: str, level: str | None = None
) -> list[str]:
    return [
        cid
        for cid, result in results.items()
        if result.status == status and level in (None, result.clause.level)
    ]


def _gated(verdict: Verdict) -> list[str]:
    if verdict.gate == "must":
        return verdict.failed_must
    if verdict.gate == "should":
        return verdict.failed_must + verdict.failed_should
    return []


def _result(verdict: Verdict, facts: RunFacts) -> tuple[Any, int]:
    if facts.pytest_status in _FATAL_STATUSES or facts.tests_run == 0:
        return "ERROR", facts.pytest_status or 5
    if verdict.errors or facts.stopped:
        return "ERROR", facts.pytest_status or 1
    if _gated(verdict):
        return "FAIL", 1
    return "PASS", 0


def _line(
    verdict: Verdict, results: Mapping[str, ClauseResult], facts: RunFacts
) -> str:
    parts = [_headline(verdict, results, facts)]
    if verdict.result != "ERROR":
        parts += _ungated_parts(verdict, facts)
    if verdict.waived:
        parts.append(f"{len(verdict.waived)} waived")
    if verdict.expired_waivers:
        parts.append(
            f"{_count(len(verdict.expired_waivers), 'waiver')} expired "
            f"({', '.join(verdict.expired_waivers)})"
        )
    parts.append(f"report: {facts.report or 'none written'}")

    head = f"obshell-contract: {verdict.result} under gate '{verdict.gate}'"
    return f"{head} — {'; '.join(parts)}"


def _headline(
    verdict: Verdict, results: Mapping[str, ClauseResult], facts: RunFacts
) -> str:
    if facts.pytest_status in _FATAL_STATUSES:
        return _FATAL_STATUSES[facts.pytest_status]
    if facts.tests_run == 0:
        return "no tests ran"
    if facts.stopped:
        return f"the run stopped early ({facts.stopped}): a partial run has no verdict"
    if verdict.errors:
        return (
            f"{_count(len(verdict.errors), 'test')} errored outside the clause checks "
            f"({_short(verdict.errors)})"
        )
    gated = _gated(verdict)
    if gated:
        return "; ".join(_failed_phrase(verdict, level) for level in _levels(verdict))
    passed = sum(1 for r in results.values() if r.status == "passed")
    return f"{passed} of {len(results)} clauses passed"


def _levels(verdict: Verdict) -> list[str]:
    levels = ["MUST"] if verdict.failed_must else []
    if verdict.gate == "should" and verdict.failed_should:
        levels.append("SHOULD")
    return levels


def _failed_phrase(verdict: Verdict, level: str) -> str:
    ids = verdict.failed_must if level == "MUST" else verdict.failed_should
    noun = "clause" if len(ids) == 1 else "clauses"
    return f"{len(ids)} {level} {noun} failed ({', '.join(ids)})"


def _ungated_parts(verdict: Verdict, facts: RunFacts) -> list[str]:
    ungated = [
        (level, ids)
        for level, ids in (
            ("MUST", verdict.failed_must),
            ("SHOULD", verdict.failed_should),
        )
        if ids and not _is_gated(verdict.gate, level)
    ]
    parts = [
        f"{len(ids)} {level} {'clause' if len(ids) == 1 else 'clauses'} failed "
        f"({', '.join(ids)}), not gated"
        for level, ids in ungated
    ]
    if verdict.result == "PASS" and facts.pytest_failed:
        parts.append("exit 0 although pytest saw a failed test")
    return parts


def _is_gated(gate: Gate, level: str) -> bool:
    return gate == "should" or (gate == "must" and level == "MUST")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _short(ids: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return f"{shown}, …" if len(ids) > limit else shown


# -- baseline --------------------------------------------------------------------


@dataclass
class BaselineDiff:
    """Clauses that fail now but did not before, and those fixed since."""

    path: str
    newly_failing: list[str]
    fixed: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "newly_failing": self.newly_failing,
            "fixed": self.fixed,
        }


def load_baseline(path: Path) -> dict[str, str]:
    """Clause statuses from an earlier ``compliance.json``: ``{id: status}``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"--compliance-baseline {path}: cannot read it: {exc.strerror}"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--compliance-baseline {path}: not JSON: {exc}") from None

    clauses = raw.get("clauses") if isinstance(raw, dict) else None
    if not isinstance(clauses, list) or not all(_is_clause_row(c) for c in clauses):
        raise UsageError(
            f"--compliance-baseline {path}: expected a compliance report with a "
            f"'clauses' list of {{id, status}} objects"
        )
    return {row["id"]: row["status"] for row in clauses}


def _is_clause_row(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("id"), str)
        and isinstance(row.get("status"), str)
    )


def diff_baseline(
    path: str, before: Mapping[str, str], results: Mapping[str, ClauseResult]
) -> BaselineDiff:
    """Compare clause statuses; waived still counts as failing (it is accepted, not met)."""
    newly_failing = [
        cid
        for cid, result in results.items()
        if result.status in FAILING and before.get(cid) not in FAILING
    ]
    fixed = [
        cid
        for cid, result in results.items()
        if result.status == "passed" and before.get(cid) in FAILING
    ]
    return BaselineDiff(path, newly_failing, fixed)
