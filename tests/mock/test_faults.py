"""Faults: the registry, and each server fault breaking its one promise.

Every server fault is run twice with the same request: on a healthy agent the
promise holds, with the fault it breaks. The engine's faults are proven in
``test_dag.py``; here they are only shown to reach the engine.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from obshell_contract import crypto, schemas
from obshell_contract.errors import UsageError
from obshell_contract.mock import MockAgent
from obshell_contract.mock.dag import ENGINE_FAULT_NAMES
from obshell_contract.mock.faults import (
    ENGINE_FAULTS,
    FAULTS,
    SERVER_FAULTS,
    check_faults,
)
from tests.mock.wire import (
    NEWER,
    PASSWORD,
    UPGRADE,
    AgentFactory,
    Wire,
    WireReply,
    wait_for_dag,
)

VALID = {"version": NEWER[0], "release": NEWER[1]}
UNFINISHED = "/api/v1/task/dag/unfinish"
WRONG = "wrong-Zq8x"
OFFSET = re.compile(r".*(Z|[+-]\d\d:\d\d)")


# -- the registry ----------------------------------------------------------------


def test_the_registry_lists_every_fault_of_both_layers() -> None:
    assert len(FAULTS) == 22
    assert ENGINE_FAULTS == ENGINE_FAULT_NAMES
    assert len(SERVER_FAULTS) == 14
    assert set(FAULTS) == ENGINE_FAULTS | SERVER_FAULTS
    for name, fault in FAULTS.items():
        assert fault.name == name
        assert fault.description
        assert "\n" not in fault.description


def test_check_faults_refuses_unknown_names() -> None:
    assert check_faults(["drop-trace-id"]) == ("drop-trace-id",)
    with pytest.raises(
        UsageError, match=r"--fault 'nope' is not a known fault; known: 500-on"
    ):
        check_faults(["nope"])
    with pytest.raises(UsageError):
        MockAgent(faults=("nope",))


# -- server faults: the same request, healthy and faulty ---------------------------


def _plain_upgrade(wire: Wire) -> WireReply:
    return wire.send("POST", UPGRADE, body=json.dumps(VALID).encode())


def _plain_body_under_header(wire: Wire) -> WireReply:
    fields = wire.header_fields(UPGRADE, crypto.AesKeys.random())
    headers = {"X-OCS-Header": wire.encrypt_header(fields)}
    return wire.send("POST", UPGRADE, headers=headers, body=json.dumps(VALID).encode())


def _wrong_password(wire: Wire) -> WireReply:
    return wire.call("GET", UNFINISHED, Auth=WRONG)


def _expired(wire: Wire) -> WireReply:
    return wire.call("GET", UNFINISHED, Ts=crypto.expiry(-60))


def _other_uri(wire: Wire) -> WireReply:
    return wire.call("GET", UNFINISHED, Uri="/api/v1/agent/upgrade")


def _malformed_version(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {"version": "abc", "release": "1.el7"})


def _empty_body(wire: Wire) -> WireReply:
    return wire.call("POST", UPGRADE, {})


def _info(wire: Wire) -> WireReply:
    return wire.send("GET", "/api/v1/info")


def _not_found(wire: Wire) -> WireReply:
    return wire.send("GET", "/api/v1/nothing")


def _envelope(reply: WireReply) -> dict[str, Any]:
    return reply.envelope


Broken = Callable[[WireReply], bool]
CASES: list[tuple[str, Callable[[Wire], WireReply], Broken]] = [
    ("accept-unencrypted", _plain_upgrade, lambda r: r.status == 200),
    ("accept-plain-body", _plain_body_under_header, lambda r: r.status == 200),
    ("ignore-password", _wrong_password, lambda r: r.status == 200),
    ("ignore-expiry", _expired, lambda r: r.status == 200),
    ("ignore-uri", _other_uri, lambda r: r.status == 200),
    ("accept-malformed-version", _malformed_version, lambda r: r.status == 200),
    (
        "error-with-200",
        _empty_body,
        lambda r: r.status == 200 and _envelope(r)["successful"] is False,
    ),
    ("status-mismatch", _info, lambda r: _envelope(r)["status"] != r.status),
    ("drop-trace-id", _info, lambda r: "traceId" not in _envelope(r)),
    ("echo-password", _wrong_password, lambda r: WRONG in r.body.decode()),
    (
        "500-on-bad-input",
        _empty_body,
        lambda r: (r.status, r.err_code) == (500, "Common.Unexpected"),
    ),
    (
        "wrong-errcode",
        _wrong_password,
        lambda r: (r.status, r.err_code) == (401, "Common.Unexpected"),
    ),
    ("bad-timestamp", _info, lambda r: not OFFSET.fullmatch(_envelope(r)["timestamp"])),
    ("markup-in-errors", _not_found, lambda r: "<script>" in r.message),
]
# Faults whose broken promise is the envelope's own shape.
ENVELOPE_FAULTS = {
    "status-mismatch",
    "drop-trace-id",
    "bad-timestamp",
    "error-with-200",
}


def test_the_cases_cover_every_server_fault() -> None:
    assert sorted(name for name, _, _ in CASES) == sorted(SERVER_FAULTS)


@pytest.mark.parametrize(
    ("fault", "action", "broken"), CASES, ids=[c[0] for c in CASES]
)
def test_each_server_fault_breaks_its_promise(
    agent_factory: AgentFactory,
    profile: str,
    fault: str,
    action: Callable[[Wire], WireReply],
    broken: Broken,
) -> None:
    healthy = action(Wire(agent_factory(profile=profile)))
    faulty = action(Wire(agent_factory(profile=profile, faults=(fault,))))

    assert not broken(healthy), healthy.body
    assert broken(faulty), faulty.body


@pytest.mark.parametrize("fault", sorted(SERVER_FAULTS - ENVELOPE_FAULTS))
def test_other_faults_keep_the_envelope_sound(
    agent_factory: AgentFactory, fault: str
) -> None:
    wire = Wire(agent_factory(faults=(fault,)))

    for reply in (_info(wire), _not_found(wire)):
        assert schemas.violations(reply.envelope, schemas.ENVELOPE) == []
        assert reply.envelope["status"] == reply.status


def test_error_with_200_keeps_status_and_http_in_step(
    agent_factory: AgentFactory,
) -> None:
    reply = _empty_body(Wire(agent_factory(faults=("error-with-200",))))

    assert reply.envelope["status"] == reply.status == 200
    assert reply.err_code == "Common.BindJsonFailed"


def test_500_on_bad_input_covers_the_operator_route(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(faults=("500-on-bad-input",)))
    dag_id = wire.upgrade(*NEWER).data["id"]

    reply = wire.call("POST", f"/api/v1/task/dag/{dag_id}", {})

    assert (reply.status, reply.err_code) == (500, "Common.Unexpected")
    assert reply.message.startswith("Unexpected error: Bind JSON failed: Key: ")


def test_wrong_errcode_also_covers_header_decryption(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(faults=("wrong-errcode",)))

    reply = wire.send("GET", UNFINISHED, headers={"X-OCS-Header": "Zm9vYmFy"})

    assert (reply.status, reply.err_code, reply.error.get("code")) == (
        401,
        "Common.Unexpected",
        1,
    )


def test_echo_password_echoes_only_what_the_client_sent(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(faults=("echo-password",))

    reply = _wrong_password(Wire(agent))

    assert PASSWORD not in reply.body.decode()


# -- engine faults reach the engine ------------------------------------------------


def _upgrade_and_watch(agent: MockAgent) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    wire = Wire(agent)
    created = wire.upgrade(*NEWER).data
    polls: list[dict[str, Any]] = []
    # Three times as long as a healthy DAG takes.
    deadline = time.monotonic() + 27 * agent.config.stage_seconds
    while time.monotonic() < deadline:
        dag = agent.dags()[0]
        polls.append(dag)
        if dag["state"] in ("SUCCEED", "FAILED"):
            break
        time.sleep(0.002)
    return created, polls


def test_dag_wrong_max_stage_and_id_mismatch(agent_factory: AgentFactory) -> None:
    agent = agent_factory(faults=("dag-wrong-max-stage", "dag-id-mismatch"))

    created = Wire(agent).upgrade(*NEWER).data

    assert created["max_stage"] == 8
    assert created["id"] != f"1{created['dag_id']}"


def test_concurrent_upgrade_lifts_the_maintenance_lock(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(faults=("concurrent-upgrade",)))

    replies = [wire.upgrade(*NEWER) for _ in range(2)]

    assert [reply.status for reply in replies] == [200, 200]


def test_version_not_updated_keeps_the_old_version(agent_factory: AgentFactory) -> None:
    agent = agent_factory(faults=("version-not-updated",))
    wire = Wire(agent)

    dag = wait_for_dag(wire, wire.upgrade(*NEWER).data["id"])

    assert dag["state"] == "SUCCEED"
    assert (
        wire.send("GET", "/api/v1/info").data["version"] == agent.config.agent_version
    )


def test_dag_never_finishes(agent_factory: AgentFactory) -> None:
    agent = agent_factory(faults=("dag-never-finishes",), stage_seconds=0.01)

    _, polls = _upgrade_and_watch(agent)

    assert (polls[-1]["state"], polls[-1]["stage"]) == ("RUNNING", 5)


@pytest.mark.parametrize(
    ("fault", "seen"),
    [
        (
            "dag-state-outside-enum",
            lambda polls: any(
                p["state"] not in ("PENDING", "READY", "RUNNING", "FAILED", "SUCCEED")
                or any(
                    n["state"]
                    not in ("PENDING", "READY", "RUNNING", "FAILED", "SUCCEED")
                    for n in p["nodes"] or ()
                )
                for p in polls
            ),
        ),
        (
            "dag-stage-backwards",
            lambda polls: any(
                b["stage"] < a["stage"] for a, b in itertools.pairwise(polls)
            ),
        ),
        (
            "node-state-disagrees",
            lambda polls: any(
                n["state"] == "SUCCEED"
                and any(s["state"] == "RUNNING" for s in n["sub_tasks"])
                for p in polls
                for n in p["nodes"] or ()
            ),
        ),
    ],
)
def test_observed_engine_faults(
    agent_factory: AgentFactory,
    fault: str,
    seen: Callable[[list[dict[str, Any]]], bool],
) -> None:
    healthy = agent_factory(stage_seconds=0.02)
    faulty = agent_factory(faults=(fault,), stage_seconds=0.02)

    assert not seen(_upgrade_and_watch(healthy)[1])
    assert seen(_upgrade_and_watch(faulty)[1])
