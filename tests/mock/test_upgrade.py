"""``POST /api/v1/agent/upgrade``: binding, business checks, the DAG and its routes (§4-§6)."""

from __future__ import annotations

import json

import pytest

from obshell_contract import crypto, schemas
from obshell_contract.mock.errors import AgentError
from obshell_contract.mock.upgrade import (
    UPGRADE_CHECK_PARAM,
    bind_json,
    check_path_valid,
    compare_version,
    split_release,
)
from tests.mock.wire import (
    LONG_STAGE,
    NEWER,
    UPGRADE,
    AgentFactory,
    Wire,
    WireReply,
    assert_envelope,
    assert_error,
    wait_for_dag,
)

VERSION_REQUIRED = (
    "Key: 'UpgradeCheckParam.Version' Error:Field validation for 'Version' "
    "failed on the 'required' tag"
)
RELEASE_REQUIRED = VERSION_REQUIRED.replace("Version", "Release")
BOTH_REQUIRED = f"Bind JSON failed: {VERSION_REQUIRED}\n{RELEASE_REQUIRED}"
DAG_KEYS = [
    "id",
    "dag_id",
    "name",
    "stage",
    "max_stage",
    "maintenance_type",
    "maintenance_key",
    "state",
    "operator",
    "start_time",
    "end_time",
    "additional_data",
    "nodes",
]
NODE_NAMES = [
    "Create upgrade dir",
    "Download all required packages",
    "Check all required packages",
    "Unpack all required packages",
    "Backup for upgrade",
    "Install new obshell",
    "Restart obshell",
    "Upgrade post table maintain",
    "Remove upgrade check task dir",
]
VALID = {"version": NEWER[0], "release": NEWER[1]}


def post_raw(wire: Wire, plaintext: bytes) -> WireReply:
    return wire.call("POST", UPGRADE, raw_plaintext=plaintext)


def assert_bind_failed(reply: WireReply, detail: str) -> None:
    __tracebackhide__ = True
    envelope = assert_error(
        reply, 400, "Common.BindJsonFailed", f"Bind JSON failed: {detail}"
    )
    assert "data" not in envelope


def assert_refused(reply: WireReply, err_code: str, message: str | None = None) -> None:
    """A business-check refusal: 400 and ``"data": null``."""
    __tracebackhide__ = True
    envelope = assert_error(reply, 400, err_code, message)
    assert envelope["data"] is None


# -- binding (§4.1) --------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{}", b"null", b" {} \n", b'{"upgradeDir":"/x"}'])
def test_both_fields_missing(wire: Wire, body: bytes) -> None:
    assert_error(post_raw(wire, body), 400, "Common.BindJsonFailed", BOTH_REQUIRED)


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"version": "", "release": "x.el7"}, VERSION_REQUIRED),
        ({"version": None, "release": "x.el7"}, VERSION_REQUIRED),
        ({"version": "4.5.0.1"}, RELEASE_REQUIRED),
    ],
)
def test_one_field_missing(wire: Wire, payload: dict[str, object], detail: str) -> None:
    assert_bind_failed(wire.call("POST", UPGRADE, payload), detail)


@pytest.mark.parametrize(
    ("value", "kind"),
    [(4, "number"), (4.2, "number"), (True, "bool"), ({}, "object"), ([], "array")],
)
def test_a_version_of_the_wrong_type(wire: Wire, value: object, kind: str) -> None:
    reply = wire.call("POST", UPGRADE, {"version": value, "release": "x.el7"})

    assert_bind_failed(
        reply,
        f"json: cannot unmarshal {kind} into Go struct field "
        "UpgradeCheckParam.version of type string",
    )


def test_an_upgrade_dir_of_the_wrong_type(wire: Wire) -> None:
    reply = wire.call("POST", UPGRADE, {**VALID, "upgradeDir": 1})

    assert_bind_failed(
        reply,
        "json: cannot unmarshal number into Go struct field "
        "UpgradeCheckParam.upgradeDir of type string",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"x"',
        b"123",
        b"not json",
        b'{"version":"4.5.0.1","release":"1.el7"} x',
        b"{}{}",
        b'{"version":"4.5.0.1","release":"1.el7","n":1e400}',
        b'{"version":"4.5.0.1","release":"1.el7","n":NaN}',
    ],
)
def test_bodies_that_are_not_one_object_are_swallowed(wire: Wire, body: bytes) -> None:
    assert_bind_failed(post_raw(wire, body), "EOF")


