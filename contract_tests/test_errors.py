"""Error semantics: errCodes that fit the failure, no secrets, no markup."""

from __future__ import annotations

import pytest

from obshell_contract import forgery as f
from obshell_contract.checks import ContractViolation, expect_held
from obshell_contract.client import ObshellClient
from obshell_contract.evidence import Evidence
from obshell_contract.forgery import Forger

UPGRADE = "/api/v1/agent/upgrade"
AUTH_FAILURES = [
    f.WRONG_PASSWORD,
    f.EXPIRED_TS,
    f.NON_NUMERIC_TS,
    f.OTHER_URI,
    f.GARBAGE_HEADER,
]


@pytest.mark.clause("ERR-01")
@pytest.mark.parametrize(
    "forgery", [f.WRONG_PASSWORD, f.EMPTY_AUTH, f.PLAIN_BODY], ids=lambda x: x.name
)
def test_no_reply_carries_a_secret(
    forger: Forger, current_body: dict[str, str], evidence: Evidence, forgery: f.Forgery
) -> None:
    forger.send("POST", UPGRADE, current_body, forgery)
    forger.client.upgrade_agent(current_body["version"], current_body["release"])

    expect_held(evidence, "ERR-01")


@pytest.mark.clause("ERR-02")
@pytest.mark.parametrize("forgery", AUTH_FAILURES, ids=lambda x: x.name)
def test_authentication_failures_are_security_errcodes(
    forger: Forger, current_body: dict[str, str], forgery: f.Forgery
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, forgery)

    if reply.http_status != 401 or not (reply.err_code or "").startswith(
        "Security.Authentication."
    ):
        raise ContractViolation(
            "ERR-02",
            "HTTP 401 with a Security.Authentication.* errCode",
            f"HTTP {reply.http_status} {reply.err_code!r}",
        )


@pytest.mark.clause("ERR-03")
@pytest.mark.parametrize("forgery", AUTH_FAILURES, ids=lambda x: x.name)
def test_authentication_failures_carry_the_legacy_code(
    forger: Forger, current_body: dict[str, str], forgery: f.Forgery
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, forgery)

    expected = {10008} if forgery is not f.GARBAGE_HEADER else {1, None}
    if reply.code not in expected:
        raise ContractViolation(
            "ERR-03", f"error.code in {sorted(map(str, expected))}", repr(reply.code)
        )


@pytest.mark.clause("ERR-04")
def test_error_messages_are_plain_text(
    client: ObshellClient,
    forger: Forger,
    current_body: dict[str, str],
    evidence: Evidence,
) -> None:
    forger.send("POST", UPGRADE, current_body, f.WRONG_PASSWORD)
    forger.send("POST", UPGRADE, current_body, f.NO_HEADER)
    client.request("POST", UPGRADE, raw_body=b"[]")
    client.upgrade_agent(current_body["version"], current_body["release"])

    expect_held(evidence, "ERR-04")
