"""The suite is only worth what it catches: run it against every fault of the mock.

Each fault of ``obshell-mock --list-faults`` breaks one promise. For each, the
contract suite must fail, and exactly the clauses in ``tests/data/effectiveness.json``
must fail, no fewer and no more. The clean ``reference`` profile must pass every
clause; the ``obshell-4.5`` profile must fail exactly the documented deviations
of the real agent. ``docs/effectiveness.md`` publishes the same table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obshell_contract.mock.faults import FAULTS
from tests.support.suite import ROOT, run_contract_suite

EXPECTED = json.loads(
    (ROOT / "tests" / "data" / "effectiveness.json").read_text("utf-8")
)


def failed(statuses: dict[str, str]) -> list[str]:
    return sorted(clause for clause, status in statuses.items() if status == "failed")


def test_every_fault_has_an_expectation() -> None:
    assert sorted(EXPECTED["faults"]) == sorted(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught_by_the_clauses_it_breaks(tmp_path: Path, fault: str) -> None:
    _, statuses = run_contract_suite(tmp_path, "--mock-fault", fault, "--gate", "none")

    assert failed(statuses) == sorted(EXPECTED["faults"][fault])


def test_reference_profile_keeps_every_clause(tmp_path: Path) -> None:
    exit_code, statuses = run_contract_suite(tmp_path)

    assert exit_code == 0
    assert set(statuses.values()) == {"passed"}


def test_obshell_45_profile_shows_the_documented_deviations(tmp_path: Path) -> None:
    exit_code, statuses = run_contract_suite(tmp_path, "--mock-profile", "obshell-4.5")

    assert failed(statuses) == sorted(EXPECTED["obshell-4.5"])
    assert exit_code == 1  # REQ-05 and REQ-06 are MUST clauses


def test_published_table_matches_the_expectations() -> None:
    table = (ROOT / "docs" / "effectiveness.md").read_text(encoding="utf-8")

    for fault, clauses in EXPECTED["faults"].items():
        assert f"| `{fault}` | {', '.join(sorted(clauses))} |" in table
    for clause in EXPECTED["obshell-4.5"]:
        assert f"\n| {clause} |" in table