def test_keys_match_case_insensitively_and_extras_are_ignored(wire: Wire) -> None:
    reply = wire.call(
        "POST", UPGRADE, {"VERSION": NEWER[0], "Release": NEWER[1], "extra": 1}
    )

    assert reply.status == 200


def test_whitespace_only_version(agent_factory: AgentFactory, profile: str) -> None:
    wire = Wire(agent_factory(profile=profile))

    reply = wire.call("POST", UPGRADE, {"version": "   ", "release": NEWER[1]})

    if profile == "reference":
        assert_bind_failed(reply, VERSION_REQUIRED)
    else:  # passes required, then compares as 0
        assert_refused(reply, "Agent.Upgrade.ToLowerVersion")


def test_whitespace_only_release(agent_factory: AgentFactory, profile: str) -> None:
    wire = Wire(agent_factory(profile=profile))

    reply = wire.call("POST", UPGRADE, {"version": NEWER[0], "release": "  "})

    if profile == "reference":
        assert_bind_failed(reply, RELEASE_REQUIRED)
    else:
        assert_refused(
            reply, "Package.ReleaseFormat.Invalid", "Release format    is illegal"
        )


def test_bind_json_reports_gin_messages() -> None:
    with pytest.raises(AgentError) as caught:
        bind_json("", UPGRADE_CHECK_PARAM, [("version", "Version")])

    assert caught.value.message == "Bind JSON failed: EOF"
    assert bind_json('{"Version":"a","version":"b"}', UPGRADE_CHECK_PARAM, []) == {
        "version": "b"
    }


# -- business checks (§4.2) ------------------------------------------------------


def test_a_release_without_a_dot(wire: Wire) -> None:
    reply = wire.call(
        "POST", UPGRADE, {"version": "4.2.1.1", "release": "101000062023110109"}
    )

    assert_refused(
        reply,
        "Package.ReleaseFormat.Invalid",
        "Release format 101000062023110109 is illegal",
    )


def test_a_lower_version(wire: Wire) -> None:
    reply = wire.call(
        "POST", UPGRADE, {"version": "4.2.1.1", "release": "101000062023110109.el7"}
    )

    assert_refused(
        reply,
        "Agent.Upgrade.ToLowerVersion",
        "Target version 4.2.1.1-101000062023110109 is not greater than current "
        "version 4.5.0.0-100000012026050801. Please verify if the parameters have "
        "been filled out correctly",
    )


@pytest.mark.parametrize("version", ["abc", "99", "4.5", "4.5.0.1.0", "4.5.0.x"])
def test_a_malformed_version(
    agent_factory: AgentFactory, profile: str, version: str
) -> None:
    wire = Wire(agent_factory(profile=profile))

    reply = wire.call(
        "POST", UPGRADE, {"version": version, "release": "999999999999999999.el7"}
    )

    if profile == "reference":
        assert_refused(
            reply,
            "Agent.Version.Invalid",
            f"Version {version} is illegal: expected four dot-separated integers",
        )
    elif (
        compare_version(f"{version}-999999999999999999", "4.5.0.0-100000012026050801")
        > 0
    ):
        assert reply.status == 200  # "99" and "4.5.0.1.0" sail through
    else:
        assert_refused(reply, "Agent.Upgrade.ToLowerVersion")


@pytest.mark.parametrize(
    ("upgrade_dir", "reason"),
    [
        ("tmp/x", "should start with '/'"),
        (" /x", "should start with '/'"),
        ("/a b", "should match pattern ^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$"),
        ("/a\n", "should match pattern ^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$"),
        (
            "/a/../../x",
            "should not lead to directory traversal issues when joined with a "
            "generated parent path",
        ),
    ],
)
def test_an_invalid_upgrade_dir(wire: Wire, upgrade_dir: str, reason: str) -> None:
    reply = wire.call("POST", UPGRADE, {**VALID, "upgradeDir": upgrade_dir})

    assert_refused(
        reply, "Common.InvalidPath", f"Path '{upgrade_dir}' is not valid: {reason}"
    )


