"""The HTML page: self-contained, offline, and every piece of server text escaped."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from obshell_contract.clauses import load_catalogue
from obshell_contract.evidence import Check, Evidence
from obshell_contract.redaction import Redactor
from obshell_contract.report.document import Commands, RunInfo, build_document
from obshell_contract.report.gate import RunFacts, decide
from obshell_contract.report.html import json_script, render_html
from obshell_contract.report.results import TestRecord, clause_results
from obshell_contract.report.svg import area_chart, timeline_chart
from tests.report.synthetic import MIXED, SuiteRun

pytest_plugins = ("pytester",)

PAYLOAD = '</script><script>alert(1)</script><b>x</b><img src="http://127.0.0.1:9/x">'

HOSTILE = f"""
import pytest
from obshell_contract.evidence import TimelineEntry

PAYLOAD = {PAYLOAD!r}
TARGET = {{"url": "http://127.0.0.1:1/" + PAYLOAD, "agent_version": PAYLOAD,
          "identity": PAYLOAD, "key_bits": 1024, "error_scheme": PAYLOAD,
          "mock_profile": PAYLOAD, "mock_faults": [PAYLOAD]}}


@pytest.mark.clause("ERR-04")
def test_server_text_everywhere(evidence):
    evidence.check("ERR-04", False, expected="plain text", actual=PAYLOAD, pointer="/error/" + PAYLOAD)
    evidence.exchanges.append({{
        "method": "POST", "uri": "/api/v1/agent/upgrade", "status": 400, "label": PAYLOAD,
        "forgery": PAYLOAD, "header_name": PAYLOAD, "header_fields": {{"Auth": "", "Uri": PAYLOAD}},
        "plaintext_body": PAYLOAD, "wire_body_size": 44, "response_headers": {{"X": PAYLOAD}},
        "response_text": PAYLOAD, "elapsed_ms": 1.5, "transport_error": None,
    }})
    evidence.notes.append(PAYLOAD)
    evidence.timeline.append(TimelineEntry(PAYLOAD, 1, PAYLOAD, PAYLOAD, 0.0, 0.1))
    assert False, PAYLOAD


@pytest.mark.clause("REQ-02")
def test_skipped_with_markup():
    pytest.skip("not applicable: " + PAYLOAD)
"""


@pytest.fixture
def hostile_report(
    suite: Callable[..., Path], run_suite: Callable[..., SuiteRun]
) -> SuiteRun:
    suite(test_hostile=HOSTILE)
    return run_suite()


def test_server_text_is_never_markup_in_the_page(hostile_report: SuiteRun) -> None:
    page = hostile_report.html

    assert "<b>x</b>" not in page
    assert "<script>alert" not in page
    assert "<img" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    # Only the report's own script and its JSON blocks are script elements.
    assert page.count("<script") == page.count('<script type="application/json"') + 1
    assert page.count("</script>") == page.count("<script")


def test_evidence_blocks_cannot_be_closed_by_server_text(
    hostile_report: SuiteRun,
) -> None:
    blocks = re.findall(
        r'<script type="application/json" id="exchanges-\d+">(.*?)</script>',
        hostile_report.html,
        re.S,
    )

    (block,) = blocks
    (exchange,) = json.loads(block)
    assert exchange["response_text"] == PAYLOAD
    assert "<" not in block


def test_the_page_names_no_resource_outside_itself(
    suite: Callable[..., Path], run_suite: Callable[..., SuiteRun]
) -> None:
    suite(test_mixed=MIXED)

    page = run_suite().html

    links = re.findall(
        r"""\b(?:src|href|action|xlink:href)\s*=\s*["']?([^"'\s>]*)""", page
    )
    assert links
    assert [link for link in links if not link.startswith("#")] == []
    assert "url(" not in page
    assert "@import" not in page
    assert "<link" not in page
    assert "default-src 'none'" in page


def test_json_script_escapes_what_could_end_a_script_block() -> None:
    text = str(json_script({"a": "</script><!-- & \u2028"}))

    assert text == '{"a": "\\u003c/script\\u003e\\u003c!-- \\u0026 \\u2028"}'
    assert json.loads(text) == {"a": "</script><!-- & \u2028"}


def test_svg_charts_escape_their_labels() -> None:
    area = area_chart([("<b>area</b>", {"failed": 1, "passed": 2})])
    timeline = timeline_chart(
        [
            {
                "nodeid": "t<i>",
                "dag_id": "1",
                "stage": 1,
                "node": "<b>n</b>",
                "state": "RUNNING",
                "first_seen": 0,
                "last_seen": 1,
            }
        ]
    )

    for chart in (str(area), str(timeline)):
        assert "<b>" not in chart
        assert "&lt;b&gt;" in chart
    assert "<i>" not in str(timeline)


def test_a_report_of_thousands_of_tests_stays_small_and_quick() -> None:
    records = [
        TestRecord(
            f"contract_tests/test_many.py::test_case[{n}]",
            ["REQ-12"],
            "passed",
            0.01,
            evidence=Evidence(checks=[Check("ENV-01", True, "an envelope", "valid")]),
        )
        for n in range(5000)
    ]
    records[7].outcome = "failed"
    records[7].longrepr = "E   AssertionError: one of many"

    started = time.perf_counter()
    page = render_html(document_for(records))
    elapsed = time.perf_counter() - started

    assert elapsed < 5.0
    # Passing tests leave no evidence in the page, only a line each in a
    # closed <details>; the one failure has its section.
    assert len(page) < 1_500_000
    assert page.count('<section class="failure') == 1
    assert page.count("<li><code>contract_tests/test_many.py::") == 5000


def document_for(records: list[TestRecord]) -> dict[str, Any]:
    results = clause_results(load_catalogue(), records)
    facts = RunFacts(pytest_status=1, tests_run=len(records), pytest_failed=True)
    verdict = decide(results, "must", [], facts, dt.date(2026, 1, 1))
    run = RunInfo(
        "0.1.0",
        dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        1.0,
        "must",
        {"profile": "default", "seed": None},
        {},
    )
    commands = Commands(
        lambda r: "python -m pytest " + r.nodeid, lambda r: None, lambda r: None
    )
    return build_document(
        results, records, verdict, run, commands=commands, redactor=Redactor()
    )
