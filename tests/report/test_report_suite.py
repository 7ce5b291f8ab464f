"""The real contract suite against the embedded mock: its reports hold no secret.

The run (``real_run``, made once per session) uses distinctive root and agent
passwords and the ``echo-password`` fault, which makes the mock echo a password
it was sent, and ``markup-in-errors``.
"""

from __future__ import annotations

import json
from xml.etree import ElementTree

from obshell_contract import schemas
from tests.report.synthetic import AGENT_PASSWORD, ROOT_PASSWORD, RealRun


def forms(secret: str) -> set[str]:
    """The secret as it is, and as JSON, HTML and XML writers may spell it."""
    escaped = json.dumps(secret)[1:-1]
    return {
        secret,
        escaped,
        secret.replace("#", "&#35;"),
        secret.replace("!", "&#33;"),
        secret.replace("!", "\\u0021"),
    }


def test_no_password_reaches_any_file_or_the_terminal(real_run: RealRun) -> None:
    written = sorted(p for p in real_run.out.rglob("*") if p.is_file())
    texts = {str(p.relative_to(real_run.out)): p.read_text("utf-8") for p in written}
    texts["stdout"] = real_run.stdout
    texts["stderr"] = real_run.stderr

    assert {"compliance.html", "compliance.json", "junit.xml"} <= set(texts)
    leaks = [
        (name, form)
        for name, text in texts.items()
        for secret in (ROOT_PASSWORD, AGENT_PASSWORD)
        for form in forms(secret)
        if form in text
    ]
    assert leaks == []


def test_the_agent_did_echo_a_password_and_the_report_says_so(
    real_run: RealRun,
) -> None:
    # Without an echo the test above would prove nothing.
    clauses = {c["id"]: c for c in real_run.document["clauses"]}

    assert clauses["ERR-01"]["status"] == "failed"
    responses = [
        exchange["response_text"]
        for failure in real_run.document["failures"]
        for exchange in failure["exchanges"]
    ]
    assert any("Agent password is incorrect: [redacted]" in text for text in responses)


def test_the_suites_report_is_valid_and_its_verdict_is_the_printed_one(
    real_run: RealRun,
) -> None:
    document = real_run.document
    printed = [
        ln for ln in real_run.stdout.splitlines() if " under gate 'must' — " in ln
    ]

    assert schemas.violations(document, "compliance-report") == []
    assert printed == [document["verdict"]["line"]]
    assert real_run.returncode == document["verdict"]["exit_status"]
    assert document["targets"][0]["mock_faults"] == [
        "echo-password",
        "markup-in-errors",
    ]
    assert document["verdict"]["failed_must"] == ["ERR-01"]
    assert len(document["suite"]["schema_hashes"]) == len(schemas.names())


def test_every_suite_test_carries_its_clauses_in_junit(real_run: RealRun) -> None:
    catalogue_levels = {c["id"]: c["level"] for c in real_run.document["clauses"]}
    cases = list(
        ElementTree.parse(real_run.out / "junit.xml").getroot().iter("testcase")
    )

    assert cases
    for case in cases:
        properties = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        clauses = [value for name, value in properties if name == "clause"]
        levels = [value for name, value in properties if name == "level"]
        assert clauses, case.get("name")
        assert levels == [catalogue_levels[c] for c in clauses]
