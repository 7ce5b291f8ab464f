"""The response envelope: checked here on a sample, and on every reply of every test."""

from __future__ import annotations

import re

import pytest

from obshell_contract import forgery as f
from obshell_contract.checks import ContractViolation, expect_error
from obshell_contract.client import ObshellClient
from obshell_contract.evidence import Evidence
from obshell_contract.forgery import Forger

UPGRADE = "/api/v1/agent/upgrade"


@pytest.fixture
def sampled(
    client: ObshellClient, forger: Forger, current_body: dict[str, str]
) -> None:
    """One reply of each kind: discovery, success, auth failure, bind failure, 404."""
    client.secret()
    client.info()
    client.unfinished_dags()
    forger.send("POST", UPGRADE, current_body, f.NO_HEADER)
    forger.send("POST", UPGRADE, current_body, f.GARBAGE_HEADER)
    forger.send("POST", UPGRADE, current_body, f.WRONG_PASSWORD)
    client.request("POST", UPGRADE, raw_body=b"[]")
    client.request("GET", UPGRADE, authenticated=False)


def expect_held(evidence: Evidence, clause: str) -> None:
    __tracebackhide__ = True
    failed = [check for check in evidence.failed_checks if check.clause == clause]
    if failed:
        first = failed[0]
        raise ContractViolation(
            clause, first.expected, f"{first.actual} (and {len(failed) - 1} more)"
        )


@pytest.mark.clause("ENV-01")
@pytest.mark.usefixtures("sampled")
def test_every_reply_is_a_valid_envelope(evidence: Evidence) -> None:
    expect_held(evidence, "ENV-01")


@pytest.mark.clause("ENV-02")
@pytest.mark.usefixtures("sampled")
def test_status_equals_the_http_status(evidence: Evidence) -> None:
    expect_held(evidence, "ENV-02")


@pytest.mark.clause("ENV-03")
@pytest.mark.usefixtures("sampled")
def test_successful_agrees_with_status_and_error(evidence: Evidence) -> None:
    expect_held(evidence, "ENV-03")


@pytest.mark.clause("ENV-04")
def test_trace_id_is_echoed_or_generated(
    client: ObshellClient, evidence: Evidence
) -> None:
    client.on_reply.sent_trace_ids.add("abc")  # type: ignore[union-attr]

    echoed = client.request(
        "GET",
        "/api/v1/info",
        authenticated=False,
        headers={"X-OBSHELL-Trace-ID": "abc"},
    )
    generated = client.unfinished_dags()

    if echoed.trace_id != "abc":
        raise ContractViolation("ENV-04", "traceId 'abc' echoed", repr(echoed.trace_id))
    if not re.fullmatch(r"[0-9a-f]{16}", generated.trace_id or ""):
        raise ContractViolation("ENV-04", "a 16-hex traceId", repr(generated.trace_id))
    expect_held(evidence, "ENV-04")


@pytest.mark.clause("ENV-05")
@pytest.mark.usefixtures("sampled")
def test_timestamp_is_rfc3339_with_offset(evidence: Evidence) -> None:
    expect_held(evidence, "ENV-05")


@pytest.mark.clause("ENV-06")
@pytest.mark.usefixtures("sampled")
def test_replies_are_json(evidence: Evidence) -> None:
    expect_held(evidence, "ENV-06")


@pytest.mark.clause("ENV-07")
def test_unknown_method_on_the_upgrade_route_is_not_found(
    client: ObshellClient,
) -> None:
    reply = client.request("GET", UPGRADE, authenticated=False)

    expect_error(
        reply,
        "ENV-07",
        status=404,
        err_code="Common.NotFound",
        message="Element not found: 404 not found",
    )