@pytest.mark.parametrize("upgrade_dir", ["/data/upgrade", "/数据/x", "", "/a/./b"])
def test_a_valid_upgrade_dir(wire: Wire, upgrade_dir: str) -> None:
    reply = wire.call("POST", UPGRADE, {**VALID, "upgradeDir": upgrade_dir})

    assert reply.status == 200


def test_a_dot_dot_segment_that_stays_inside(
    agent_factory: AgentFactory, profile: str
) -> None:
    wire = Wire(agent_factory(profile=profile))

    reply = wire.call("POST", UPGRADE, {**VALID, "upgradeDir": "/a/../b"})

    if profile == "reference":
        assert_refused(reply, "Common.InvalidPath")
    else:
        assert reply.status == 200


def test_a_blank_upgrade_dir(agent_factory: AgentFactory, profile: str) -> None:
    wire = Wire(agent_factory(profile=profile))

    reply = wire.call("POST", UPGRADE, {**VALID, "upgradeDir": "   "})

    if profile == "reference":
        assert_refused(
            reply,
            "Common.InvalidPath",
            "Path '   ' is not valid: should start with '/'",
        )
    else:
        assert reply.status == 200


def test_a_missing_package(agent_factory: AgentFactory, profile: str) -> None:
    agent = agent_factory(profile=profile)
    wire = Wire(agent)

    reply = wire.call("POST", UPGRADE, {"version": "4.6.0.0", "release": "1.el7"})

    if profile == "reference":
        assert_refused(
            reply,
            "Agent.Package.NotFound",
            f"Package obshell-4.6.0.0-1.el7.{agent.architecture}.rpm is not found",
        )
        assert agent.dags() == []
        return
    dag = wait_for_dag(wire, reply.data["id"])
    assert (dag["state"], dag["stage"]) == ("FAILED", 2)
    failed = dag["nodes"][1]
    assert failed["name"] == "Download all required packages"
    assert failed["sub_tasks"][0]["task_logs"][-1] == (
        "ERROR: [Common.Unexpected]: Unexpected error: record not found"
    )


def test_configured_packages_replace_the_default(agent_factory: AgentFactory) -> None:
    wire = Wire(agent_factory(packages=("4.6.0.0-1.el7",)))

    default = wire.upgrade(*NEWER)
    configured = wire.call("POST", UPGRADE, {"version": "4.6.0.0", "release": "1.el7"})

    assert_refused(default, "Agent.Package.NotFound")
    assert configured.status == 200


def test_checks_run_in_the_agents_order(wire: Wire) -> None:
    # upgradeDir before release before version: each error hides the next.
    reply = wire.call(
        "POST", UPGRADE, {"version": "1", "release": "nodot", "upgradeDir": "rel"}
    )

    assert reply.err_code == "Common.InvalidPath"


# -- the upgrade DAG -------------------------------------------------------------


def test_a_valid_upgrade_creates_the_dag(wire: Wire) -> None:
    reply = wire.upgrade(*NEWER)

    envelope = assert_envelope(reply)
    dag = reply.data
    assert list(dag) == DAG_KEYS
    assert dag["id"] == f"1{dag['dag_id']}"
    assert dag["name"] == f"Upgrade obshell {NEWER[0]}-{NEWER[1]}"
    assert (dag["stage"], dag["max_stage"], dag["state"], dag["operator"]) == (
        1,
        9,
        "READY",
        "RUN",
    )
    assert (dag["maintenance_type"], dag["maintenance_key"]) == (2, "")
    assert (dag["additional_data"], dag["nodes"]) == (None, None)
    assert dag["start_time"] == dag["end_time"] == "0001-01-01T00:00:00Z"
    assert schemas.violations(envelope, schemas.UPGRADE_RESPONSE) == []


