"""Fixtures of the contract suite; targets and evidence come from the plugin."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from obshell_contract.checks import ContractViolation, Observer
from obshell_contract.client import DagTrace, ObshellClient, Reply
from obshell_contract.evidence import Evidence, TimelineEntry
from obshell_contract.forgery import Forger
from obshell_contract.maintenance import undo
from obshell_contract.plugin import load_hypothesis_profile, run_settings
from obshell_contract.targets import Target, UpgradePackage, embedded_mock

UPGRADE = "/api/v1/agent/upgrade"


def pytest_configure(config: pytest.Config) -> None:
    load_hypothesis_profile(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that read the one real upgrade last.

    On a live agent that upgrade can happen once: the tests that start a DAG
    and roll it back (cancel, missing package) must come before it.
    """
    items.sort(key=lambda item: "upgrade_run" in getattr(item, "fixturenames", ()))


@pytest.fixture
def forger(client: ObshellClient) -> Forger:
    """Sends deliberately broken envelopes through the test's client."""
    return Forger(client)


@pytest.fixture
def base_body(target: Target) -> dict[str, str]:
    """A well-formed body that negative tests spoil one field of.

    It names the run's upgrade package when the run may upgrade; otherwise the
    agent's own version, which a compliant agent refuses as not newer, so that
    nothing a compliant agent would accept is ever sent.
    """
    if target.package is not None:
        return {"version": target.package.version, "release": target.package.release}
    return current_version_body(target)


@pytest.fixture
def current_body(target: Target) -> dict[str, str]:
    """A well-formed body naming the agent's own version: refused, never risky."""
    return current_version_body(target)


def current_version_body(target: Target) -> dict[str, str]:
    version = (target.facts.agent_version if target.facts else None) or "0.0.0.0-0"
    number, _, build = version.partition("-")
    return {"version": number, "release": f"{build or '0'}.el7"}


# -- unintended DAGs -------------------------------------------------------------


@pytest.fixture
def dag_guard_factory(
    evidence: Evidence, request: pytest.FixtureRequest, target: Target
) -> Callable[[ObshellClient], Callable[[str], Any]]:
    """Guards bound to a client; see :func:`dag_guard`."""
    deadline = run_settings(request.config).dag_timeout
    # A live agent shared with other xdist workers has DAGs this test did not
    # start, so only a DAG named in a reply counts there.
    watch_list = target.is_mock or not hasattr(request.config, "workerinput")
    return lambda client: _guard(client, evidence, deadline, watch_list)


@pytest.fixture
def dag_guard(
    client: ObshellClient,
    dag_guard_factory: Callable[[ObshellClient], Callable[[str], Any]],
) -> Callable[[str], Any]:
    """``with dag_guard("REQ-05"):`` fails the clause if the block started a DAG.

    A DAG started by mistake is cancelled and rolled back on the spot, and the
    evidence says so: a live run must not leave an upgrade behind.
    """
    return dag_guard_factory(client)


def _guard(
    client: ObshellClient, evidence: Evidence, deadline: float, watch_list: bool
) -> Callable[[str], Any]:
    def unfinished() -> set[str]:
        return unfinished_ids(client) if watch_list else set()

    @contextmanager
    def guard(clause: str) -> Iterator[None]:
        before = unfinished()
        count = len(client.recorder.exchanges)
        try:
            yield
        finally:
            # Runs when the block's own assertion failed too: a DAG started by
            # mistake must be undone whatever else went wrong.
            started = _started_dags(client, count) | (unfinished() - before)
            for dag_id in sorted(started):
                state = undo(client, dag_id, deadline).get("state", "unknown")
                evidence.notes.append(
                    f"DAG {dag_id} was started by a request that should have been "
                    f"rejected; cancelled ({state}) and rolled back if it failed"
                )
        if started:
            raise ContractViolation(
                clause,
                "no DAG started by a rejected request",
                f"DAG(s) {sorted(started)}",
            )

    return guard


def unfinished_ids(client: ObshellClient) -> set[str]:
    reply = client.unfinished_dags(label="unfinished DAGs (guard)")
    contents = (
        (reply.data or {}).get("contents") if isinstance(reply.data, dict) else None
    )
    return {str(dag.get("id")) for dag in contents or [] if isinstance(dag, dict)}


def _started_dags(client: ObshellClient, since: int) -> set[str]:
    started = set()
    for exchange in client.recorder.exchanges[since:]:
        if exchange.uri != UPGRADE or exchange.status != 200:
            continue
        body = _json(exchange.response_text)
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict) and data.get("id"):
            started.add(str(data["id"]))
    return started


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- one real upgrade, shared by the clauses that need it -------------------------


@dataclass
class UpgradeRun:
    """One upgrade followed to its end, with what was asked around it."""

    target: Target
    package: UpgradePackage
    accepted: Reply
    repeated: Reply
    trace: DagTrace | None
    info_after: Reply | None
    after_success: Reply | None
    polls: list[Reply] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def dag(self) -> dict[str, Any]:
        data = self.accepted.data
        return data if isinstance(data, dict) else {}

    def share_with(self, evidence: Evidence) -> None:
        """Copy the run's observations and timeline into a test's evidence."""
        evidence.checks.extend(self.evidence.checks)
        evidence.exchanges.extend(self.evidence.exchanges)
        evidence.timeline.extend(self.evidence.timeline)


@pytest.fixture(scope="session")
def upgrade_run(request: pytest.FixtureRequest, target: Target) -> Iterator[UpgradeRun]:
    """Upgrade once and follow the DAG: on a fresh mock, or the live agent."""
    if target.package is None:
        pytest.skip("not run: starts a real upgrade; pass --allow-upgrade")
    settings = run_settings(request.config)
    if not target.is_mock:
        yield _upgrade(target, settings.dag_timeout)
        return
    with embedded_mock(settings.mock_config()) as fresh:
        yield _upgrade(fresh, settings.dag_timeout)


def _upgrade(target: Target, deadline: float) -> UpgradeRun:
    assert target.package is not None
    evidence = Evidence()
    observer = Observer(evidence, target.secrets)
    client = ObshellClient(
        target.url,
        target.password,
        agent_password=target.agent_password,
        on_reply=observer,
    )
    package = target.package
    with client:
        accepted = client.upgrade_agent(
            package.version, package.release, label="upgrade"
        )
        repeated = client.upgrade_agent(
            package.version, package.release, label="repeat at once"
        )
        run = UpgradeRun(
            target, package, accepted, repeated, None, None, None, evidence=evidence
        )
        if run.dag.get("id"):
            _follow(client, run, deadline)
        evidence.exchanges.extend(client.recorder.to_list())
    return run


def _follow(client: ObshellClient, run: UpgradeRun, deadline: float) -> None:
    run.trace = client.follow_dag(
        str(run.dag["id"]),
        deadline=deadline,
        poll_interval=0.05,
        on_poll=run.polls.append,
    )
    for stage, node, first, last in run.trace.stage_timeline():
        run.evidence.timeline.append(
            TimelineEntry(
                str(run.dag["id"]), stage, node, _state_at(run.trace, last), first, last
            )
        )
    if run.trace.final and run.trace.final.get("state") == "SUCCEED":
        run.info_after = client.info()
        run.after_success = client.upgrade_agent(
            run.package.version, run.package.release, label="same version after success"
        )


def _state_at(trace: DagTrace, offset: float) -> str:
    for poll in trace.polls:
        if poll.offset_s == offset and poll.dag:
            return str(poll.dag.get("state"))
    return "unknown"
