"""Request validation: malformed bodies are refused before any DAG exists.

The Hypothesis strategies draw values that upgrade-agent-request.schema.json
rejects; each example is sent correctly encrypted, so only the plaintext is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, note
from hypothesis.control import currently_in_test_context

from obshell_contract import strategies
from obshell_contract.checks import ContractViolation, expect_error, expect_rejected
from obshell_contract.client import ObshellClient, Reply
from obshell_contract.evidence import Evidence

UPGRADE = "/api/v1/agent/upgrade"
Guard = Callable[[str], Any]

# gin's validator message for one missing field.
REQUIRED = (
    "Key: 'UpgradeCheckParam.{0}' Error:Field validation for '{0}' failed on the "
    "'required' tag"
)


def send(client: ObshellClient, body: Any) -> Reply:
    """Send an encrypted plaintext body; observe REQ-13 on every answer.

    The observation goes to the client's observer, whose evidence is the
    test's: ``@given`` tests do not take ``evidence`` as an argument, because
    Hypothesis would print it whole in every falsifying example.
    """
    evidence: Evidence = client.on_reply.evidence  # type: ignore[union-attr]
    raw = body if isinstance(body, str) else json.dumps(body)
    reply = client.request("POST", UPGRADE, raw_body=raw.encode("utf-8"))
    if currently_in_test_context():
        note(
            f"sent {raw!r}; received HTTP {reply.http_status} "
            f"{reply.exchange.response_text[:300]}"
        )
    evidence.check(
        "REQ-13",
        reply.http_status < 500,
        expected="a 4xx for malformed input",
        actual=f"HTTP {reply.http_status} {reply.err_code}",
    )
    return reply


def rejected_without_dag(
    client: ObshellClient, dag_guard: Guard, body: Any, clause: str
) -> Reply:
    __tracebackhide__ = True
    with dag_guard(clause):
        reply = send(client, body)
        expect_rejected(reply, clause)
    return reply


# -- missing fields, wrong types, blanks -----------------------------------------


def without(body: dict[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in body.items() if key not in names}


@pytest.mark.clause("REQ-01")
@pytest.mark.parametrize(
    "missing", [("version",), ("release",), ("version", "release")]
)
def test_missing_fields_are_rejected(
    client: ObshellClient,
    dag_guard: Guard,
    base_body: dict[str, str],
    missing: tuple[str, ...],
) -> None:
    rejected_without_dag(client, dag_guard, without(base_body, *missing), "REQ-01")


@pytest.mark.clause("REQ-02")
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ("Version", "Release")),
        ("null", ("Version", "Release")),
        ({"release": "1.el7"}, ("Version",)),
        ({"version": "", "release": "1.el7"}, ("Version",)),
        ({"version": "4.2.1.1"}, ("Release",)),
    ],
    ids=["empty-object", "null", "no-version", "empty-version", "no-release"],
)
def test_missing_fields_are_named_by_bind_json_failed(
    client: ObshellClient, body: Any, fields: tuple[str, ...]
) -> None:
    reply = send(client, body)

    message = "Bind JSON failed: " + "\n".join(REQUIRED.format(name) for name in fields)
    expect_error(
        reply, "REQ-02", status=400, err_code="Common.BindJsonFailed", message=message
    )


@pytest.mark.clause("REQ-03")
@pytest.mark.parametrize("field", ["version", "release", "upgradeDir"])
@given(value=strategies.wrong_types())
def test_fields_of_the_wrong_json_type_are_rejected(
    client: ObshellClient,
    dag_guard: Guard,
    base_body: dict[str, str],
    field: str,
    value: Any,
) -> None:
    rejected_without_dag(client, dag_guard, {**base_body, field: value}, "REQ-03")


@pytest.mark.clause("REQ-04")
@pytest.mark.parametrize("field", ["version", "release"])
@pytest.mark.parametrize("blank", ["", " ", "\t", "   \n"], ids=repr)
def test_blank_version_and_release_are_rejected(
    client: ObshellClient,
    dag_guard: Guard,
    base_body: dict[str, str],
    field: str,
    blank: str,
) -> None:
    rejected_without_dag(client, dag_guard, {**base_body, field: blank}, "REQ-04")


# -- malformed values ------------------------------------------------------------


@pytest.mark.clause("REQ-05")
@given(version=strategies.malformed_versions())
# Values a version comparison without a format check takes for newer ones.
@example(version="99")
@example(version="4.5.9.9.9")
@example(version="v9.0.0.0")
def test_malformed_versions_are_rejected(
    client: ObshellClient,
    dag_guard: Guard,
    base_body: dict[str, str],
    version: str,
) -> None:
    rejected_without_dag(client, dag_guard, {**base_body, "version": version}, "REQ-05")


@pytest.mark.clause("REQ-06")
@given(release=strategies.malformed_releases())
# Values a release check that only looks for a dot lets through.
@example(release="abc.el7")
@example(release="100000012026050802.el7.x86_64")
def test_malformed_releases_are_rejected(
    client: ObshellClient,
    dag_guard: Guard,
    base_body: dict[str, str],
    release: str,
) -> None:
    rejected_without_dag(client, dag_guard, {**base_body, "release": release}, "REQ-06")


@pytest.mark.clause("REQ-07")
def test_release_without_a_dot_is_answered_release_format_invalid(
    client: ObshellClient, base_body: dict[str, str]
) -> None:
    release = base_body["release"].split(".")[0]

    reply = send(client, {**base_body, "release": release})

    expect_error(
        reply,
        "REQ-07",
        status=400,
        err_code="Package.ReleaseFormat.Invalid",
        message=f"Release format {release} is illegal",
    )
    if not (reply.has_data_key and reply.data is None):
        raise ContractViolation(
            "REQ-07",
            '"data": null beside the error',
            reply.exchange.response_text[:200],
        )


@pytest.mark.clause("REQ-08")
@given(upgrade_dir=strategies.malformed_upgrade_dirs())
# Paths a traversal check that only refuses escaping ".." lets through.
@example(upgrade_dir="/data/..")
@example(upgrade_dir="/data/upgrade/../x")
def test_malformed_upgrade_dirs_are_rejected(
    client: ObshellClient,
    dag_guard: Guard,
    base_body: dict[str, str],
    upgrade_dir: str,
) -> None:
    body = {**base_body, "upgradeDir": upgrade_dir}

    rejected_without_dag(client, dag_guard, body, "REQ-08")


@pytest.mark.clause("REQ-09")
@pytest.mark.parametrize(
    ("upgrade_dir", "reason"),
    [
        ("tmp/x", "should start with '/'"),
        (
            "/a/../../x",
            "should not lead to directory traversal issues when joined with a "
            "generated parent path",
        ),
        (
            "/data/up grade",
            "should match pattern ^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$",
        ),
    ],
    ids=["relative", "traversal", "space"],
)
def test_malformed_upgrade_dir_is_answered_invalid_path(
    client: ObshellClient,
    base_body: dict[str, str],
    upgrade_dir: str,
    reason: str,
) -> None:
    reply = send(client, {**base_body, "upgradeDir": upgrade_dir})

    expect_error(
        reply,
        "REQ-09",
        status=400,
        err_code="Common.InvalidPath",
        message=f"Path '{upgrade_dir}' is not valid: {reason}",
    )


# -- body shapes -----------------------------------------------------------------


@pytest.mark.clause("REQ-10")
@given(body=strategies.malformed_bodies())
def test_bodies_that_are_not_one_object_are_rejected(
    client: ObshellClient, dag_guard: Guard, body: str
) -> None:
    rejected_without_dag(client, dag_guard, body, "REQ-10")


@pytest.mark.clause("REQ-11")
@pytest.mark.parametrize(
    "body", ["[]", '"x"', "123", '{"version": "4.2.1.1", "release": "1.el7"} x']
)
def test_bodies_that_are_not_one_object_are_answered_bind_json_failed(
    client: ObshellClient, body: str
) -> None:
    reply = send(client, body)

    expect_error(
        reply,
        "REQ-11",
        status=400,
        err_code="Common.BindJsonFailed",
        message="Bind JSON failed: EOF",
    )


@pytest.mark.clause("REQ-12")
def test_unknown_fields_are_ignored(
    client: ObshellClient, current_body: dict[str, str]
) -> None:
    plain = send(client, current_body)
    extended = send(client, {**current_body, "extra": 1, "comment": "x"})

    if (extended.http_status, extended.err_code) != (plain.http_status, plain.err_code):
        raise ContractViolation(
            "REQ-12",
            "the same answer as without extra fields: "
            f"HTTP {plain.http_status} {plain.err_code}",
            f"HTTP {extended.http_status} {extended.err_code}",
        )


@pytest.mark.clause("REQ-13")
@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "[]",
        '{"version": 4}',
        '{"version": "x", "release": "y"}',
        "{",
        '{"upgradeDir": 1}',
    ],
)
def test_malformed_input_is_never_a_server_error(
    client: ObshellClient, body: str
) -> None:
    reply = send(client, body)

    if not 400 <= reply.http_status < 500:
        raise ContractViolation(
            "REQ-13", "a 4xx status", f"HTTP {reply.http_status} {reply.err_code}"
        )