def test_a_second_upgrade_while_one_runs_is_refused(
    agent_factory: AgentFactory, profile: str
) -> None:
    wire = Wire(agent_factory(profile=profile, stage_seconds=LONG_STAGE))
    wire.upgrade(*NEWER)

    reply = wire.upgrade(*NEWER)

    name = f"Upgrade obshell {NEWER[0]}-{NEWER[1]}"
    envelope = assert_error(
        reply,
        500,
        "OB.Cluster.UnderMaintenanceWithDag",
        f"Create task '{name}' failed: OceanBase cluster is under maintenance by "
        f"DAG: {name}, please try again later",
    )
    assert envelope["data"] is None


def test_the_dag_runs_to_success_and_the_version_changes(wire: Wire) -> None:
    dag_id = wire.upgrade(*NEWER).data["id"]

    dag = wait_for_dag(wire, dag_id)

    assert (dag["state"], dag["stage"]) == ("SUCCEED", 9)
    assert [node["name"] for node in dag["nodes"]] == NODE_NAMES
    new_version = f"{NEWER[0]}-{NEWER[1].split('.')[0]}"
    assert wire.send("GET", "/api/v1/info").data["version"] == new_version
    assert wire.send("GET", "/api/v1/status").data["version"] == new_version
    assert wire.agent.version == new_version
    assert_refused(wire.upgrade(*NEWER), "Agent.Upgrade.ToLowerVersion")


