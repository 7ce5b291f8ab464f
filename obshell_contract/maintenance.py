"""The maintenance lock from the suite's side: let a DAG come to rest, free the lock.

An upgrade DAG holds the cluster's global maintenance lock until it succeeds;
a FAILED one (a cancelled one included) keeps it until it is rolled back. A
test that starts an upgrade it does not mean to finish, or finds one started
by mistake, leaves the agent as it found it with these helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from obshell_contract.client import ObshellClient

__all__ = ["release_lock", "settle", "undo"]

POLL_INTERVAL = 0.05


def settle(client: ObshellClient, dag_id: str, deadline: float) -> dict[str, Any]:
    """Wait up to ``deadline`` seconds for SUCCEED or FAILED; the DTO, or {}."""
    trace = client.follow_dag(dag_id, deadline=deadline, poll_interval=POLL_INTERVAL)
    return dict(trace.final or {})


def release_lock(client: ObshellClient, dag_id: str, deadline: float) -> dict[str, Any]:
    """Let the DAG come to rest and roll it back if it failed.

    Returns the DAG as it came to rest, before any rollback.
    """
    at_rest = settle(client, dag_id, deadline)
    if at_rest.get("state") == "FAILED":
        client.operate_dag(dag_id, "rollback", label="roll back to release the lock")
        settle(client, dag_id, deadline)
    return at_rest


def undo(client: ObshellClient, dag_id: str, deadline: float) -> dict[str, Any]:
    """Cancel a DAG that should not exist, then release the lock it holds."""
    client.operate_dag(dag_id, "cancel", label="cancel an unintended DAG")
    return release_lock(client, dag_id, deadline)
