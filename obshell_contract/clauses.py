"""The catalogue of contract clauses: stable ids, levels, sources, rationales.

The catalogue is one TOML file (``contract_tests/clauses.toml``); tests name the
clauses they check with ``@pytest.mark.clause("ENC-03")``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from obshell_contract.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CATALOGUE_PATH",
    "LEVELS",
    "Clause",
    "Level",
    "load_catalogue",
    "version_tuple",
]

Level = Literal["MUST", "SHOULD"]
LEVELS: tuple[Level, ...] = ("MUST", "SHOULD")
CATALOGUE_PATH = (
    Path(__file__).resolve().parent.parent / "contract_tests" / "clauses.toml"
)

_ID = re.compile(r"^[A-Z]{2,5}-\d{2}$")
_FIELDS = {"id", "title", "level", "area", "source", "rationale", "since", "needs"}


@dataclass(frozen=True)
class Clause:
    """One promise of the contract.

    ``since`` is the first agent version the clause applies to (None: all);
    ``needs`` names a capability the run must have (``"upgrade"``: the run may
    start a real upgrade).
    """

    id: str
    title: str
    level: Level
    area: str
    source: str
    rationale: str
    since: str | None = None
    needs: str | None = None

    def applies_to(self, agent_version: str | None) -> bool:
        """Whether an agent of ``agent_version`` (``4.5.0.0-…``) should keep it."""
        if self.since is None or agent_version is None:
            return True
        return version_tuple(agent_version) >= version_tuple(self.since)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"4.3.1.0-100…"`` -> ``(4, 3, 1, 0)``; non-numeric parts count as 0."""
    numbers = version.split("-", 1)[0].split(".")
    return tuple(int(part) if part.isdigit() else 0 for part in numbers)


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, Clause]:
    """Read and check the catalogue; every defect is a :class:`UsageError`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the clause catalogue {path}: {exc}") from None

    clauses: dict[str, Clause] = {}
    for entry in raw.get("clause", []):
        clause = _parse_clause(entry, path)
        if clause.id in clauses:
            raise UsageError(f"{path}: clause {clause.id!r} is defined twice")
        clauses[clause.id] = clause
    return clauses


def _parse_clause(entry: dict[str, object], path: Path) -> Clause:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise UsageError(f"{path}: unknown clause fields {sorted(unknown)!r}")

    clause_id = str(entry.get("id", ""))
    if not _ID.match(clause_id):
        raise UsageError(f"{path}: clause id {clause_id!r} does not look like 'ENC-03'")
    level = entry.get("level")
    if level not in LEVELS:
        raise UsageError(
            f"{path}: {clause_id} has level {level!r}, expected MUST or SHOULD"
        )

    missing = [
        name for name in ("title", "area", "source", "rationale") if not entry.get(name)
    ]
    if missing:
        raise UsageError(f"{path}: {clause_id} lacks {', '.join(missing)}")
    return Clause(
        id=clause_id,
        title=str(entry["title"]),
        level=level,
        area=str(entry["area"]),
        source=str(entry["source"]),
        rationale=str(entry["rationale"]),
        since=str(entry["since"]) if entry.get("since") else None,
        needs=str(entry["needs"]) if entry.get("needs") else None,
    )
