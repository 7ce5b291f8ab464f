"""The clause catalogue, and the suite's coverage of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from obshell_contract.clauses import Clause, load_catalogue, version_tuple
from obshell_contract.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """nodeid -> clause ids, for every test of the contract suite."""
    dump = tmp_path_factory.mktemp("clauses") / "clauses.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "tests.support.clause_dump",
            "--no-compliance-report",
            "contract_tests",
        ],
        cwd=ROOT,
        env={**os.environ, "OBSHELL_CLAUSE_DUMP": str(dump)},
        capture_output=True,
    )
    return json.loads(dump.read_text(encoding="utf-8"))


def test_catalogue_has_at_least_forty_clauses_of_both_levels() -> None:
    catalogue = load_catalogue()

    assert len(catalogue) >= 40
    assert {clause.level for clause in catalogue.values()} == {"MUST", "SHOULD"}


def test_every_clause_has_a_source_and_a_rationale() -> None:
    for clause in load_catalogue().values():
        assert clause.source, clause.id
        assert clause.rationale, clause.id
        assert clause.title, clause.id


def test_every_clause_has_a_test(collected: dict[str, list[str]]) -> None:
    tested = {clause for clauses in collected.values() for clause in clauses}

    assert sorted(set(load_catalogue()) - tested) == []


def test_every_marker_names_a_real_clause(collected: dict[str, list[str]]) -> None:
    unknown = {
        nodeid: clauses
        for nodeid, clauses in collected.items()
        if set(clauses) - set(load_catalogue())
    }

    assert unknown == {}


def test_every_contract_test_names_a_clause(collected: dict[str, list[str]]) -> None:
    assert [nodeid for nodeid, clauses in collected.items() if not clauses] == []


def test_unknown_marker_is_a_usage_error(tmp_path: Path) -> None:
    test_file = tmp_path / "test_x.py"
    test_file.write_text(
        "import pytest\n\n@pytest.mark.clause('NOPE-01')\ndef test_x():\n    pass\n"
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(test_file),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 4
    assert "'NOPE-01'" in result.stderr
    assert "names no clause" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[clause]]\nid = "X"\n', "does not look like"),
        ('[[clause]]\nid = "ENC-01"\nlevel = "MAY"\n', "expected MUST or SHOULD"),
        ('[[clause]]\nid = "ENC-01"\nlevel = "MUST"\n', "lacks title"),
        ('[[clause]]\nid = "ENC-01"\nbogus = 1\n', "unknown clause fields"),
        ("[[clause]\n", "cannot read"),
    ],
    ids=["bad-id", "bad-level", "missing-fields", "unknown-field", "not-toml"],
)
def test_a_broken_catalogue_is_a_usage_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "clauses.toml"
    path.write_text(text)

    with pytest.raises(UsageError, match=message):
        load_catalogue(path)


def test_clause_applies_from_its_version() -> None:
    clause = Clause("ENC-02", "t", "SHOULD", "a", "s", "r", since="4.3.1.0")

    assert clause.applies_to("4.3.1.0-1")
    assert clause.applies_to("4.5.0.0-100")
    assert not clause.applies_to("4.2.3.0-100000")
    assert version_tuple("4.x.1") == (4, 0, 1)