def test_a_512_bit_agent_gets_a_1024_bit_key_when_upgraded_past_4_4_2(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(
        key_bits=512,
        agent_version="4.4.1.0-100000012025010101",
        packages=("4.4.2.0-100000012026040101.el7",),
    )
    wire = Wire(agent)

    old_key = wire.public_key
    dag_id = wire.upgrade("4.4.2.0", "100000012026040101.el7").data["id"]
    wait_for_dag(wire, dag_id)
    wire.use_key(old_key)
    stale = wire.call("GET", "/api/v1/task/dag/unfinish")
    wire.forget_key()
    fresh = wire.call("GET", "/api/v1/task/dag/unfinish")

    assert crypto.load_public_key(agent.public_key).key_size == 1024
    assert_error(stale, 401, "Security.Authentication.Header.DecryptFailed", code=1)
    assert fresh.status == 200


def test_the_upgrade_check_dag_never_conflicts(
    agent_factory: AgentFactory, profile: str
) -> None:
    wire = Wire(agent_factory(profile=profile, stage_seconds=LONG_STAGE))
    wire.upgrade(*NEWER)

    reply = wire.call("POST", "/api/v1/agent/upgrade/check", VALID)

    assert reply.status == 200
    assert reply.data["name"] == f"Upgrade check obshell {NEWER[0]}-{NEWER[1]}"
    assert reply.data["maintenance_type"] == 1


def test_the_upgrade_check_route_runs_the_same_checks(wire: Wire) -> None:
    reply = wire.call("POST", "/api/v1/agent/upgrade/check", {"version": "1"})

    assert_bind_failed(reply, RELEASE_REQUIRED)


# -- the DAG routes (§6) ---------------------------------------------------------


def test_dag_details(wire: Wire) -> None:
    dag_id = wire.upgrade(*NEWER).data["id"]

    full = wire.call("GET", f"/api/v1/task/dag/{dag_id}?show_details=true")
    bare = wire.call("GET", f"/api/v1/task/dag/{dag_id}?show_details=false")

    assert [node["name"] for node in full.data["nodes"]] == NODE_NAMES
    assert all(node["id"].startswith("1") for node in full.data["nodes"])
    assert isinstance(full.data["additional_data"], dict)
    assert bare.data["nodes"] is None
    assert schemas.violations(full.data, schemas.DAG_DETAIL) == []


def test_node_and_sub_task_routes(wire: Wire) -> None:
    dag_id = wire.upgrade(*NEWER).data["id"]
    node = wire.call("GET", f"/api/v1/task/dag/{dag_id}").data["nodes"][0]

    node_reply = wire.call("GET", f"/api/v1/task/node/{node['id']}")
    sub_reply = wire.call("GET", f"/api/v1/task/sub_task/{node['sub_tasks'][0]['id']}")

    assert node_reply.data["name"] == "Create upgrade dir"
    assert schemas.violations(node_reply.data, schemas.NODE_DETAIL) == []
    assert schemas.violations(sub_reply.data, schemas.TASK_DETAIL) == []


@pytest.mark.parametrize(
    ("target", "status", "err_code", "message"),
    [
        (
            "/api/v1/task/dag/1999999999",
            404,
            "Task.NotFound",
            "Task not found: record not found",
        ),
        ("/api/v1/task/dag/9abc", 400, "Task.GenericID.Invalid", None),
        ("/api/v1/task/dag/1", 400, "Task.GenericID.Invalid", "Invalid ID: 1"),
        ("/api/v1/task/node/1999", 404, "Task.NotFound", None),
        ("/api/v1/task/sub_task/1x", 400, "Task.GenericID.Invalid", None),
        (
            "/api/v1/task/dag/maintain/ob",
            404,
            "Task.NotFound",
            "Task not found: Cluster is not under maintenance",
        ),
    ],
)
def test_dag_route_errors(
    wire: Wire, target: str, status: int, err_code: str, message: str | None
) -> None:
    envelope = assert_error(wire.call("GET", target), status, err_code, message)
    assert "data" not in envelope


def test_unfinished_dags_are_listed(agent_factory: AgentFactory, profile: str) -> None:
    wire = Wire(agent_factory(profile=profile, stage_seconds=LONG_STAGE))
    before = wire.call("GET", "/api/v1/task/dag/unfinish")
    dag_id = wire.upgrade(*NEWER).data["id"]
    during = wire.call("GET", "/api/v1/task/dag/unfinish")
    last = wire.call("GET", "/api/v1/task/dag/maintain/ob")

    assert before.data == {"contents": None}
    assert [dag["id"] for dag in during.data["contents"]] == [dag_id]
    assert schemas.violations(during.data, schemas.DAG_LIST) == []
    assert last.data["id"] == dag_id


def _failed_dag(wire: Wire) -> str:
    dag_id = wire.call(
        "POST", UPGRADE, {"version": "4.6.0.0", "release": "1.el7"}
    ).data["id"]
    wait_for_dag(wire, dag_id)
    return str(dag_id)


@pytest.mark.parametrize(
    ("operator", "err_code", "message"),
    [
        ("foo", "Task.Dag.Operator.NotSupport", "Operator foo is not supported"),
        ("retry", "Task.Dag.Operator.RetryNotFailedDag", None),
        ("rollback", "Task.Dag.Operator.RollbackNotFailedDag", None),
        ("pass", "Task.Dag.Operator.PassNotFailedDag", None),
        (
            "cancel",
            "Task.Dag.Operator.CancelFinishedDag",
            "Failed to cancel DAG: DAG is finished",
        ),
    ],
)
def test_operator_errors_on_a_finished_dag(
    wire: Wire, operator: str, err_code: str, message: str | None
) -> None:
    dag_id = wire.upgrade(*NEWER).data["id"]
    wait_for_dag(wire, dag_id)

    reply = wire.call("POST", f"/api/v1/task/dag/{dag_id}", {"operator": operator})

    assert_error(reply, 400, err_code, message)


def test_a_failed_dag_is_retried_and_the_answer_has_no_data_key(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(profile="obshell-4.5"))
    dag_id = _failed_dag(wire)
    runs = _download_runs(wire, dag_id)

    passed = wire.call("POST", f"/api/v1/task/dag/{dag_id}", {"operator": "pass"})
    retried = wire.call("POST", f"/api/v1/task/dag/{dag_id}", {"operator": "Retry"})

    # Pass must cover every node from the failed one on; 7 and 8 cannot (§5.3).
    assert_error(
        passed,
        400,
        "Task.Dag.Operator.PassNotAllowed",
        "Failed to pass DAG: node Restart obshell cannot pass",
    )
    envelope = assert_envelope(retried)
    assert envelope["successful"] is True
    assert "data" not in envelope
    # The package is still missing: the retried node runs and fails again.
    wait_for_dag(wire, dag_id, ("FAILED",))
    assert _download_runs(wire, dag_id) > runs


def _download_runs(wire: Wire, dag_id: str) -> int:
    dag = wire.call("GET", f"/api/v1/task/dag/{dag_id}").data
    return int(dag["nodes"][1]["sub_tasks"][0]["execute_times"])


def test_cancelling_a_running_dag_answers_without_a_data_key(
    agent_factory: AgentFactory, profile: str
) -> None:
    wire = Wire(agent_factory(profile=profile, stage_seconds=LONG_STAGE))
    dag_id = wire.upgrade(*NEWER).data["id"]

    reply = wire.call("POST", f"/api/v1/task/dag/{dag_id}", {"operator": "cancel"})

    envelope = assert_envelope(reply)
    assert envelope["successful"] is True
    assert "data" not in envelope
    assert wire.call("GET", f"/api/v1/task/dag/{dag_id}").data["operator"] == "CANCEL"


def test_the_operator_is_required(wire: Wire) -> None:
    dag_id = wire.upgrade(*NEWER).data["id"]

    reply = wire.call("POST", f"/api/v1/task/dag/{dag_id}", {})

    assert_bind_failed(
        reply,
        "Key: 'DagOperator.Operator' Error:Field validation for 'Operator' failed "
        "on the 'required' tag",
    )


def test_the_dag_id_is_checked_before_the_body(wire: Wire) -> None:
    malformed = wire.call("POST", "/api/v1/task/dag/9x", {})
    unknown = wire.call("POST", "/api/v1/task/dag/1999", {})

    assert_error(malformed, 400, "Task.GenericID.Invalid")
    assert_error(unknown, 400, "Common.BindJsonFailed")


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/task/dag/{id}?show_details=maybe",
        "/api/v1/task/node/{node}?show_details=false",
    ],
)
def test_queries_the_agent_dereferences_as_nil(
    agent_factory: AgentFactory, profile: str, target: str
) -> None:
    agent = agent_factory(profile=profile)
    wire = Wire(agent)
    dag_id = wire.upgrade(*NEWER).data["id"]
    node_id = wire.call("GET", f"/api/v1/task/dag/{dag_id}").data["nodes"][0]["id"]

    reply = wire.call("GET", target.format(id=dag_id, node=node_id))

    if profile == "obshell-4.5":
        envelope = assert_error(reply, 500, "Common.Unexpected")
        assert envelope == agent.recovery_envelope
        assert reply.content_type == "application/json"
    elif "maybe" in target:
        assert_error(
            reply,
            400,
            "Request.Query.Param.Illegal",
            "Query parameter 'show_details' is illegal",
        )
    else:
        assert reply.data["sub_tasks"] is None


