"""Discovery: the public key and the agent's description, without authentication."""

from __future__ import annotations

import pytest

from obshell_contract import schemas
from obshell_contract.checks import ContractViolation, expect_success
from obshell_contract.clauses import version_tuple
from obshell_contract.client import ObshellClient
from obshell_contract.crypto import load_public_key
from obshell_contract.errors import DecryptionError
from obshell_contract.targets import Target


def expect_valid(instance: object, name: str, clause: str) -> None:
    __tracebackhide__ = True
    found = schemas.violations(instance, name)
    if found:
        first = found[0]
        raise ContractViolation(
            clause,
            f"data valid against {name}.schema.json",
            f"{first.pointer or '/'}: {first.message}",
        )


@pytest.mark.clause("DISC-01")
def test_secret_serves_the_public_key_without_authentication(
    client: ObshellClient,
) -> None:
    reply = client.secret()

    data = expect_success(reply, "DISC-01")
    expect_valid(data, schemas.AGENT_SECRET, "DISC-01")


@pytest.mark.clause("DISC-02")
def test_public_key_is_pkcs1_der_with_the_documented_size(
    client: ObshellClient, target: Target
) -> None:
    public_key = expect_success(client.secret(), "DISC-02")["public_key"]

    try:
        key = load_public_key(public_key)
    except DecryptionError as exc:
        raise ContractViolation(
            "DISC-02", "base64 DER of an RSA public key", str(exc)
        ) from None
    version = (target.facts.agent_version if target.facts else None) or "0"
    expected_bits = 1024 if version_tuple(version) >= (4, 4, 2, 0) else 512
    actual = f"{key.key_size}-bit key, exponent {key.public_numbers().e}"
    if key.key_size != expected_bits or key.public_numbers().e != 65537:
        raise ContractViolation(
            "DISC-02", f"{expected_bits}-bit key, exponent 65537", actual
        )


@pytest.mark.clause("DISC-03")
def test_info_describes_the_agent(client: ObshellClient) -> None:
    data = expect_success(client.info(), "DISC-03")

    expect_valid(data, schemas.AGENT_INFO, "DISC-03")


@pytest.mark.clause("DISC-04")
def test_info_advertises_auth_v2(client: ObshellClient) -> None:
    data = expect_success(client.info(), "DISC-04")

    if data.get("supportedAuth") != ["v2"]:
        raise ContractViolation(
            "DISC-04", "supportedAuth ['v2']", repr(data.get("supportedAuth"))
        )
