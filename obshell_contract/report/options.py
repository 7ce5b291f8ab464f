"""The report plugin's options, checked into :class:`Settings`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from obshell_contract.clauses import load_catalogue
from obshell_contract.report.gate import (
    Gate,
    Waiver,
    load_baseline,
    load_waivers,
    parse_gate,
)

__all__ = [
    "CONTRACT_DIR",
    "DEFAULT_HTML",
    "DEFAULT_JSON",
    "DEFAULT_JUNIT",
    "Settings",
    "add_options",
    "is_contract_run",
]

DEFAULT_HTML = Path("reports/compliance.html")
DEFAULT_JSON = Path("reports/compliance.json")
DEFAULT_JUNIT = Path("reports/junit.xml")
CONTRACT_DIR = "contract_tests"


def add_options(parser: pytest.Parser) -> None:
    """Register the options in their own group of ``pytest --help``."""
    group = parser.getgroup("obshell-contract reports")
    group.addoption(
        "--compliance-report",
        dest="compliance_report",
        metavar="PATH",
        help=f"write the HTML compliance report here (default for the contract "
        f"suite: {DEFAULT_HTML})",
    )
    group.addoption(
        "--compliance-json",
        dest="compliance_json",
        metavar="PATH",
        help=f"write the JSON compliance report here (default for the contract "
        f"suite: {DEFAULT_JSON})",
    )
    group.addoption(
        "--no-compliance-report",
        dest="no_compliance_report",
        action="store_true",
        help="write no compliance files (HTML, JSON, default JUnit); still gate",
    )
    group.addoption(
        "--gate",
        dest="compliance_gate",
        metavar="must|should|none",
        help="fail the run on failed MUST clauses (default), on MUST and SHOULD, "
        "or never (report only)",
    )
    group.addoption(
        "--waivers",
        dest="compliance_waivers",
        metavar="PATH",
        help="TOML file of [[waiver]] clause/reason/expires: accepted failures",
    )
    group.addoption(
        "--compliance-baseline",
        dest="compliance_baseline",
        metavar="PATH",
        help="an earlier compliance.json: report what newly fails and what was fixed",
    )


@dataclass
class Settings:
    """What the user asked of the reporter, checked."""

    active: bool
    gate: Gate = "must"
    html: Path | None = None
    json: Path | None = None
    junit: Path | None = None
    waivers: list[Waiver] = field(default_factory=list)
    waivers_file: Path | None = None
    baseline: dict[str, str] | None = None
    baseline_file: Path | None = None

    @property
    def cases_dir(self) -> Path | None:
        written = self.html or self.json
        return written.parent / "cases" if written else None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Read and check the options; a bad value raises a one-line UsageError."""
        option = config.option
        here = config.invocation_params.dir
        explicit = {
            name: getattr(option, name, None)
            for name in (
                "compliance_report",
                "compliance_json",
                "compliance_gate",
                "compliance_waivers",
                "compliance_baseline",
            )
        }
        contract = is_contract_run(config.args, here)
        wanted = contract or any(v is not None for v in explicit.values())
        # Listing tests (--collect-only) runs none: there is nothing to judge.
        settings = cls(active=wanted and not option.collectonly)
        if not settings.active:
            return settings

        settings.gate = parse_gate(explicit["compliance_gate"] or "must")
        settings._read_inputs(here, explicit)
        if not option.no_compliance_report:
            settings._choose_outputs(config, here, explicit, contract)
        return settings

    def _read_inputs(self, here: Path, explicit: dict[str, Any]) -> None:
        if explicit["compliance_waivers"]:
            self.waivers_file = here / explicit["compliance_waivers"]
            self.waivers = load_waivers(self.waivers_file, load_catalogue())
        if explicit["compliance_baseline"]:
            self.baseline_file = here / explicit["compliance_baseline"]
            self.baseline = load_baseline(self.baseline_file)

    def _choose_outputs(
        self,
        config: pytest.Config,
        here: Path,
        explicit: dict[str, Any],
        contract: bool,
    ) -> None:
        root = config.rootpath
        if explicit["compliance_report"]:
            self.html = here / explicit["compliance_report"]
        elif contract:
            self.html = root / DEFAULT_HTML
        if explicit["compliance_json"]:
            self.json = here / explicit["compliance_json"]
        elif contract:
            self.json = root / DEFAULT_JSON
        if contract and not config.option.xmlpath:
            self.junit = root / DEFAULT_JUNIT


def is_contract_run(args: Sequence[str], here: Path) -> bool:
    """Whether every path the run was given lies in a ``contract_tests`` directory."""
    paths = [arg.split("::", 1)[0] for arg in args if not arg.startswith("-")]
    if not paths:
        return False
    return all(CONTRACT_DIR in (here / path).resolve().parts for path in paths)
