"""The response envelope: checked here on a sample, and on every reply of every test."""

from __future__ import annotations

import re

import pytest

from obshell_contract import forgery as f
from obshell_contract.checks import ContractViolation, expect_error, expect_held
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


EVERY_REPLY = ["ENV-01", "ENV-02", "ENV-03", "ENV-05", "ENV-06"]


@pytest.mark.usefixtures("sampled")
@pytest.mark.parametrize(
    "clause",
    [pytest.param(c, marks=pytest.mark.clause(c), id=c) for c in EVERY_REPLY],
)
def test_every_kind_of_reply_keeps_the_envelope_clauses(
    evidence: Evidence, clause: str
) -> None:
    expect_held(evidence, clause)


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
