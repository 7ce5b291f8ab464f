"""Conflicts: the global maintenance lock, lower versions, missing packages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from obshell_contract.checks import ContractViolation, expect_error, expect_rejected
from obshell_contract.client import ObshellClient
from obshell_contract.evidence import Evidence
from obshell_contract.maintenance import release_lock, settle
from obshell_contract.plugin import run_settings
from obshell_contract.targets import Target, UpgradePackage


@pytest.fixture
def fresh_client(
    client_factory: Callable[..., ObshellClient], fresh_target: Target
) -> ObshellClient:
    return client_factory(fresh_target)


@pytest.fixture
def deadline(request: pytest.FixtureRequest) -> float:
    return run_settings(request.config).dag_timeout


def start(client: ObshellClient, package: UpgradePackage, clause: str) -> str:
    __tracebackhide__ = True
    reply = client.upgrade_agent(
        package.version, package.release, label="start an upgrade"
    )
    if reply.http_status != 200 or not isinstance(reply.data, dict):
        raise ContractViolation(
            clause,
            "an upgrade accepted to work with",
            f"HTTP {reply.http_status} {reply.err_code}",
        )
    return str(reply.data["id"])


# -- a second upgrade ------------------------------------------------------------


@pytest.mark.clause("CON-01")
def test_second_upgrade_while_one_runs_is_refused(
    upgrade_run: Any, evidence: Evidence
) -> None:
    upgrade_run.share_with(evidence)

    expect_rejected(upgrade_run.repeated, "CON-01")
    if isinstance(upgrade_run.repeated.data, dict) and upgrade_run.repeated.data.get(
        "id"
    ):
        raise ContractViolation(
            "CON-01", "no second DAG", repr(upgrade_run.repeated.data.get("id"))
        )


@pytest.mark.clause("CON-02")
def test_second_upgrade_is_answered_under_maintenance(upgrade_run: Any) -> None:
    name = upgrade_run.package.dag_name

    expect_error(
        upgrade_run.repeated,
        "CON-02",
        status=500,
        err_code="OB.Cluster.UnderMaintenanceWithDag",
        message=f"Create task '{name}' failed: OceanBase cluster is under "
        f"maintenance by DAG: {name}, please try again later",
    )


@pytest.mark.clause("CON-03")
def test_same_version_after_success_is_refused(upgrade_run: Any) -> None:
    if upgrade_run.after_success is None:
        pytest.skip("not applicable: the upgrade did not succeed")

    expect_rejected(upgrade_run.after_success, "CON-03")


@pytest.mark.clause("CON-04")
def test_lower_or_equal_version_is_answered_to_lower_version(
    client: ObshellClient, current_body: dict[str, str], target: Target
) -> None:
    reply = client.upgrade_agent(current_body["version"], current_body["release"])

    build = current_body["release"].split(".")[0]
    expect_error(
        reply,
        "CON-04",
        status=400,
        err_code="Agent.Upgrade.ToLowerVersion",
        message_prefix=f"Target version {current_body['version']}-{build} is not "
        "greater than current version ",
    )


@pytest.mark.clause("TASK-05")
def test_successful_operator_call_has_no_data(
    fresh_client: ObshellClient, fresh_target: Target, deadline: float
) -> None:
    assert fresh_target.package is not None
    dag_id = start(fresh_client, fresh_target.package, "TASK-05")

    cancel = fresh_client.operate_dag(dag_id, "cancel")
    release_lock(fresh_client, dag_id, deadline)

    if cancel.http_status != 200 or cancel.has_data_key:
        raise ContractViolation(
            "TASK-05",
            "HTTP 200 without a data key",
            f"HTTP {cancel.http_status} {cancel.exchange.response_text[:200]}",
        )


@pytest.mark.clause("CON-05")
def test_failed_upgrade_holds_the_lock_until_rolled_back(
    fresh_client: ObshellClient, fresh_target: Target, deadline: float
) -> None:
    assert fresh_target.package is not None
    dag_id = start(fresh_client, fresh_target.package, "CON-05")

    fresh_client.operate_dag(dag_id, "cancel")
    cancelled = settle(fresh_client, dag_id, deadline)
    blocked = fresh_client.upgrade_agent(
        fresh_target.package.version, fresh_target.package.release
    )
    fresh_client.operate_dag(dag_id, "rollback")
    rolled_back = settle(fresh_client, dag_id, deadline)
    unfinished = (fresh_client.unfinished_dags().data or {}).get("contents") or []

    if cancelled.get("state") != "FAILED":
        raise ContractViolation(
            "CON-05", "a cancelled DAG ending FAILED", repr(cancelled.get("state"))
        )
    expect_rejected(blocked, "CON-05")
    if (rolled_back.get("state"), rolled_back.get("operator")) != (
        "SUCCEED",
        "ROLLBACK",
    ):
        raise ContractViolation(
            "CON-05",
            "SUCCEED/ROLLBACK after rollback",
            f"{rolled_back.get('state')}/{rolled_back.get('operator')}",
        )
    if unfinished:
        raise ContractViolation(
            "CON-05",
            "no unfinished DAG after rollback",
            f"{len(unfinished)} unfinished",
        )


# -- a package the cluster does not hold -----------------------------------------


def missing_package(target: Target) -> UpgradePackage:
    assert target.package is not None
    parts = target.package.version.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return UpgradePackage(".".join(parts), target.package.release)


@pytest.mark.clause("DAG-08")
def test_missing_package_never_succeeds(
    fresh_client: ObshellClient,
    fresh_target: Target,
    deadline: float,
    evidence: Evidence,
) -> None:
    package = missing_package(fresh_target)

    reply = fresh_client.upgrade_agent(
        package.version, package.release, label="missing package"
    )
    if reply.http_status != 200:
        return
    dag_id = str(reply.data["id"])
    dag = release_lock(fresh_client, dag_id, deadline)
    evidence.notes.append(
        f"DAG {dag_id} for a missing package ended {dag.get('state')}; rolled back"
    )

    if dag.get("state") == "SUCCEED":
        raise ContractViolation("DAG-08", "FAILED for a missing package", "SUCCEED")


@pytest.mark.clause("DAG-09")
def test_missing_package_is_refused_up_front(
    fresh_client: ObshellClient,
    fresh_target: Target,
    deadline: float,
    evidence: Evidence,
) -> None:
    package = missing_package(fresh_target)

    reply = fresh_client.upgrade_agent(
        package.version, package.release, label="missing package"
    )
    if reply.http_status == 200 and isinstance(reply.data, dict):
        dag_id = str(reply.data["id"])
        release_lock(fresh_client, dag_id, deadline)
        evidence.notes.append(f"DAG {dag_id} for a missing package was rolled back")
    expect_error(reply, "DAG-09", status=400, err_code="Agent.Package.NotFound")
