"""Profiles: the registry, and one observable difference per profile flag."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from obshell_contract import crypto
from obshell_contract.errors import UsageError
from obshell_contract.mock import MockAgent
from obshell_contract.mock.profiles import (
    DEFAULT_PROFILE,
    PROFILES,
    Profile,
    get_profile,
)
from tests.mock.wire import NEWER, UPGRADE, AgentFactory, Wire, WireReply

DEVIATIONS = Path(__file__).resolve().parents[2] / "docs" / "deviations.md"
FLAGS = [f.name for f in dataclasses.fields(Profile) if f.type == "bool"]
VALID = {"version": NEWER[0], "release": NEWER[1]}


def test_the_registry_has_both_profiles_and_reference_is_the_default() -> None:
    assert list(PROFILES) == ["reference", "obshell-4.5"]
    assert DEFAULT_PROFILE == "reference"
    assert MockAgent().profile is PROFILES["reference"]


def test_an_unknown_profile_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(
        UsageError, match=r"--profile 'x' .* known: reference, obshell-4.5"
    ):
        get_profile("x")
    with pytest.raises(UsageError):
        MockAgent(profile="x")


def test_profiles_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["reference"].check_version_format = False  # type: ignore[misc]


@pytest.mark.parametrize("flag", FLAGS)
def test_every_flag_is_a_deviation_and_documented(flag: str) -> None:
    reference, agent = PROFILES["reference"], PROFILES["obshell-4.5"]

    assert getattr(reference, flag) != getattr(agent, flag)
    assert f"`{flag}`" in DEVIATIONS.read_text(encoding="utf-8")


# -- one request per flag, answered differently by the two profiles ---------------


def _keys_of_20_bytes(wire: Wire) -> WireReply:
    fields = wire.header_fields(UPGRADE, None, Keys=crypto.b64encode(b"k" * 20))
    body = crypto.aes_encrypt(crypto.AesKeys.random(), b"{}").encode()
    return wire.send(
        "POST",
        UPGRADE,
        headers={"X-OCS-Header": wire.encrypt_header(fields)},
        body=body,
    )


def _plain_body(wire: Wire) -> WireReply:
    fields = wire.header_fields(UPGRADE, crypto.AesKeys.random())
    body = json.dumps(VALID).encode()
    return wire.send(
        "POST",
        UPGRADE,
        headers={"X-OCS-Header": wire.encrypt_header(fields)},
        body=body,
    )


def _blank_version(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {"version": " ", "release": NEWER[1]})


def _version_99(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {"version": "99", "release": "1.el7"})


def _missing_package(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {"version": "4.6.0.0", "release": "1.el7"})


def _blank_upgrade_dir(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {**VALID, "upgradeDir": "  "})


def _dot_dot_inside(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {**VALID, "upgradeDir": "/a/../b"})


def _trailing_slash(wire: Wire) -> WireReply:
    return wire.send("POST", UPGRADE + "/")


def _bad_show_details(wire: Wire) -> WireReply:
    dag_id = wire.upgrade(*NEWER).data["id"]
    return wire.call("GET", f"/api/v1/task/dag/{dag_id}?show_details=yes")


Outcome = tuple[int, str | None]
MATRIX: list[tuple[str, Callable[[Wire], WireReply], Outcome, Outcome]] = [
    (
        "strict_body_decryption",
        _keys_of_20_bytes,
        (400, "Request.Body.Decrypt.AES.KeyAndIv.Invalid"),
        (500, "Common.Unexpected"),
    ),
    (
        "recovery_response",
        _plain_body,
        (400, "Request.Body.Decrypt.AES.Failed"),
        (500, "Common.Unexpected"),
    ),
    (
        "blank_counts_as_missing",
        _blank_version,
        (400, "Common.BindJsonFailed"),
        (400, "Agent.Upgrade.ToLowerVersion"),
    ),
    ("check_version_format", _version_99, (400, "Agent.Version.Invalid"), (200, None)),
    (
        "package_precheck",
        _missing_package,
        (400, "Agent.Package.NotFound"),
        (200, None),
    ),
    (
        "blank_upgrade_dir_is_default",
        _blank_upgrade_dir,
        (400, "Common.InvalidPath"),
        (200, None),
    ),
    (
        "reject_dot_dot_segments",
        _dot_dot_inside,
        (400, "Common.InvalidPath"),
        (200, None),
    ),
    ("redirect_trailing_slash", _trailing_slash, (404, "Common.NotFound"), (307, None)),
    (
        "query_panics",
        _bad_show_details,
        (400, "Request.Query.Param.Illegal"),
        (500, "Common.Unexpected"),
    ),
]


def test_the_matrix_covers_every_flag() -> None:
    assert sorted(row[0] for row in MATRIX) == sorted(FLAGS)


@pytest.mark.parametrize(
    ("flag", "action", "reference", "obshell_45"),
    MATRIX,
    ids=[row[0] for row in MATRIX],
)
def test_each_flag_changes_one_answer(
    agent_factory: AgentFactory,
    flag: str,
    action: Callable[[Wire], WireReply],
    reference: Outcome,
    obshell_45: Outcome,
) -> None:
    outcomes = []
    for name in ("reference", "obshell-4.5"):
        reply = action(Wire(agent_factory(profile=name)))
        err_code = reply.err_code if reply.body.startswith(b"{") else None
        outcomes.append((reply.status, err_code))

    assert outcomes == [reference, obshell_45]
