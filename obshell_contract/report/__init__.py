"""Compliance reports and release gating for runs of the contract suite.

The pytest plugin (:mod:`obshell_contract.report.plugin`) turns test reports
into per-clause results (:mod:`~obshell_contract.report.results`), judges them
under a gate with waivers (:mod:`~obshell_contract.report.gate`), and writes a
JSON document (:mod:`~obshell_contract.report.document`) and the HTML page
rendered from it (:mod:`~obshell_contract.report.html`).
"""

from __future__ import annotations

from obshell_contract.report.document import REPORT_FORMAT, build_document
from obshell_contract.report.gate import (
    GATES,
    BaselineDiff,
    Gate,
    Verdict,
    Waiver,
    decide,
    diff_baseline,
    load_baseline,
    load_waivers,
)
from obshell_contract.report.html import render_html
from obshell_contract.report.results import (
    STATUSES,
    ClauseResult,
    Collector,
    Status,
    TestRecord,
    clause_results,
)

__all__ = [
    "GATES",
    "REPORT_FORMAT",
    "STATUSES",
    "BaselineDiff",
    "ClauseResult",
    "Collector",
    "Gate",
    "Status",
    "TestRecord",
    "Verdict",
    "Waiver",
    "build_document",
    "clause_results",
    "decide",
    "diff_baseline",
    "load_baseline",
    "load_waivers",
    "render_html",
]
