"""The mock's DAG engine, driven without HTTP by a clock the tests advance by hand."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from obshell_contract.mock.dag import (
    ENGINE_FAULT_NAMES,
    OPERATORS,
    STATES,
    TICKS_PER_NODE,
    UPGRADE_CHECK_NODES,
    ZERO_TIME,
    DagEngine,
    NodeSpec,
    go_time,
    parse_generic_id,
)
from obshell_contract.mock.errors import AgentError
from obshell_contract.mock.faults import ENGINE_FAULTS

STAGE = 1.0
TICK = STAGE / TICKS_PER_NODE
AGENT = ("10.0.0.1", 2886)
AGENTS3 = (AGENT, ("10.0.0.2", 2886), ("10.0.0.3", 2887))
CST = timezone(timedelta(hours=8))
WALL0 = datetime(2026, 5, 8, 17, 6, 47, 123456, tzinfo=CST)
VERSION, RELEASE = "4.5.1.0", "100000012026060101.el7"
NAME = f"Upgrade obshell {VERSION}-{RELEASE}"
EPOCH_CST = "1970-01-01T08:00:00+08:00"
MISSING = "ERROR: [Common.Unexpected]: Unexpected error: record not found"

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
NODE_KEYS = [
    "id",
    "node_id",
    "name",
    "state",
    "operator",
    "start_time",
    "end_time",
    "additional_data",
    "sub_tasks",
]
SUB_TASK_KEYS = [
    "id",
    "task_id",
    "name",
    "state",
    "operator",
    "start_time",
    "end_time",
    "additional_data",
    "execute_times",
    "execute_agent",
    "task_logs",
]
UPGRADE_NAMES = [
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
RFC3339_LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+08:00$")


class FakeClock:
    """A monotonic clock that moves only when told to; safe across threads."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class Harness:
    """An engine, its clock and what its callback saw."""

    clock: FakeClock
    engine: DagEngine
    calls: list[tuple[str, str, float]] = field(default_factory=list)

    def upgrade(self, version: str = VERSION, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("package_present", True)
        return self.engine.create_upgrade_dag(
            version, RELEASE, upgrade_dir="/data/upgrade", **kwargs
        )

    def at(self, seconds: float, gid: str, **kwargs: Any) -> dict[str, Any]:
        """Advance the clock by ``seconds`` and read the DAG."""
        self.clock.advance(seconds)
        return self.engine.dag_dto(gid, **kwargs)

    def finish(self, gid: str, step: float = TICK / 2, limit: float = 60.0) -> Polls:
        """Poll every ``step`` until the DAG ends; every poll is kept."""
        polls = Polls()
        while polls.elapsed < limit:
            dto = self.engine.dag_dto(gid)
            polls.add(self.clock(), dto)
            if dto["state"] in ("SUCCEED", "FAILED"):
                return polls
            self.clock.advance(step)
            polls.elapsed += step
        return polls


@dataclass
class Polls:
    """Every poll of one DAG, with the clock reading it was made at."""

    elapsed: float = 0.0
    seen: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def add(self, at: float, dto: dict[str, Any]) -> None:
        self.seen.append((at, dto))

    @property
    def last(self) -> dict[str, Any]:
        return self.seen[-1][1]

    @property
    def stages(self) -> list[int]:
        return [dto["stage"] for _, dto in self.seen]


@pytest.fixture
def make() -> Callable[..., Harness]:
    def build(**kwargs: Any) -> Harness:
        clock = FakeClock()
        calls: list[tuple[str, str, float]] = []
        kwargs.setdefault("agents", (AGENT,))
        kwargs.setdefault("stage_seconds", STAGE)
        kwargs.setdefault(
            "on_upgrade_succeeded", lambda v, r: calls.append((v, r, clock()))
        )
        engine = DagEngine(clock=clock, wall_clock=lambda: WALL0, **kwargs)
        return Harness(clock, engine, calls)

    return build


@pytest.fixture
def h(make: Callable[..., Harness]) -> Harness:
    return make()


def assert_agent_error(
    error: AgentError, err_code: str, status: int, message: str
) -> None:
    __tracebackhide__ = True
    assert (error.err_code, error.status, error.message) == (err_code, status, message)


def all_states(dto: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(what, state) for the DAG, every node and every sub-task of a detailed DTO."""
    yield "dag", dto["state"]
    for node in dto["nodes"] or ():
        yield node["name"], node["state"]
        for sub in node["sub_tasks"] or ():
            yield f"{node['name']} sub-task", sub["state"]


def fail_at(h: Harness, stage: int) -> str:
    """Create an upgrade that fails at ``stage`` and run it to FAILED."""
    if stage == 2:
        gid = h.upgrade(package_present=False)["id"]
    else:
        gid = h.upgrade(fail_at_stage=stage)["id"]
    final = h.finish(gid).last
    assert (final["state"], final["stage"]) == ("FAILED", stage)
    return str(gid)


# -- shape -------------------------------------------------------------------------


def test_the_immediate_dto_is_the_agents_ready_dag(h: Harness) -> None:
    dto = h.upgrade()

    assert list(dto) == DAG_KEYS
    assert dto == {
        "id": "11",
        "dag_id": 1,
        "name": NAME,
        "stage": 1,
        "max_stage": 9,
        "maintenance_type": 2,
        "maintenance_key": "",
        "state": "READY",
        "operator": "RUN",
        "start_time": "0001-01-01T00:00:00Z",
        "end_time": "0001-01-01T00:00:00Z",
        "additional_data": None,
        "nodes": None,
    }


@pytest.mark.parametrize("agents", [(AGENT,), AGENTS3], ids=["1-agent", "3-agents"])
def test_the_upgrade_dag_has_nine_named_nodes_with_a_sub_task_per_agent(
    make: Callable[..., Harness], agents: tuple[tuple[str, int], ...]
) -> None:
    h = make(agents=agents)

    dto = h.engine.dag_dto(h.upgrade()["id"])

    assert [node["name"] for node in dto["nodes"]] == UPGRADE_NAMES
    for node in dto["nodes"]:
        assert list(node) == NODE_KEYS
        assert [list(sub) for sub in node["sub_tasks"]] == [SUB_TASK_KEYS] * len(agents)
        assert [sub["name"] for sub in node["sub_tasks"]] == [node["name"]] * len(
            agents
        )
        assert [
            (sub["execute_agent"]["ip"], sub["execute_agent"]["port"])
            for sub in node["sub_tasks"]
        ] == list(agents)


def test_generic_ids_are_one_followed_by_the_instance_id(
    make: Callable[..., Harness],
) -> None:
    h = make(agents=AGENTS3)
    h.upgrade(package_present=False)
    h.finish("11")
    h.engine.operate("11", "rollback")
    h.finish("11")

    dto = h.engine.dag_dto(h.upgrade(version="4.5.2.0")["id"])

    assert (dto["id"], dto["dag_id"]) == ("12", 2)
    for node in dto["nodes"]:
        assert node["id"] == f"1{node['node_id']}"
        assert node["node_id"] > 9  # ids of the second DAG's nodes: own id space
        for sub in node["sub_tasks"]:
            assert sub["id"] == f"1{sub['task_id']}"


def test_node_and_sub_task_reads_match_the_dag_view(
    make: Callable[..., Harness],
) -> None:
    h = make(agents=AGENTS3)
    gid = h.upgrade()["id"]
    node = h.at(2.5, gid)["nodes"][2]

    alone = h.engine.node_dto(node["id"])
    sub = h.engine.sub_task_dto(node["sub_tasks"][1]["id"])

    assert alone["sub_tasks"] == node["sub_tasks"]
    assert {k: v for k, v in alone.items() if k != "additional_data"} == {
        k: v for k, v in node.items() if k != "additional_data"
    }
    assert sub == node["sub_tasks"][1]


def test_check_dag_has_five_nodes_and_no_maintenance(h: Harness) -> None:
    dto = h.engine.create_upgrade_check_dag(VERSION, RELEASE, upgrade_dir="")

    details = h.engine.dag_dto(dto["id"])

    assert dto["name"] == f"Upgrade check obshell {VERSION}-{RELEASE}"
    assert (dto["max_stage"], dto["maintenance_type"]) == (5, 1)
    assert [n["name"] for n in details["nodes"]] == [
        s.name for s in UPGRADE_CHECK_NODES
    ]
    assert len(UPGRADE_CHECK_NODES) == 5
    assert not h.engine.under_maintenance


# -- times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (ZERO_TIME, "0001-01-01T00:00:00Z"),
        (WALL0, "2026-05-08T17:06:47.123456+08:00"),
        (WALL0.replace(microsecond=120000), "2026-05-08T17:06:47.12+08:00"),
        (WALL0.replace(microsecond=0), "2026-05-08T17:06:47+08:00"),
        (WALL0.astimezone(timezone.utc), "2026-05-08T09:06:47.123456Z"),
        (
            WALL0.astimezone(timezone(-timedelta(hours=3, minutes=30))),
            "2026-05-08T05:36:47.123456-03:30",
        ),
    ],
)
def test_go_time_renders_as_go_does(moment: datetime, text: str) -> None:
    assert go_time(moment) == text


def test_times_are_zero_until_set_then_local_rfc3339(h: Harness) -> None:
    gid = h.upgrade()["id"]
    before = h.engine.dag_dto(gid)
    running = h.at(TICK, gid)
    done = h.finish(gid).last

    assert {before["start_time"], before["nodes"][0]["start_time"]} == {
        "0001-01-01T00:00:00Z"
    }
    assert running["start_time"] == go_time(WALL0 + timedelta(seconds=TICK))
    assert running["end_time"] == "0001-01-01T00:00:00Z"
    assert done["end_time"] == go_time(WALL0 + timedelta(seconds=9 * STAGE))
    for node in done["nodes"]:
        assert RFC3339_LOCAL.match(node["start_time"]), node
        assert node["start_time"] <= node["end_time"]


def test_a_naive_wall_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        DagEngine(
            agents=(AGENT,), stage_seconds=1, wall_clock=lambda: datetime(2026, 1, 1)
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agents": (), "stage_seconds": 1}, "at least one"),
        ({"agents": (AGENT,), "stage_seconds": -0.1}, "-0.1"),
    ],
)
def test_bad_engine_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DagEngine(**kwargs)


# -- progress ----------------------------------------------------------------------


def test_a_sub_task_goes_pending_ready_running_succeed(h: Harness) -> None:
    gid = h.upgrade()["id"]

    steps = [h.at(0, gid)] + [h.at(TICK, gid) for _ in range(4)]

    node = [dto["nodes"][0] for dto in steps]
    sub = [n["sub_tasks"][0] for n in node]
    assert [d["state"] for d in steps] == ["READY"] + ["RUNNING"] * 4
    assert [n["state"] for n in node] == [
        "PENDING",
        "RUNNING",
        "RUNNING",
        "RUNNING",
        "SUCCEED",
    ]
    assert [s["state"] for s in sub] == [
        "PENDING",
        "READY",
        "RUNNING",
        "RUNNING",
        "SUCCEED",
    ]
    assert [s["execute_times"] for s in sub] == [0, 1, 1, 1, 1]
    assert [s["task_logs"] is None for s in sub] == [True, True, False, False, False]
    assert sub[4]["task_logs"] == [
        "Start: create upgrade dir",
        "Finish: create upgrade dir",
    ]
    assert [d["stage"] for d in steps] == [1, 1, 1, 1, 2]
    # The agent's StartNode writes the start time into both columns.
    assert node[1]["start_time"] == node[1]["end_time"] != "0001-01-01T00:00:00Z"


def test_progress_is_monotonic_legal_and_takes_nine_stages(
    make: Callable[..., Harness],
) -> None:
    h = make(agents=AGENTS3)
    gid = h.upgrade()["id"]

    polls = h.finish(gid)

    assert polls.stages == sorted(polls.stages)
    assert set(polls.stages) == set(range(1, 10))
    for _, dto in polls.seen:
        for what, state in all_states(dto):
            assert state in STATES, (what, state)
        for node in dto["nodes"]:
            for sub in node["sub_tasks"]:
                hidden = sub["state"] in ("PENDING", "READY")
                assert (sub["task_logs"] is None) == hidden, sub
            if node["state"] == "PENDING":
                assert {s["state"] for s in node["sub_tasks"]} == {"PENDING"}
    final = polls.last
    assert (final["state"], final["stage"], final["operator"]) == ("SUCCEED", 9, "RUN")
    assert polls.seen[-1][0] == pytest.approx(1000.0 + 9 * STAGE)
    assert {s for _, s in all_states(final)} == {"SUCCEED"}
    assert {sub["execute_times"] for n in final["nodes"] for sub in n["sub_tasks"]} == {
        1
    }


def test_zero_stage_seconds_finishes_at_once(make: Callable[..., Harness]) -> None:
    h = make(stage_seconds=0)

    gid = h.upgrade()["id"]

    assert h.engine.dag_dto(gid)["state"] == "SUCCEED"
    assert h.calls == [(VERSION, RELEASE, 1000.0)]


# -- show_details and additional_data ----------------------------------------------


def test_show_details_false_leaves_nodes_and_additional_data_null(h: Harness) -> None:
    gid = h.upgrade()["id"]
    h.clock.advance(3)

    brief = h.engine.dag_dto(gid, show_details=False)
    full = h.engine.dag_dto(gid, show_details=True)

    assert (brief["nodes"], brief["additional_data"]) == (None, None)
    assert full["additional_data"] == {}
    assert {
        k: v for k, v in brief.items() if k not in ("nodes", "additional_data")
    } == {k: v for k, v in full.items() if k not in ("nodes", "additional_data")}
    for node in full["nodes"]:
        assert node["additional_data"] is None
        assert {sub["additional_data"] is None for sub in node["sub_tasks"]} == {True}


@pytest.mark.parametrize(
    ("agents", "expected"), [((AGENT,), None), (AGENTS3, {})], ids=["1", "3"]
)
def test_a_node_alone_shows_the_merge_of_its_sub_tasks(
    make: Callable[..., Harness], agents: Any, expected: Any
) -> None:
    h = make(agents=agents)
    node_id = h.engine.dag_dto(h.upgrade()["id"])["nodes"][0]["id"]

    alone = h.engine.node_dto(node_id)
    bare = h.engine.node_dto(node_id, show_details=False)

    assert alone["additional_data"] == expected
    assert (bare["sub_tasks"], bare["additional_data"]) == (None, None)
    assert h.engine.sub_task_dto(alone["sub_tasks"][0]["id"])["additional_data"] is None


# -- a missing package ---------------------------------------------------------------


def test_a_missing_package_fails_at_stage_two_with_the_error_line(h: Harness) -> None:
    gid = h.upgrade(package_present=False)["id"]

    polls = h.finish(gid)

    final = polls.last
    assert (final["state"], final["stage"], final["operator"]) == ("FAILED", 2, "RUN")
    assert polls.seen[-1][0] == pytest.approx(1000.0 + 2 * STAGE)
    assert final["end_time"] == go_time(WALL0 + timedelta(seconds=2 * STAGE))
    failed = final["nodes"][1]
    assert (failed["name"], failed["state"]) == (
        "Download all required packages",
        "FAILED",
    )
    assert failed["sub_tasks"][0]["state"] == "FAILED"
    assert failed["sub_tasks"][0]["task_logs"][-1] == MISSING
    for node in final["nodes"][2:]:
        assert (node["state"], node["start_time"]) == (
            "PENDING",
            "0001-01-01T00:00:00Z",
        )
        assert node["sub_tasks"][0]["task_logs"] is None


def test_the_check_dag_fails_the_same_way_without_locking(h: Harness) -> None:
    dto = h.engine.create_upgrade_check_dag(
        VERSION, RELEASE, upgrade_dir="", package_present=False
    )

    final = h.finish(dto["id"]).last

    assert (final["state"], final["stage"]) == ("FAILED", 2)
    assert final["nodes"][1]["sub_tasks"][0]["task_logs"][-1] == MISSING
    assert not h.engine.under_maintenance
    assert h.engine.unfinished_dtos() == []


# -- the maintenance lock ------------------------------------------------------------


def test_a_second_upgrade_while_one_runs_is_refused(h: Harness) -> None:
    gid = h.upgrade()["id"]
    h.clock.advance(3.3)

    with pytest.raises(AgentError) as caught:
        h.upgrade(version="4.5.2.0")

    assert_agent_error(
        caught.value,
        "OB.Cluster.UnderMaintenanceWithDag",
        500,
        f"Create task 'Upgrade obshell 4.5.2.0-{RELEASE}' failed: OceanBase cluster "
        f"is under maintenance by DAG: {NAME}, please try again later",
    )
    assert caught.value.data_null
    assert caught.value.code is None
    assert [d["id"] for d in h.engine.snapshot()] == [gid]


def test_a_failed_upgrade_keeps_the_cluster_under_maintenance(h: Harness) -> None:
    gid = fail_at(h, 2)
    h.clock.advance(100)

    with pytest.raises(AgentError) as caught:
        h.upgrade(version="4.5.2.0")

    assert caught.value.err_code == "OB.Cluster.UnderMaintenanceWithDag"
    assert h.engine.under_maintenance
    assert [d["id"] for d in h.engine.unfinished_dtos()] == [gid]
    assert h.engine.last_maintenance_dto()["id"] == gid


def _release_by_retry(h: Harness) -> str:
    gid = fail_at(h, 2)
    h.engine.resolve_failures(gid)
    h.engine.operate(gid, "retry")
    return gid


def _release_by_rollback(h: Harness) -> str:
    gid = fail_at(h, 2)
    h.engine.operate(gid, "rollback")
    return gid


def _release_by_pass(h: Harness) -> str:
    gid = fail_at(h, 9)
    h.engine.operate(gid, "pass")
    return gid


@pytest.mark.parametrize(
    ("release", "operator"),
    [
        (_release_by_retry, "RUN"),
        (_release_by_rollback, "ROLLBACK"),
        (_release_by_pass, "PASS"),
    ],
    ids=["retry-to-success", "rollback", "pass"],
)
def test_the_lock_is_released_only_when_the_failed_dag_is_dealt_with(
    h: Harness, release: Callable[[Harness], str], operator: str
) -> None:
    gid = release(h)

    final = h.finish(gid).last
    second = h.upgrade(version="4.5.2.0")

    assert (final["state"], final["operator"]) == ("SUCCEED", operator)
    assert second["state"] == "READY"
    assert [d["id"] for d in h.engine.unfinished_dtos(show_details=False)] == [
        second["id"]
    ]


def test_a_retry_that_fails_again_keeps_the_lock(h: Harness) -> None:
    gid = fail_at(h, 2)
    h.engine.operate(gid, "retry")

    final = h.finish(gid).last

    assert (final["state"], final["stage"]) == ("FAILED", 2)
    assert h.engine.under_maintenance
    sub = final["nodes"][1]["sub_tasks"][0]
    # The failed sub-task is rolled back, then run again: two more executions.
    assert sub["execute_times"] == 3
    assert sub["task_logs"][-1] == MISSING


def test_success_releases_the_lock_and_stays_the_last_maintenance_dag(
    h: Harness,
) -> None:
    gid = h.upgrade()["id"]
    h.finish(gid)

    last = h.engine.last_maintenance_dto(show_details=False)

    assert not h.engine.under_maintenance
    assert h.engine.unfinished_dtos() == []
    assert (last["id"], last["state"], last["nodes"]) == (gid, "SUCCEED", None)


def test_no_maintenance_dag_yet_is_task_not_found(h: Harness) -> None:
    h.engine.create_upgrade_check_dag(VERSION, RELEASE, upgrade_dir="")

    with pytest.raises(AgentError) as caught:
        h.engine.last_maintenance_dto()

    assert_agent_error(
        caught.value,
        "Task.NotFound",
        404,
        "Task not found: Cluster is not under maintenance",
    )


def test_the_check_dag_never_conflicts(h: Harness) -> None:
    gid = h.upgrade()["id"]
    h.clock.advance(2)

    check = h.engine.create_upgrade_check_dag(VERSION, RELEASE, upgrade_dir="")
    h.clock.advance(20)

    assert h.engine.dag_dto(check["id"])["state"] == "SUCCEED"
    assert h.engine.dag_dto(gid)["state"] == "SUCCEED"
    assert h.engine.last_maintenance_dto()["id"] == gid
    assert [c[:2] for c in h.calls] == [(VERSION, RELEASE)]


# -- operators and their errors ------------------------------------------------------


def test_an_unknown_operator_is_not_supported(h: Harness) -> None:
    gid = fail_at(h, 2)

    with pytest.raises(AgentError) as caught:
        h.engine.operate(gid, "foo")

    assert_agent_error(
        caught.value,
        "Task.Dag.Operator.NotSupport",
        400,
        "Operator foo is not supported",
    )


@pytest.mark.parametrize("spelling", ["retry", "RETRY", "ReTrY"])
def test_operators_are_case_insensitive(h: Harness, spelling: str) -> None:
    gid = fail_at(h, 2)

    h.engine.operate(gid, spelling)

    assert h.engine.dag_dto(gid, show_details=False)["state"] == "READY"


NOT_FAILED = {
    "retry": (
        "Task.Dag.Operator.RetryNotFailedDag",
        "Failed to set DAG retry: DAG state is not failed",
    ),
    "rollback": (
        "Task.Dag.Operator.RollbackNotFailedDag",
        "Failed to set DAG rollback: DAG state is not failed",
    ),
    "pass": (
        "Task.Dag.Operator.PassNotFailedDag",
        "Failed to pass DAG: DAG is not failed",
    ),
}


@pytest.mark.parametrize("operator", sorted(NOT_FAILED))
@pytest.mark.parametrize(
    "elapsed", [0.0, 3.6, 20.0], ids=["READY", "RUNNING", "SUCCEED"]
)
def test_retry_rollback_and_pass_need_a_failed_dag(
    h: Harness, operator: str, elapsed: float
) -> None:
    gid = h.upgrade()["id"]
    h.clock.advance(elapsed)

    with pytest.raises(AgentError) as caught:
        h.engine.operate(gid, operator)

    assert_agent_error(
        caught.value, *NOT_FAILED[operator][:1], 400, NOT_FAILED[operator][1]
    )


@pytest.mark.parametrize("package_present", [True, False], ids=["SUCCEED", "FAILED"])
def test_cancel_needs_an_unfinished_dag(h: Harness, package_present: bool) -> None:
    gid = h.upgrade(package_present=package_present)["id"]
    h.finish(gid)

    with pytest.raises(AgentError) as caught:
        h.engine.operate(gid, "cancel")

    assert_agent_error(
        caught.value,
        "Task.Dag.Operator.CancelFinishedDag",
        400,
        "Failed to cancel DAG: DAG is finished",
    )


@pytest.mark.parametrize("stage", range(1, 10))
def test_rollback_is_refused_once_the_restart_node_has_been_reached(
    h: Harness, stage: int
) -> None:
    gid = fail_at(h, stage)

    if stage < 7:
        h.engine.operate(gid, "rollback")
        assert h.engine.dag_dto(gid)["operator"] == "ROLLBACK"
        return
    with pytest.raises(AgentError) as caught:
        h.engine.operate(gid, "rollback")

    assert_agent_error(
        caught.value,
        "Task.Dag.Operator.RollbackNotAllowed",
        400,
        "Failed to set DAG rollback: node Restart obshell cannot rollback",
    )


@pytest.mark.parametrize("stage", range(1, 10))
def test_pass_needs_every_remaining_node_to_allow_it(h: Harness, stage: int) -> None:
    # Every node from the failed one to the end must allow passing (the agent's
    # getNodesCanPass), so "Restart obshell" blocks a pass from any earlier stage.
    gid = fail_at(h, stage)

    if stage == 9:
        h.engine.operate(gid, "pass")
        assert h.engine.dag_dto(gid)["state"] == "SUCCEED"
        return
    with pytest.raises(AgentError) as caught:
        h.engine.operate(gid, "pass")

    blocker = "Upgrade post table maintain" if stage == 8 else "Restart obshell"
    assert_agent_error(
        caught.value,
        "Task.Dag.Operator.PassNotAllowed",
        400,
        f"Failed to pass DAG: node {blocker} cannot pass",
    )


def test_retry_and_cancel_not_allowed_come_from_the_node(h: Harness) -> None:
    stuck = NodeSpec("Stuck", can_retry=False, can_cancel=False)
    gid = h.engine.create_dag("Custom", [stuck], failing_stages=[1])["id"]

    with pytest.raises(AgentError) as cancel:
        h.engine.operate(gid, "cancel")
    h.finish(gid)
    with pytest.raises(AgentError) as retry:
        h.engine.operate(gid, "retry")

    assert_agent_error(
        cancel.value,
        "Task.Dag.Operator.CancelNotAllowed",
        400,
        "Failed to cancel DAG: node Stuck cannot cancel",
    )
    assert_agent_error(
        retry.value,
        "Task.Dag.Operator.RetryNotAllowed",
        400,
        "Failed to set DAG retry: node Stuck cannot retry",
    )


def test_cancel_mid_run_ends_failed_cancel(h: Harness) -> None:
    gid = h.upgrade()["id"]
    h.clock.advance(2.6)  # stage 3, its sub-task running

    h.engine.operate(gid, "CANCEL")
    right_after = h.engine.dag_dto(gid)
    final = h.finish(gid).last

    assert (right_after["state"], right_after["operator"]) == ("READY", "CANCEL")
    assert right_after["start_time"] == right_after["end_time"] == EPOCH_CST
    node = right_after["nodes"][2]
    assert (node["state"], node["operator"], node["start_time"]) == (
        "PENDING",
        "CANCEL",
        EPOCH_CST,
    )
    assert (final["state"], final["operator"], final["stage"]) == (
        "FAILED",
        "CANCEL",
        3,
    )
    node = final["nodes"][2]
    assert (node["state"], node["operator"]) == ("FAILED", "CANCEL")
    assert node["sub_tasks"][0]["state"] == "FAILED"
    assert node["sub_tasks"][0]["task_logs"][-1] == "sub task cancelled"
    assert {n["state"] for n in final["nodes"][3:]} == {"PENDING"}
    assert h.engine.under_maintenance  # a cancelled upgrade still holds the lock


def test_cancel_before_the_first_tick_fails_node_one(h: Harness) -> None:
    gid = h.upgrade()["id"]

    h.engine.operate(gid, "cancel")
    final = h.finish(gid).last

    assert (final["state"], final["operator"], final["stage"]) == (
        "FAILED",
        "CANCEL",
        1,
    )
    node = final["nodes"][0]
    assert (node["state"], node["operator"]) == ("FAILED", "CANCEL")
    assert (node["sub_tasks"][0]["state"], node["sub_tasks"][0]["task_logs"]) == (
        "PENDING",
        None,
    )


def test_rollback_walks_back_to_stage_one_and_ends_succeed_rollback(h: Harness) -> None:
    gid = fail_at(h, 2)

    h.engine.operate(gid, "rollback")
    right_after = h.engine.dag_dto(gid)
    polls = h.finish(gid)

    assert (right_after["state"], right_after["operator"]) == ("READY", "ROLLBACK")
    assert right_after["start_time"] == EPOCH_CST
    assert [(n["state"], n["operator"]) for n in right_after["nodes"][:3]] == [
        ("PENDING", "ROLLBACK"),
        ("PENDING", "ROLLBACK"),
        ("PENDING", "RUN"),
    ]
    assert polls.stages == sorted(polls.stages, reverse=True)
    assert set(polls.stages) == {1, 2}
    final = polls.last
    assert (final["state"], final["operator"], final["stage"]) == (
        "SUCCEED",
        "ROLLBACK",
        1,
    )
    for node in final["nodes"][:2]:
        assert (node["state"], node["operator"]) == ("SUCCEED", "ROLLBACK")
        assert (
            node["sub_tasks"][0]["operator"],
            node["sub_tasks"][0]["execute_times"],
        ) == (
            "ROLLBACK",
            2,
        )
    assert {(n["state"], n["operator"]) for n in final["nodes"][2:]} == {
        ("PENDING", "RUN")
    }
    assert h.calls == []
    assert not h.engine.under_maintenance


def test_pass_gives_succeed_pass_at_once(h: Harness) -> None:
    gid = fail_at(h, 9)
    failed = h.engine.dag_dto(gid)
    h.clock.advance(5)

    h.engine.operate(gid, "pass")
    passed = h.engine.dag_dto(gid)

    assert (passed["state"], passed["operator"], passed["stage"]) == (
        "SUCCEED",
        "PASS",
        9,
    )
    assert passed["start_time"] == failed["start_time"]
    assert passed["end_time"] == go_time(WALL0 + timedelta(seconds=9 * STAGE + 5))
    node = passed["nodes"][8]
    assert (node["state"], node["operator"], node["end_time"]) == (
        "SUCCEED",
        "PASS",
        passed["end_time"],
    )
    assert (node["sub_tasks"][0]["state"], node["sub_tasks"][0]["operator"]) == (
        "SUCCEED",
        "PASS",
    )
    assert {(n["state"], n["operator"]) for n in passed["nodes"][:8]} == {
        ("SUCCEED", "RUN")
    }
    assert [c[:2] for c in h.calls] == [(VERSION, RELEASE)]
    assert not h.engine.under_maintenance


def test_retry_resets_the_dag_and_the_failed_node_then_runs_on(h: Harness) -> None:
    gid = fail_at(h, 2)
    h.engine.resolve_failures(gid)

    h.engine.operate(gid, "retry")
    right_after = h.engine.dag_dto(gid)
    polls = h.finish(gid)

    assert (right_after["state"], right_after["operator"], right_after["stage"]) == (
        "READY",
        "RUN",
        2,
    )
    assert right_after["start_time"] == right_after["end_time"] == EPOCH_CST
    node = right_after["nodes"][1]
    assert (node["state"], node["operator"], node["end_time"]) == (
        "PENDING",
        "RETRY",
        EPOCH_CST,
    )
    assert polls.stages == sorted(polls.stages)
    final = polls.last
    assert (final["state"], final["operator"], final["stage"]) == ("SUCCEED", "RUN", 9)
    assert (final["nodes"][1]["state"], final["nodes"][1]["operator"]) == (
        "SUCCEED",
        "RETRY",
    )
    assert [c[:2] for c in h.calls] == [(VERSION, RELEASE)]


# -- generic ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generic_id", "message"),
    [
        ("", "Invalid ID: "),
        ("1", "Invalid ID: 1"),
        ("9abc", "Invalid ID: 9abc: invalid generic id"),
        ("1abc", 'Invalid ID: 1abc: strconv.ParseInt: parsing "abc": invalid syntax'),
        ("1 5", 'Invalid ID: 1 5: strconv.ParseInt: parsing " 5": invalid syntax'),
        ("1_0", 'Invalid ID: 1_0: strconv.ParseInt: parsing "_0": invalid syntax'),
        (
            "1\u0663",
            'Invalid ID: 1\u0663: strconv.ParseInt: parsing "\u0663": invalid syntax',
        ),
        (
            "19223372036854775808",
            'Invalid ID: 19223372036854775808: strconv.ParseInt: parsing "9223372036854775808": value out of range',
        ),
        ("2123", "Invalid ID: 2123"),
    ],
)
def test_malformed_ids_are_generic_id_invalid(generic_id: str, message: str) -> None:
    with pytest.raises(AgentError) as caught:
        parse_generic_id(generic_id)

    assert_agent_error(caught.value, "Task.GenericID.Invalid", 400, message)


def test_ids_parse_like_go(h: Harness) -> None:
    assert parse_generic_id("142") == 42
    assert parse_generic_id("1+7") == 7
    assert parse_generic_id("19223372036854775807") == 2**63 - 1

    with pytest.raises(AgentError) as local:
        parse_generic_id("2" + "0" * 20)

    assert local.value.err_code == "Task.NotFound"


@pytest.mark.parametrize(
    ("generic_id", "reason"),
    [
        ("1999999999", "record not found"),
        ("1-1", "record not found"),
        ("101", "dag id not match"),
        ("1+1", "dag id not match"),
    ],
)
def test_unknown_or_non_round_trip_dag_ids_are_not_found(
    h: Harness, generic_id: str, reason: str
) -> None:
    h.upgrade()

    for call in (
        lambda: h.engine.dag_dto(generic_id),
        lambda: h.engine.operate(generic_id, "foo"),
    ):
        with pytest.raises(AgentError) as caught:
            call()
        assert_agent_error(
            caught.value, "Task.NotFound", 404, f"Task not found: {reason}"
        )


def test_node_and_sub_task_ids_are_looked_up_without_round_trip(h: Harness) -> None:
    h.upgrade()

    assert h.engine.node_dto("101")["node_id"] == 1
    with pytest.raises(AgentError) as node:
        h.engine.node_dto("1999")
    with pytest.raises(AgentError) as sub:
        h.engine.sub_task_dto("1999")

    for caught in (node, sub):
        assert_agent_error(
            caught.value, "Task.NotFound", 404, "Task not found: record not found"
        )


def test_id_errors_come_before_operator_errors(h: Harness) -> None:
    with pytest.raises(AgentError) as caught:
        h.engine.operate("9x", "foo")

    assert caught.value.err_code == "Task.GenericID.Invalid"


# -- the version callback ------------------------------------------------------------


def test_the_callback_fires_once_when_the_restart_node_succeeds(h: Harness) -> None:
    gid = h.upgrade()["id"]

    polls = h.finish(gid)
    h.clock.advance(50)
    h.engine.snapshot()

    assert h.calls == [(VERSION, RELEASE, pytest.approx(1000.0 + 7 * STAGE))]
    succeeded = next(at for at, dto in polls.seen if dto["state"] == "SUCCEED")
    assert h.calls[0][2] < succeeded


def test_no_reader_sees_the_dag_past_the_restart_before_the_callback_returns(
    make: Callable[..., Harness],
) -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[dict[str, Any]] = []

    def blocking(version: str, release_: str) -> None:
        entered.set()
        release.wait(5)

    h = make(stage_seconds=0.0, on_upgrade_succeeded=blocking)

    gid = h.upgrade()["id"]
    trigger = threading.Thread(target=lambda: seen.append(h.engine.dag_dto(gid)))
    trigger.start()
    assert entered.wait(5)
    during = h.engine.dag_dto(gid)
    release.set()
    trigger.join(5)

    assert (during["state"], during["stage"]) == ("RUNNING", 8)
    assert seen[0]["state"] == "SUCCEED"


def test_a_failing_callback_does_not_freeze_the_dag(
    make: Callable[..., Harness],
) -> None:
    def boom(version: str, release: str) -> None:
        raise RuntimeError("callback failed")

    h = make(stage_seconds=0.0, on_upgrade_succeeded=boom)
    gid = h.upgrade()["id"]

    with pytest.raises(RuntimeError, match="callback failed"):
        h.engine.dag_dto(gid)
    assert h.engine.dag_dto(gid)["state"] == "SUCCEED"


def test_a_failing_callback_still_lets_the_other_due_dags_report(
    make: Callable[..., Harness],
) -> None:
    seen: list[str] = []

    def first_fails(version: str, release: str) -> None:
        seen.append(version)
        if version == VERSION:
            raise RuntimeError("callback failed")

    h = make(faults=frozenset({"concurrent-upgrade"}), on_upgrade_succeeded=first_fails)
    first, second = h.upgrade()["id"], h.upgrade(version="4.5.2.0")["id"]
    h.clock.advance(10 * STAGE)

    with pytest.raises(RuntimeError, match="callback failed"):
        h.engine.snapshot()

    assert seen == [VERSION, "4.5.2.0"]
    assert [h.engine.dag_dto(gid)["state"] for gid in (first, second)] == [
        "SUCCEED",
        "SUCCEED",
    ]


# -- threads -------------------------------------------------------------------------


def test_many_threads_read_and_operate_while_time_advances(
    make: Callable[..., Harness],
) -> None:
    h = make(agents=AGENTS3, stage_seconds=0.2)
    stop = threading.Event()
    problems: list[str] = []
    h.upgrade(package_present=False)

    threads = [threading.Thread(target=_ticker, args=(h, stop))]
    threads += [
        threading.Thread(target=_reader, args=(h, stop, problems)) for _ in range(6)
    ]
    threads += [
        threading.Thread(target=_operator, args=(h, stop, problems, n))
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    stop.wait(1.0)
    stop.set()
    for thread in threads:
        thread.join(5)
    h.clock.advance(1000)

    assert problems == []
    assert not any(thread.is_alive() for thread in threads)
    final = h.engine.snapshot()
    assert len(final) > 3, len(final)
    for dto in final:
        assert {s for _, s in all_states(dto)} <= set(STATES)
        assert dto["state"] in ("SUCCEED", "FAILED")
        assert dto["operator"] in OPERATORS
    versions = [c[0] for c in h.calls]
    assert len(versions) == len(set(versions))


def _ticker(h: Harness, stop: threading.Event) -> None:
    while not stop.wait(0.0005):
        h.clock.advance(0.05)


def _reader(h: Harness, stop: threading.Event, problems: list[str]) -> None:
    stages: dict[str, int] = {}
    while not stop.is_set():
        snapshot = h.engine.snapshot()
        # A maintenance DAG holds the lock until it ends SUCCEED (§5.5).
        unfinished = [
            d
            for d in snapshot
            if d["maintenance_type"] == 2 and d["state"] != "SUCCEED"
        ]
        if len(unfinished) > 1:
            problems.append(f"{len(unfinished)} unfinished maintenance DAGs")
        for dto in snapshot:
            _check_one(dto, stages, problems)


def _check_one(
    dto: dict[str, Any], stages: dict[str, int], problems: list[str]
) -> None:
    bad = [(what, s) for what, s in all_states(dto) if s not in STATES]
    if bad:
        problems.append(f"{dto['id']}: states outside the enum {bad!r}")
    # A rollback walks the stage back, and a reader may miss the moment the
    # DAG's operator said so; the rolled-back nodes keep saying it.
    if "ROLLBACK" in {dto["operator"], *(n["operator"] for n in dto["nodes"])}:
        stages.pop(dto["id"], None)
        return
    if dto["stage"] < stages.get(dto["id"], 0):
        problems.append(f"{dto['id']}: stage went back to {dto['stage']}")
    stages[dto["id"]] = dto["stage"]


def _operator(h: Harness, stop: threading.Event, problems: list[str], n: int) -> None:
    count = 0
    while not stop.wait(0.002):
        count += 1
        try:
            dto = h.upgrade(
                version=f"4.5.{n + 1}.{count}", package_present=count % 3 != 0
            )
        except AgentError as error:
            if error.err_code != "OB.Cluster.UnderMaintenanceWithDag":
                problems.append(f"upgrade: {error.err_code}: {error.message}")
            dto = h.engine.last_maintenance_dto(show_details=False)
        _try_an_operator(
            h, dto["id"], ("cancel", "rollback", "retry", "pass")[count % 4], problems
        )


def _try_an_operator(h: Harness, gid: str, operator: str, problems: list[str]) -> None:
    try:
        h.engine.operate(gid, operator)
    except AgentError as error:
        if not error.err_code.startswith("Task.Dag.Operator."):
            problems.append(f"{operator}: {error.err_code}: {error.message}")


# -- engine faults -------------------------------------------------------------------


@dataclass
class Run:
    """What a fault-free client could observe of one upgrade."""

    polls: Polls
    second: AgentError | dict[str, Any]
    calls: list[tuple[str, str, float]]


def run_upgrade(make: Callable[..., Harness], faults: frozenset[str]) -> Run:
    h = make(agents=AGENTS3, faults=faults)
    gid = h.upgrade()["id"]
    polls = h.finish(gid, limit=3.5)
    try:
        second: AgentError | dict[str, Any] = h.upgrade(version="4.5.2.0")
    except AgentError as error:
        second = error
    polls.seen += h.finish(gid, limit=25.0).seen
    return Run(polls, second, [c for c in h.calls if c[0] == VERSION])


def states_in_enum(run: Run) -> bool:
    return all(s in STATES for _, dto in run.polls.seen for _, s in all_states(dto))


def stage_monotonic(run: Run) -> bool:
    return run.polls.stages == sorted(run.polls.stages)


def max_stage_is_the_node_count(run: Run) -> bool:
    final = run.polls.last
    counts = all(
        dto["max_stage"] == len(dto["nodes"]) and dto["stage"] <= dto["max_stage"]
        for _, dto in run.polls.seen
    )
    return counts and (
        final["state"] != "SUCCEED" or final["stage"] == final["max_stage"]
    )


def finishes(run: Run) -> bool:
    return bool(run.polls.last["state"] == "SUCCEED")


def id_is_one_and_dag_id(run: Run) -> bool:
    return all(dto["id"] == f"1{dto['dag_id']}" for _, dto in run.polls.seen)


def maintenance_lock(run: Run) -> bool:
    second = run.second
    return isinstance(second, AgentError) and (
        second.err_code == "OB.Cluster.UnderMaintenanceWithDag"
    )


def version_updated(run: Run) -> bool:
    succeeded = [at for at, dto in run.polls.seen if dto["state"] == "SUCCEED"]
    if not succeeded:
        return True
    return len(run.calls) == 1 and run.calls[0][2] <= succeeded[0]


def nodes_agree_with_sub_tasks(run: Run) -> bool:
    for _, dto in run.polls.seen:
        for node in dto["nodes"]:
            subs = {sub["state"] for sub in node["sub_tasks"]}
            if node["state"] == "SUCCEED" and subs != {"SUCCEED"}:
                return False
            if node["state"] == "PENDING" and subs != {"PENDING"}:
                return False
    return True


PROMISES: dict[str, Callable[[Run], bool]] = {
    "dag-state-outside-enum": states_in_enum,
    "dag-stage-backwards": stage_monotonic,
    "dag-wrong-max-stage": max_stage_is_the_node_count,
    "dag-never-finishes": finishes,
    "dag-id-mismatch": id_is_one_and_dag_id,
    "concurrent-upgrade": maintenance_lock,
    "version-not-updated": version_updated,
    "node-state-disagrees": nodes_agree_with_sub_tasks,
}


def test_every_engine_fault_has_a_promise() -> None:
    assert set(PROMISES) == ENGINE_FAULT_NAMES == ENGINE_FAULTS


def test_without_faults_every_promise_holds(make: Callable[..., Harness]) -> None:
    run = run_upgrade(make, frozenset())

    broken = [fault for fault, holds in PROMISES.items() if not holds(run)]

    assert broken == []


@pytest.mark.parametrize("fault", sorted(PROMISES))
def test_each_engine_fault_breaks_its_promise_and_only_it(
    make: Callable[..., Harness], fault: str
) -> None:
    run = run_upgrade(make, frozenset({fault}))

    broken = [name for name, holds in PROMISES.items() if not holds(run)]

    assert broken == [fault]


def test_server_fault_names_do_not_disturb_the_engine(
    make: Callable[..., Harness],
) -> None:
    run = run_upgrade(make, frozenset({"error-with-200", "drop-trace-id"}))

    assert [name for name, holds in PROMISES.items() if not holds(run)] == []
