"""One real upgrade, followed to its end: acceptance, the DAG's life, the new version.

Every test here reads the same :class:`UpgradeRun`: a live agent is upgraded
once per run, however many clauses look at it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from obshell_contract import schemas
from obshell_contract.checks import ContractViolation, expect_error, expect_success
from obshell_contract.client import ObshellClient
from obshell_contract.evidence import Evidence

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
STATES = {"PENDING", "READY", "RUNNING", "FAILED", "SUCCEED"}
# Forward moves only; RETRY, ROLLBACK and CANCEL are not sent in this run.
DAG_MOVES = {
    "READY": {"READY", "RUNNING", "SUCCEED", "FAILED"},
    "RUNNING": {"RUNNING", "SUCCEED", "FAILED"},
}
NODE_MOVES = {
    "PENDING": {"PENDING", "READY", "RUNNING", "SUCCEED", "FAILED"},
    "READY": {"READY", "RUNNING", "SUCCEED", "FAILED"},
    "RUNNING": {"RUNNING", "SUCCEED", "FAILED"},
}


@pytest.fixture
def run(upgrade_run: Any, evidence: Evidence) -> Any:
    upgrade_run.share_with(evidence)
    return upgrade_run


def dags(run: Any) -> list[dict[str, Any]]:
    return [
        poll.data
        for poll in run.polls
        if poll.successful and isinstance(poll.data, dict)
    ]


def last(run: Any, clause: str) -> dict[str, Any]:
    """The last DAG polled, finished or not."""
    __tracebackhide__ = True
    polled = dags(run)
    if not polled:
        raise ContractViolation(
            clause, "the DAG readable by GET /api/v1/task/dag/{id}", "no poll succeeded"
        )
    return polled[-1]


def final(run: Any, clause: str) -> dict[str, Any]:
    __tracebackhide__ = True
    if run.trace is None or run.trace.final is None:
        raise ContractViolation(
            clause, "a DAG followed to SUCCEED or FAILED", "no final state seen"
        )
    return dict(run.trace.final)


# -- acceptance ------------------------------------------------------------------


@pytest.mark.clause("ACC-01")
def test_valid_request_is_answered_with_a_dag(run: Any) -> None:
    data = expect_success(run.accepted, "ACC-01")

    found = schemas.violations(data, schemas.DAG_DETAIL)
    if found:
        raise ContractViolation(
            "ACC-01", "a DagDetailDTO", f"{found[0].pointer}: {found[0].message}"
        )


@pytest.mark.clause("ACC-02")
def test_dag_id_is_the_generic_id(run: Any) -> None:
    dag = run.dag

    if dag.get("id") != f"1{dag.get('dag_id')}":
        raise ContractViolation(
            "ACC-02", f"id '1{dag.get('dag_id')}'", repr(dag.get("id"))
        )


@pytest.mark.clause("ACC-03")
def test_dag_is_named_after_the_package(run: Any) -> None:
    if run.dag.get("name") != run.package.dag_name:
        raise ContractViolation(
            "ACC-03", repr(run.package.dag_name), repr(run.dag.get("name"))
        )


@pytest.mark.clause("ACC-04")
def test_new_dag_starts_ready_at_stage_one(run: Any) -> None:
    wanted = {"stage": 1, "max_stage": 9, "state": "READY", "operator": "RUN"}
    if "maintenance_type" in run.dag:
        wanted["maintenance_type"] = 2

    actual = {key: run.dag.get(key) for key in wanted}
    if actual != wanted:
        raise ContractViolation("ACC-04", repr(wanted), repr(actual))


# -- the DAG's life --------------------------------------------------------------


@pytest.mark.clause("DAG-01")
def test_dag_has_nine_nodes_with_a_sub_task_each(run: Any) -> None:
    dag = last(run, "DAG-01")
    nodes = dag.get("nodes") or []

    names = [node.get("name") for node in nodes]
    if names != NODE_NAMES:
        raise ContractViolation("DAG-01", f"nodes {NODE_NAMES}", repr(names))
    empty = [node.get("name") for node in nodes if not node.get("sub_tasks")]
    if empty:
        raise ContractViolation(
            "DAG-01", "one sub-task per agent on every node", f"none on {empty}"
        )
    for poll in dags(run):
        found = schemas.violations(poll, schemas.DAG_DETAIL)
        if found:
            raise ContractViolation(
                "DAG-01",
                "every poll a valid DagDetailDTO",
                f"{found[0].pointer}: {found[0].message}",
            )


def state_changes(run: Any) -> list[tuple[str, str, str]]:
    """(what, before, after) for every state seen to change between two polls."""
    changes: list[tuple[str, str, str]] = []
    previous: dict[str, str] = {}
    for dag in dags(run):
        current = _states_by_path(dag)
        for path, state in current.items():
            before = previous.get(path)
            if before is not None and before != state:
                changes.append((path, before, state))
        previous = current
    return changes


def _states_by_path(dag: dict[str, Any]) -> dict[str, str]:
    states = {"dag": str(dag.get("state"))}
    for node in dag.get("nodes") or []:
        states[f"node {node.get('name')}"] = str(node.get("state"))
        for task in node.get("sub_tasks") or []:
            states[f"sub-task {task.get('id')}"] = str(task.get("state"))
    return states


@pytest.mark.clause("DAG-02")
def test_states_stay_in_the_enum_and_move_forward(run: Any) -> None:
    for dag in dags(run):
        for state in _states_by_path(dag).values():
            if state not in STATES:
                raise ContractViolation(
                    "DAG-02", f"a state in {sorted(STATES)}", repr(state)
                )

    for path, before, after in state_changes(run):
        allowed = (DAG_MOVES if path == "dag" else NODE_MOVES).get(before, {before})
        if after not in allowed:
            raise ContractViolation(
                "DAG-02",
                f"{path}: {before} -> one of {sorted(allowed)}",
                f"{before} -> {after}",
            )


@pytest.mark.clause("DAG-03")
def test_stage_never_goes_back(run: Any) -> None:
    stages = [dag.get("stage") for dag in dags(run)]

    for before, after in itertools.pairwise(stages):
        if not isinstance(before, int) or not isinstance(after, int) or after < before:
            raise ContractViolation("DAG-03", "non-decreasing stages", f"{stages}")


@pytest.mark.clause("DAG-04")
def test_nodes_and_sub_tasks_agree_with_the_dag(run: Any) -> None:
    for dag in dags(run):
        for index, node in enumerate(dag.get("nodes") or [], start=1):
            tasks = {task.get("state") for task in node.get("sub_tasks") or []}
            if node.get("state") == "SUCCEED" and tasks - {"SUCCEED"}:
                raise ContractViolation(
                    "DAG-04",
                    f"node {node.get('name')} SUCCEED with all sub-tasks SUCCEED",
                    f"sub-tasks {sorted(map(str, tasks))}",
                )
            if dag.get("state") == "SUCCEED" and node.get("state") != "SUCCEED":
                raise ContractViolation(
                    "DAG-04",
                    "every node SUCCEED in a SUCCEED DAG",
                    f"node {index} {node.get('state')}",
                )
            if (
                isinstance(dag.get("stage"), int)
                and index < dag["stage"]
                and node.get("state") != "SUCCEED"
            ):
                raise ContractViolation(
                    "DAG-04",
                    f"nodes before stage {dag['stage']} SUCCEED",
                    f"node {index} {node.get('state')}",
                )


@pytest.mark.clause("DAG-05")
def test_dag_finishes_within_the_deadline(run: Any) -> None:
    if run.trace is None or run.trace.timed_out or run.trace.final is None:
        last = run.trace.polls[-1].note if run.trace and run.trace.polls else "no poll"
        raise ContractViolation(
            "DAG-05", "SUCCEED or FAILED before --dag-timeout", f"still {last}"
        )


@pytest.mark.clause("DAG-06")
def test_info_reports_the_new_version_after_success(run: Any) -> None:
    if run.trace is None or run.trace.final is None:
        pytest.skip("not applicable: the DAG never finished (DAG-05 reports it)")
    dag = final(run, "DAG-06")
    if dag.get("state") != "SUCCEED":
        pytest.skip(f"not applicable: the upgrade ended {dag.get('state')}")

    version = (run.info_after.data or {}).get("version") if run.info_after else None
    if not str(version).startswith(run.package.version):
        raise ContractViolation(
            "DAG-06", f"version starting {run.package.version}", repr(version)
        )


@pytest.mark.clause("DAG-07")
def test_max_stage_counts_the_nodes(run: Any) -> None:
    dag = last(run, "DAG-07")
    nodes = dag.get("nodes") or []

    if dag.get("max_stage") != len(nodes):
        raise ContractViolation(
            "DAG-07", f"max_stage {len(nodes)}", repr(dag.get("max_stage"))
        )
    if dag.get("state") == "SUCCEED" and dag.get("stage") != dag.get("max_stage"):
        raise ContractViolation(
            "DAG-07", f"stage {dag.get('max_stage')} at SUCCEED", repr(dag.get("stage"))
        )


# -- operators on the finished DAG --------------------------------------------

FORBIDDEN_ON_SUCCEED = [
    (
        "retry",
        "Task.Dag.Operator.RetryNotFailedDag",
        "Failed to set DAG retry: DAG state is not failed",
    ),
    (
        "rollback",
        "Task.Dag.Operator.RollbackNotFailedDag",
        "Failed to set DAG rollback: DAG state is not failed",
    ),
    (
        "pass",
        "Task.Dag.Operator.PassNotFailedDag",
        "Failed to pass DAG: DAG is not failed",
    ),
    (
        "cancel",
        "Task.Dag.Operator.CancelFinishedDag",
        "Failed to cancel DAG: DAG is finished",
    ),
]


@pytest.mark.clause("TASK-03")
def test_unknown_operator_is_not_supported(
    client_factory: Callable[..., ObshellClient], upgrade_run: Any
) -> None:
    client = client_factory(upgrade_run.target)

    reply = client.operate_dag(str(upgrade_run.dag["id"]), "foo")

    expect_error(
        reply,
        "TASK-03",
        status=400,
        err_code="Task.Dag.Operator.NotSupport",
        message="Operator foo is not supported",
    )


@pytest.mark.clause("TASK-04")
@pytest.mark.parametrize(
    ("operator", "err_code", "message"),
    FORBIDDEN_ON_SUCCEED,
    ids=[row[0] for row in FORBIDDEN_ON_SUCCEED],
)
def test_operators_forbidden_on_a_finished_dag(
    client_factory: Callable[..., ObshellClient],
    upgrade_run: Any,
    operator: str,
    err_code: str,
    message: str,
) -> None:
    client = client_factory(upgrade_run.target)
    if (
        upgrade_run.trace is None
        or (upgrade_run.trace.final or {}).get("state") != "SUCCEED"
    ):
        pytest.skip("not applicable: the shared upgrade did not succeed")

    reply = client.operate_dag(str(upgrade_run.dag["id"]), operator)

    expect_error(reply, "TASK-04", status=400, err_code=err_code, message=message)