def test_a_bad_query_on_an_unknown_dag_is_a_404_first(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(profile="obshell-4.5"))

    reply = wire.call("GET", "/api/v1/task/dag/1999?show_details=maybe")

    assert_error(reply, 404, "Task.NotFound")


# -- the agent's helpers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "order"),
    [
        ("4.5.0.1-1", "4.5.0.0-9", 1),
        ("4.5.0.0-2", "4.5.0.0-1", 1),
        ("4.5.0.0-1", "4.5.0.0-1", 0),
        ("4.5.0.0.0-1", "4.5.0.0-1", 1),
        ("4.5-1", "4.5.0.0-1", -1),
        ("abc-1", "0-1", 0),
        ("99-1", "4.5.0.0-1", 1),
        ("4.10.0.0-0", "4.9.0.0-0", 1),
        ("4.5.0.0", "4.5.0.0-0", 0),
        ("4.5.0.0-x", "4.5.0.0-0", 0),
    ],
)
def test_compare_version_is_the_agents(left: str, right: str, order: int) -> None:
    assert compare_version(left, right) == order
    assert compare_version(right, left) == -order


def test_split_release_and_check_path() -> None:
    assert split_release("1.2.el7") == ("1", "el7")
    assert split_release("nodot") is None
    assert check_path_valid("/ok/path") is None
    assert check_path_valid("/../x") is not None
    assert check_path_valid("/x/..") is None
    assert check_path_valid("/x/..", strict=True) is not None


def test_plain_json_payload_encoding_is_irrelevant(wire: Wire) -> None:
    # Go decodes \u escapes and spacing like any JSON: the SDK's spacing works.
    body = json.dumps(VALID, indent=2, ensure_ascii=True).encode()

    assert post_raw(wire, body).status == 200
