"""Encryption and authentication: every broken envelope is refused, each with its errCode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from obshell_contract import forgery as f
from obshell_contract.checks import ContractViolation, expect_error, expect_rejected
from obshell_contract.clauses import version_tuple
from obshell_contract.client import ObshellClient
from obshell_contract.forgery import Forger, Forgery
from obshell_contract.plugin import run_settings
from obshell_contract.targets import Target, embedded_mock

UPGRADE = "/api/v1/agent/upgrade"
UNFINISHED = "/api/v1/task/dag/unfinish"

Guard = Callable[[str], Any]


def reject_upgrade(
    forger: Forger,
    dag_guard: Guard,
    body: dict[str, str],
    forgery: Forgery,
    clause: str,
) -> None:
    __tracebackhide__ = True
    with dag_guard(clause):
        reply = forger.send("POST", UPGRADE, body, forgery)
        expect_rejected(reply, clause)


def decrypt_failed_code(target: Target) -> int | None:
    version = (target.facts.agent_version if target.facts else None) or "0"
    return 1 if version_tuple(version) >= (4, 4, 2, 0) else None


# -- the header ------------------------------------------------------------------


@pytest.mark.clause("ENC-01")
def test_request_without_header_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.NO_HEADER, "ENC-01")


@pytest.mark.clause("ENC-02")
def test_missing_header_is_answered_header_not_found(
    forger: Forger, current_body: dict[str, str]
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, f.NO_HEADER)

    expect_error(
        reply,
        "ENC-02",
        status=400,
        err_code="Request.Header.NotFound",
        message="X-OCS-Agent-Header or X-OCS-Header not found in http request header",
    )


UNDECRYPTABLE = [f.GARBAGE_HEADER, f.FOREIGN_RSA_KEY, f.NUMERIC_TS]


@pytest.mark.clause("ENC-03")
@pytest.mark.parametrize("forgery", UNDECRYPTABLE, ids=lambda x: x.name)
def test_undecryptable_header_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str], forgery: Forgery
) -> None:
    reject_upgrade(forger, dag_guard, base_body, forgery, "ENC-03")


@pytest.mark.clause("ENC-04")
@pytest.mark.parametrize("forgery", UNDECRYPTABLE, ids=lambda x: x.name)
def test_undecryptable_header_is_answered_decrypt_failed(
    forger: Forger, current_body: dict[str, str], target: Target, forgery: Forgery
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, forgery)

    expect_error(
        reply,
        "ENC-04",
        status=401,
        err_code="Security.Authentication.Header.DecryptFailed",
        message_prefix="Decrypt http header failed: ",
        code=decrypt_failed_code(target),
    )


@pytest.mark.clause("ENC-05")
def test_wrong_password_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.WRONG_PASSWORD, "ENC-05")


@pytest.mark.clause("ENC-06")
def test_wrong_password_is_answered_incorrect_password(
    forger: Forger, current_body: dict[str, str], target: Target
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, f.WRONG_PASSWORD)

    if target.agent_password:
        err_code, message = (
            "Security.Authentication.IncorrectAgentPassword",
            "Unauthorized: agent password is incorrect",
        )
    else:
        err_code, message = (
            "Security.Authentication.IncorrectOceanbasePassword",
            "Unauthorized: OceanBase password is incorrect",
        )
    expect_error(
        reply, "ENC-06", status=401, err_code=err_code, message=message, code=10008
    )


# -- Ts --------------------------------------------------------------------------


@pytest.mark.clause("ENC-07")
def test_expired_ts_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.EXPIRED_TS, "ENC-07")


@pytest.mark.clause("ENC-08")
def test_expired_ts_is_answered_expired(
    forger: Forger, current_body: dict[str, str]
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, f.EXPIRED_TS)

    expect_error(
        reply,
        "ENC-08",
        status=401,
        err_code="Security.Authentication.Expired",
        message="Unauthorized: Authentication expired",
        code=10008,
    )


@pytest.mark.clause("ENC-09")
def test_non_numeric_ts_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.NON_NUMERIC_TS, "ENC-09")


@pytest.mark.clause("ENC-10")
def test_non_numeric_ts_is_answered_timestamp_invalid(
    forger: Forger, current_body: dict[str, str]
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, f.NON_NUMERIC_TS)

    expect_error(
        reply,
        "ENC-10",
        status=401,
        err_code="Security.Authentication.Timestamp.Invalid",
        message_prefix="Unauthorized: Invalid timestamp: soon",
        code=10008,
    )


@pytest.mark.clause("ENC-19")
def test_far_future_ts_is_accepted(forger: Forger) -> None:
    reply = forger.send("GET", UNFINISHED, None, f.FAR_FUTURE_TS)

    if reply.http_status != 200:
        raise ContractViolation(
            "ENC-19",
            "HTTP 200 for a Ts one day ahead",
            f"HTTP {reply.http_status} {reply.err_code}",
        )


# -- Uri -------------------------------------------------------------------------


@pytest.mark.clause("ENC-11")
def test_header_signed_for_another_path_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.OTHER_URI, "ENC-11")


@pytest.mark.clause("ENC-11")
def test_captured_header_replayed_on_another_uri_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    captured = forger.send("POST", UPGRADE + "/check", base_body, f.HONEST)

    with dag_guard("ENC-11"):
        reply = forger.replay(captured, UPGRADE)
        expect_rejected(reply, "ENC-11")


@pytest.mark.clause("ENC-12")
def test_uri_mismatch_is_answered_before_the_password(
    forger: Forger, current_body: dict[str, str]
) -> None:
    forgery = f.OTHER_URI.replace(
        name="other-uri-wrong-password", auth=f.AuthChoice.WRONG
    )

    reply = forger.send("POST", UPGRADE, current_body, forgery)

    expect_error(
        reply,
        "ENC-12",
        status=401,
        err_code="Security.Authentication.Header.UriMismatch",
        message="URI mismatch",
        code=10008,
    )


@pytest.mark.clause("ENC-13")
def test_uri_without_query_is_rejected(forger: Forger) -> None:
    reply = forger.send(
        "GET", UNFINISHED + "?show_details=true", None, f.URI_WITHOUT_QUERY
    )

    expect_rejected(reply, "ENC-13")


# -- the body --------------------------------------------------------------------


@pytest.mark.clause("ENC-14")
def test_plain_body_under_valid_header_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.PLAIN_BODY, "ENC-14")


BAD_BODIES = [
    f.PLAIN_BODY,
    f.MISSING_KEYS,
    f.SHORT_KEYS_16,
    f.SHORT_KEYS_24,
    f.BAD_BODY_LENGTH,
    f.TAMPERED_CIPHERTEXT,
    f.FOREIGN_AES_KEY,
]


@pytest.mark.clause("ENC-15")
@pytest.mark.parametrize("forgery", BAD_BODIES, ids=lambda x: x.name)
def test_undecryptable_body_is_a_client_error(
    forger: Forger, current_body: dict[str, str], forgery: Forgery
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, forgery)

    if not 400 <= reply.http_status < 500:
        raise ContractViolation(
            "ENC-15", "a 4xx status", f"HTTP {reply.http_status} {reply.err_code}"
        )


@pytest.mark.clause("ENC-16")
@pytest.mark.parametrize(
    "forgery", [f.MISSING_KEYS, f.SHORT_KEYS_16, f.SHORT_KEYS_24], ids=lambda x: x.name
)
def test_body_with_bad_keys_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str], forgery: Forgery
) -> None:
    reject_upgrade(forger, dag_guard, base_body, forgery, "ENC-16")


@pytest.mark.clause("ENC-17")
@pytest.mark.parametrize(
    "forgery",
    [f.TAMPERED_CIPHERTEXT, f.FOREIGN_AES_KEY, f.BAD_BODY_LENGTH],
    ids=lambda x: x.name,
)
def test_tampered_body_is_rejected(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str], forgery: Forgery
) -> None:
    reject_upgrade(forger, dag_guard, base_body, forgery, "ENC-17")


@pytest.mark.clause("ENC-20")
def test_sha256_field_changes_nothing(forger: Forger) -> None:
    reply = forger.send("GET", UNFINISHED, None, f.SHA256_FIELD)

    if reply.http_status != 200:
        raise ContractViolation(
            "ENC-20",
            "HTTP 200, as without the field",
            f"HTTP {reply.http_status} {reply.err_code}",
        )


# -- which header, which password ------------------------------------------------


@pytest.mark.clause("ENC-18")
def test_agent_header_cannot_stand_in_for_the_root_password(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    reject_upgrade(forger, dag_guard, base_body, f.AGENT_HEADER_INSTEAD, "ENC-18")


@pytest.fixture
def empty_password_target(
    request: pytest.FixtureRequest, target: Target
) -> Iterator[Target]:
    """An agent whose root password is empty: a fresh mock, or the live agent if so."""
    if not target.is_mock:
        if target.password:
            pytest.skip("not applicable: the agent under test has a root password")
        yield target
        return
    options = run_settings(request.config).mock_options()
    options.update(password="", agent_password=None)
    with embedded_mock(**options) as fresh:
        yield fresh


@pytest.mark.clause("ENC-21")
def test_empty_root_password_still_rejects_a_wrong_auth(
    client_factory: Callable[..., ObshellClient],
    empty_password_target: Target,
    dag_guard_factory: Callable[[ObshellClient], Guard],
) -> None:
    client = client_factory(empty_password_target, password="")
    guard = dag_guard_factory(client)

    with guard("ENC-21"):
        reply = Forger(client).send("GET", UNFINISHED, None, f.WRONG_PASSWORD)
        expect_rejected(reply, "ENC-21")


@pytest.mark.clause("ENC-22")
def test_empty_root_password_accepts_empty_auth_whatever_the_ts(
    client_factory: Callable[..., ObshellClient], empty_password_target: Target
) -> None:
    client = client_factory(empty_password_target, password="")
    forgery = f.EXPIRED_TS.replace(name="expired-ts-empty-auth", auth="")

    reply = Forger(client).send("GET", UNFINISHED, None, forgery)

    if reply.http_status != 200:
        raise ContractViolation(
            "ENC-22",
            'HTTP 200 for Auth "" with an expired Ts',
            f"HTTP {reply.http_status} {reply.err_code}",
        )


@pytest.mark.clause("ENC-23")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", UNFINISHED, None),
        ("GET", "/api/v1/task/dag/maintain/ob", None),
        ("POST", "/api/v1/task/dag/11", {"operator": "cancel"}),
    ],
    ids=["unfinished", "maintenance-dag", "operate"],
)
def test_dag_api_requires_authentication(
    forger: Forger, method: str, path: str, body: Any
) -> None:
    reply = forger.send(method, path, body, f.NO_HEADER)

    if reply.http_status not in (400, 401) or reply.error is None:
        raise ContractViolation(
            "ENC-23",
            "a 400 or 401 rejection without the header",
            f"HTTP {reply.http_status} {reply.err_code}",
        )
