"""The DAG API's own errors: unknown and malformed ids, operators the state forbids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from obshell_contract.checks import expect_error
from obshell_contract.client import ObshellClient

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


@pytest.mark.clause("TASK-01")
def test_unknown_dag_is_not_found(client: ObshellClient) -> None:
    reply = client.get_dag("1999999999")

    expect_error(
        reply,
        "TASK-01",
        status=404,
        err_code="Task.NotFound",
        message="Task not found: record not found",
    )


@pytest.mark.clause("TASK-02")
def test_malformed_dag_id_is_invalid(client: ObshellClient) -> None:
    reply = client.get_dag("9abc")

    expect_error(
        reply,
        "TASK-02",
        status=400,
        err_code="Task.GenericID.Invalid",
        message_prefix="Invalid ID: 9abc",
    )


@pytest.mark.clause("TASK-03")
@pytest.mark.stateful
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
@pytest.mark.stateful
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
