"""The DAG API's own errors for unknown and malformed ids."""

from __future__ import annotations

import pytest

from obshell_contract.checks import expect_error
from obshell_contract.client import ObshellClient


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
