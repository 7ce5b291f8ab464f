"""Encryption and authentication: every broken envelope is refused, with its errCode.

Each broken envelope is a forgery of :mod:`obshell_contract.forgery`; the
tables below say which clause it tests. MUST rows send the run's upgrade
package, so an agent that lets the forgery through starts a real DAG (which
the guard undoes); SHOULD rows send the agent's own version, always refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from obshell_contract import forgery as f
from obshell_contract.checks import ContractViolation, expect_error, expect_rejected
from obshell_contract.clauses import version_tuple
from obshell_contract.client import ObshellClient
from obshell_contract.forgery import Forger, Forgery
from obshell_contract.plugin import clause_ids, run_settings
from obshell_contract.targets import Target, embedded_mock

UPGRADE = "/api/v1/agent/upgrade"
UNFINISHED = "/api/v1/task/dag/unfinish"

Guard = Callable[[str], Any]


def row(forgery: Forgery, clause: str, *args: Any) -> Any:
    """A table row: the forgery, its clause as a marker, the test id."""
    return pytest.param(
        forgery, *args, marks=pytest.mark.clause(clause), id=forgery.name
    )


@pytest.fixture
def clause(request: pytest.FixtureRequest) -> str:
    """The clause the current table row names."""
    return clause_ids(request.node)[0]


# -- MUST: refused, and no DAG ---------------------------------------------------

REFUSED = [
    row(f.NO_HEADER, "ENC-01"),
    row(f.GARBAGE_HEADER, "ENC-03"),
    row(f.FOREIGN_RSA_KEY, "ENC-03"),
    row(f.NUMERIC_TS, "ENC-03"),
    row(f.WRONG_PASSWORD, "ENC-05"),
    row(f.EXPIRED_TS, "ENC-07"),
    row(f.NON_NUMERIC_TS, "ENC-09"),
    row(f.OTHER_URI, "ENC-11"),
    row(f.PLAIN_BODY, "ENC-14"),
    row(f.MISSING_KEYS, "ENC-16"),
    row(f.SHORT_KEYS_16, "ENC-16"),
    row(f.SHORT_KEYS_24, "ENC-16"),
    row(f.TAMPERED_CIPHERTEXT, "ENC-17"),
    row(f.FOREIGN_AES_KEY, "ENC-17"),
    row(f.BAD_BODY_LENGTH, "ENC-17"),
    row(f.AGENT_HEADER_INSTEAD, "ENC-18"),
]


@pytest.mark.parametrize("forgery", REFUSED)
def test_broken_envelope_is_refused_without_a_dag(
    forger: Forger,
    dag_guard: Guard,
    base_body: dict[str, str],
    forgery: Forgery,
    clause: str,
) -> None:
    with dag_guard(clause):
        reply = forger.send("POST", UPGRADE, base_body, forgery)
        expect_rejected(reply, clause)


@pytest.mark.clause("ENC-11")
def test_captured_header_replayed_on_another_uri_is_refused(
    forger: Forger, dag_guard: Guard, base_body: dict[str, str]
) -> None:
    captured = forger.send("POST", UPGRADE + "/check", base_body, f.HONEST)

    with dag_guard("ENC-11"):
        reply = forger.replay(captured, UPGRADE)
        expect_rejected(reply, "ENC-11")


@pytest.mark.clause("ENC-13")
def test_uri_without_query_is_refused(forger: Forger) -> None:
    reply = forger.send(
        "GET", UNFINISHED + "?show_details=true", None, f.URI_WITHOUT_QUERY
    )

    expect_rejected(reply, "ENC-13")


# -- SHOULD: the documented error ------------------------------------------------

DOCUMENTED = [
    row(
        f.NO_HEADER,
        "ENC-02",
        400,
        "Request.Header.NotFound",
        {
            "message": "X-OCS-Agent-Header or X-OCS-Header not found in http "
            "request header"
        },
    ),
    row(
        f.EXPIRED_TS,
        "ENC-08",
        401,
        "Security.Authentication.Expired",
        {"message": "Unauthorized: Authentication expired", "code": 10008},
    ),
    row(
        f.NON_NUMERIC_TS,
        "ENC-10",
        401,
        "Security.Authentication.Timestamp.Invalid",
        {"message_prefix": "Unauthorized: Invalid timestamp: soon", "code": 10008},
    ),
    # The URI is checked before the password: a wrong one changes nothing.
    row(
        f.OTHER_URI.replace(name="other-uri-wrong-password", auth=f.AuthChoice.WRONG),
        "ENC-12",
        401,
        "Security.Authentication.Header.UriMismatch",
        {"message": "URI mismatch", "code": 10008},
    ),
]


@pytest.mark.parametrize(("forgery", "status", "err_code", "details"), DOCUMENTED)
def test_broken_envelope_is_answered_with_its_documented_error(
    forger: Forger,
    current_body: dict[str, str],
    clause: str,
    forgery: Forgery,
    status: int,
    err_code: str,
    details: dict[str, Any],
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, forgery)

    expect_error(reply, clause, status=status, err_code=err_code, **details)


@pytest.mark.clause("ENC-04")
@pytest.mark.parametrize(
    "forgery",
    [f.GARBAGE_HEADER, f.FOREIGN_RSA_KEY, f.NUMERIC_TS],
    ids=lambda x: x.name,
)
def test_undecryptable_header_is_answered_decrypt_failed(
    forger: Forger, current_body: dict[str, str], target: Target, forgery: Forgery
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, forgery)

    # code 1 tells the SDK to fetch the key again; it came with 4.4.2.0.
    version = (target.facts.agent_version if target.facts else None) or "0"
    code = 1 if version_tuple(version) >= (4, 4, 2, 0) else None
    expect_error(
        reply,
        "ENC-04",
        status=401,
        err_code="Security.Authentication.Header.DecryptFailed",
        message_prefix="Decrypt http header failed: ",
        code=code,
    )


@pytest.mark.clause("ENC-06")
def test_wrong_password_is_answered_incorrect_password(
    forger: Forger, current_body: dict[str, str], target: Target
) -> None:
    reply = forger.send("POST", UPGRADE, current_body, f.WRONG_PASSWORD)

    # The client signs with the agent password when the run has one.
    which, name = ("Agent", "Agent")
    if not target.agent_password:
        which, name = ("Oceanbase", "OceanBase")
    expect_error(
        reply,
        "ENC-06",
        status=401,
        err_code=f"Security.Authentication.Incorrect{which}Password",
        message=f"Unauthorized: {name} password is incorrect",
        code=10008,
    )


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


# -- accepted: what the agent documents it lets through ---------------------------


def expect_accepted(reply: Any, clause: str, what: str) -> None:
    __tracebackhide__ = True
    if reply.http_status != 200:
        raise ContractViolation(
            clause, f"HTTP 200 for {what}", f"HTTP {reply.http_status} {reply.err_code}"
        )


@pytest.mark.clause("ENC-19")
def test_far_future_ts_is_accepted(forger: Forger) -> None:
    reply = forger.send("GET", UNFINISHED, None, f.FAR_FUTURE_TS)

    expect_accepted(reply, "ENC-19", "a Ts one day ahead")


@pytest.mark.clause("ENC-20")
def test_sha256_field_changes_nothing(forger: Forger) -> None:
    reply = forger.send("GET", UNFINISHED, None, f.SHA256_FIELD)

    expect_accepted(reply, "ENC-20", "a header with an unread Sha256 field")


# -- an agent with an empty root password -----------------------------------------


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
    config = run_settings(request.config).mock_config()
    with embedded_mock(replace(config, password="", agent_password=None)) as fresh:
        yield fresh


@pytest.fixture
def empty_password_forger(
    client_factory: Callable[..., ObshellClient], empty_password_target: Target
) -> Forger:
    return Forger(client_factory(empty_password_target, password=""))


@pytest.mark.clause("ENC-21")
def test_empty_root_password_still_refuses_a_wrong_auth(
    empty_password_forger: Forger,
) -> None:
    reply = empty_password_forger.send("GET", UNFINISHED, None, f.WRONG_PASSWORD)

    expect_rejected(reply, "ENC-21")


@pytest.mark.clause("ENC-22")
def test_empty_root_password_accepts_empty_auth_whatever_the_ts(
    empty_password_forger: Forger,
) -> None:
    forgery = f.EXPIRED_TS.replace(name="expired-ts-empty-auth", auth="")

    reply = empty_password_forger.send("GET", UNFINISHED, None, forgery)

    expect_accepted(reply, "ENC-22", 'Auth "" with an expired Ts')


# -- the DAG API -----------------------------------------------------------------


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

    # Without auth the agent must not even look the DAG up (a 404 would show it did).
    if reply.http_status not in (400, 401) or reply.error is None:
        raise ContractViolation(
            "ENC-23",
            "a 400 or 401 refusal without the header",
            f"HTTP {reply.http_status} {reply.err_code}",
        )
