"""The mock agent's DAG engine: upgrade DAGs that progress with a clock, no HTTP.

The engine follows the agent's cluster scheduler (protocol reference §5, §6),
read from ``ob/agent/engine/scheduler`` and ``ob/agent/service/task``:

- time is cut into ticks of ``stage_seconds / 4``. On each tick an "executor"
  phase starts the sub-tasks that became READY on an earlier tick and finishes
  those that have run for two ticks, then a "scheduler" phase advances the DAG
  by one step, as the agent's ``advanceDag`` does. A node therefore takes
  ``stage_seconds`` from start to finish;
- progress is computed lazily, under one lock, whenever a caller reads: there is
  no background thread, so a fake ``clock`` makes tests instant;
- operators (retry, rollback, cancel, pass) change the records exactly as the
  agent's ``taskService`` does, and the next ticks carry the change out.

Engine faults (``dag-…``, ``concurrent-upgrade``, ``version-not-updated``,
``node-state-disagrees``) are switched on by name in ``faults``; each one breaks
a single promise and leaves the others alone.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from obshell_contract.log import logger
from obshell_contract.mock.errors import AgentError, agent_error

__all__ = [
    "CANCEL",
    "ENGINE_FAULT_NAMES",
    "FAILED",
    "GLOBAL_MAINTENANCE",
    "NOT_UNDER_MAINTENANCE",
    "OPERATORS",
    "PASS",
    "PENDING",
    "READY",
    "RETRY",
    "ROLLBACK",
    "RUN",
    "RUNNING",
    "STATES",
    "SUCCEED",
    "TICKS_PER_NODE",
    "UPGRADE_CHECK_NODES",
    "UPGRADE_NODES",
    "ZERO_TIME",
    "DagEngine",
    "NodeSpec",
    "go_time",
    "parse_generic_id",
]

PENDING, READY, RUNNING, FAILED, SUCCEED = (
    "PENDING",
    "READY",
    "RUNNING",
    "FAILED",
    "SUCCEED",
)
STATES = (PENDING, READY, RUNNING, FAILED, SUCCEED)
_FINISHED = (FAILED, SUCCEED)

RUN, RETRY, ROLLBACK, CANCEL, PASS = "RUN", "RETRY", "ROLLBACK", "CANCEL", "PASS"
OPERATORS = (RUN, RETRY, ROLLBACK, CANCEL, PASS)

# maintenance_type values (``engine/task/maintenance_type.go``).
NOT_UNDER_MAINTENANCE = 1
GLOBAL_MAINTENANCE = 2

ENGINE_FAULT_NAMES = frozenset(
    {
        "dag-state-outside-enum",
        "dag-stage-backwards",
        "dag-wrong-max-stage",
        "dag-never-finishes",
        "dag-id-mismatch",
        "concurrent-upgrade",
        "version-not-updated",
        "node-state-disagrees",
    }
)

# Ready on tick n, started on n+1, finished on n+3, next node on n+4.
TICKS_PER_NODE = 4

ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)
_ZERO_TIME_TEXT = "0001-01-01T00:00:00Z"

# The failure a missing package causes at stage 2 (§5.4: gorm's ErrRecordNotFound
# wrapped as Common.Unexpected, written by ExecuteErrorLog).
MISSING_PACKAGE_LOG = "ERROR: [Common.Unexpected]: Unexpected error: record not found"
CANCELLED_LOG = "sub task cancelled"

# TODO: stage 7's restart window (refused connections, then Task.NotFound while
# the agent reconnects to OceanBase, §5.4) is not simulated.
_STALL_STAGE = 5  # dag-never-finishes: where the upgrade DAG hangs
_BACKWARDS_STAGE = 4  # dag-stage-backwards: where the stage slips back
_RESTART_NODE = "Restart obshell"
_MAX_TICKS_PER_READ = 100_000
_INT64_MAX = 2**63 - 1

_T = TypeVar("_T")


@dataclass(frozen=True)
class NodeSpec:
    """A node of a DAG template: its name and what its sub-tasks allow (§5.3)."""

    name: str
    can_retry: bool = True
    can_rollback: bool = True
    can_pass: bool = True
    can_cancel: bool = True


# The upgrade template, in stage order, with each task constructor's
# capabilities (``ob/agent/executor/ob/upgrade_*.go``).
UPGRADE_NODES = (
    NodeSpec("Create upgrade dir"),
    NodeSpec("Download all required packages"),
    NodeSpec("Check all required packages"),
    NodeSpec("Unpack all required packages"),
    NodeSpec("Backup for upgrade"),
    NodeSpec("Install new obshell"),
    NodeSpec(_RESTART_NODE, can_rollback=False, can_pass=False),
    NodeSpec("Upgrade post table maintain", can_rollback=False, can_pass=False),
    NodeSpec("Remove upgrade check task dir", can_rollback=False),
)

# The protocol reference does not list the check DAG's nodes. These five are
# the agent's own (``buildAgentUpgradeCheckTemplate`` in
# ``ob/agent/executor/ob/upgrade_agent_check.go``): the first four upgrade
# tasks, then the task-dir removal; every one may retry, roll back, pass and
# cancel.
UPGRADE_CHECK_NODES = (
    NodeSpec("Create upgrade dir"),
    NodeSpec("Download all required packages"),
    NodeSpec("Check all required packages"),
    NodeSpec("Unpack all required packages"),
    NodeSpec("Remove upgrade check task dir"),
)


def go_time(moment: datetime) -> str:
    """Render a time as Go's ``time.Time`` JSON does (RFC 3339, trimmed fraction).

    The zero time is ``0001-01-01T00:00:00Z``; a zero offset is written ``Z``.
    """
    if moment == ZERO_TIME:
        return _ZERO_TIME_TEXT

    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + _go_offset(moment.utcoffset())


def _go_offset(offset: timedelta | None) -> str:
    seconds = int(offset.total_seconds()) if offset else 0
    if seconds == 0:
        return "Z"
    sign = "+" if seconds > 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}"


def _local_now() -> datetime:
    return datetime.now().astimezone()


# -- generic ids -------------------------------------------------------------------

_GO_INT = re.compile(r"[+-]?[0-9]+")


def parse_generic_id(generic_id: str) -> int:
    """The instance id inside a cluster task's generic id (§5.2).

    Raises the agent's 400 ``Task.GenericID.Invalid`` for a malformed id, and its
    404 ``Task.NotFound`` for an agent-local id (``2…`` to ``5…``): the mock has no
    local tasks.
    """
    prefix = generic_id[:1]
    too_short = (
        (prefix == "1" and len(generic_id) <= 1)
        or (prefix in ("2", "4") and len(generic_id) <= 16)
        or (prefix in ("3", "5") and len(generic_id) <= 45)
    )
    if not prefix or too_short:
        raise agent_error("Task.GenericID.Invalid", generic_id)
    if prefix not in "12345":
        raise _invalid_id(generic_id, "invalid generic id")
    if prefix != "1":
        raise agent_error("Task.NotFound", "record not found")

    return _parse_int64(generic_id, generic_id[1:])


def _parse_int64(generic_id: str, digits: str) -> int:
    # Go's strconv.ParseInt(s, 10, 64): an optional sign and ASCII digits only.
    quoted = json.dumps(digits, ensure_ascii=False)
    if not _GO_INT.fullmatch(digits):
        reason = f"strconv.ParseInt: parsing {quoted}: invalid syntax"
        raise _invalid_id(generic_id, reason)

    value = int(digits)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        reason = f"strconv.ParseInt: parsing {quoted}: value out of range"
        raise _invalid_id(generic_id, reason)
    return value


def _invalid_id(generic_id: str, reason: str) -> AgentError:
    base = agent_error("Task.GenericID.Invalid", generic_id)
    return AgentError(base.err_code, base.status, f"{base.message}: {reason}")


# -- records -----------------------------------------------------------------------


@dataclass
class _SubTask:
    task_id: int
    name: str
    agent: tuple[str, int]
    state: str = PENDING
    operator: str = RUN
    start_time: datetime = ZERO_TIME
    end_time: datetime = ZERO_TIME
    execute_times: int = 0
    logs: list[str] = field(default_factory=list)
    # Executor bookkeeping: the tick of the last change, and an ordering stamp
    # standing in for the agent's start-time comparisons (ticks may share a time).
    since_tick: int = 0
    start_seq: int = 0


@dataclass
class _Node:
    node_id: int
    spec: NodeSpec
    stage: int
    sub_tasks: list[_SubTask]
    state: str = PENDING
    operator: str = RUN
    start_time: datetime = ZERO_TIME
    end_time: datetime = ZERO_TIME
    start_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED


@dataclass
class _Dag:
    dag_id: int
    name: str
    nodes: list[_Node]
    maintenance_type: int
    version: str = ""
    release: str = ""
    is_upgrade: bool = False
    stage: int = 1
    state: str = READY
    operator: str = RUN
    start_time: datetime = ZERO_TIME
    end_time: datetime = ZERO_TIME
    # The agent's ``is_finished`` column: a failed maintenance DAG stays
    # unfinished and keeps the cluster under maintenance (§5.5).
    is_finished: bool = False
    # stage -> the ERROR line its sub-tasks end with, while the cause lasts.
    failures: dict[int, str] = field(default_factory=dict)
    # Tick n happens at origin + (n - origin_tick) * quantum; None = parked.
    next_tick: int | None = 1
    last_tick: int = 0
    origin: float = 0.0
    origin_tick: int = 0
    version_reported: bool = False
    callback_pending: bool = False

    @property
    def is_maintenance(self) -> bool:
        return self.maintenance_type == GLOBAL_MAINTENANCE

    @property
    def current_node(self) -> _Node:
        return self.nodes[min(self.stage, len(self.nodes)) - 1]


# -- the engine --------------------------------------------------------------------


class DagEngine:
    """Cluster DAGs of one mock agent: creation, lazy progress, operators, DTOs.

    Every public method is thread-safe. ``on_upgrade_succeeded(version, release)``
    is called once per upgrade DAG, outside the engine's lock, when its
    "Restart obshell" node succeeds: from then on the real agent's process is
    the new binary and reports the new version (§5.3, §5.4). No reader sees the
    DAG move past that point before the callback has returned.
    """

    def __init__(
        self,
        *,
        agents: Sequence[tuple[str, int]],
        stage_seconds: float,
        faults: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _local_now,
        on_upgrade_succeeded: Callable[[str, str], None] | None = None,
    ) -> None:
        if not agents:
            raise ValueError("agents must name at least one (ip, port), got none")
        if stage_seconds < 0:
            raise ValueError(f"stage_seconds must be >= 0, got {stage_seconds!r}")

        self._agents = tuple((str(ip), int(port)) for ip, port in agents)
        self._quantum = stage_seconds / TICKS_PER_NODE
        self._faults = frozenset(faults)
        self._clock = clock
        self._on_upgrade_succeeded = on_upgrade_succeeded
        self._lock = threading.RLock()

        # Event times are mapped to wall time through one anchor, so that
        # timestamps follow the (possibly fake) clock and never go backwards.
        self._clock0 = clock()
        self._wall0 = wall_clock()
        if self._wall0.tzinfo is None:
            raise ValueError(
                "wall_clock must return an aware datetime, got a naive one"
            )

        self._dags: dict[int, _Dag] = {}
        self._nodes: dict[int, tuple[_Dag, _Node]] = {}
        self._sub_tasks: dict[int, tuple[_Dag, _Node, _SubTask]] = {}
        self._dag_ids = itertools.count(1)
        self._node_ids = itertools.count(1)
        self._task_ids = itertools.count(1)
        self._seq = itertools.count(1)

    # -- creation ------------------------------------------------------------------

    def create_upgrade_dag(
        self,
        version: str,
        release: str,
        *,
        upgrade_dir: str,
        package_present: bool,
        fail_at_stage: int | None = None,
    ) -> dict[str, Any]:
        """Create the 9-node upgrade DAG and return its immediate ``DagDetailDTO``.

        ``package_present=False`` makes stage 2 fail as the agent's does when the
        rpm was never uploaded. ``fail_at_stage`` (a test knob, not the agent's)
        makes that stage fail with a message naming the mock. Both last until
        :meth:`resolve_failures`. ``upgrade_dir`` is accepted for the agent's
        parameters; the mock creates no directory. Raises the agent's 500
        ``OB.Cluster.UnderMaintenanceWithDag`` while the cluster is under
        maintenance.
        """
        failures = _failures(UPGRADE_NODES, package_present, fail_at_stage)
        return self._create(
            f"Upgrade obshell {version}-{release}",
            UPGRADE_NODES,
            maintenance_type=GLOBAL_MAINTENANCE,
            failures=failures,
            upgrade=(version, release),
        )

    def create_upgrade_check_dag(
        self,
        version: str,
        release: str,
        *,
        upgrade_dir: str,
        package_present: bool = True,
    ) -> dict[str, Any]:
        """Create the 5-node upgrade-check DAG; it takes no maintenance lock."""
        failures = _failures(UPGRADE_CHECK_NODES, package_present, None)
        return self._create(
            f"Upgrade check obshell {version}-{release}",
            UPGRADE_CHECK_NODES,
            maintenance_type=NOT_UNDER_MAINTENANCE,
            failures=failures,
        )

    def create_dag(
        self,
        name: str,
        nodes: Sequence[NodeSpec],
        *,
        maintenance_type: int = NOT_UNDER_MAINTENANCE,
        failing_stages: Sequence[int] = (),
    ) -> dict[str, Any]:
        """Create a DAG from any template.

        For tests of what the upgrade templates never exercise, e.g. a node that
        cannot retry or cancel.
        """
        specs = tuple(nodes)
        if not specs:
            raise ValueError("a DAG needs at least one node, got none")
        failures: dict[int, str] = {}
        for stage in failing_stages:
            failures.update(_failures(specs, True, stage))
        return self._create(
            name, specs, maintenance_type=maintenance_type, failures=failures
        )

    def resolve_failures(self, generic_id: str) -> None:
        """Remove what made the DAG fail (say, the package has been uploaded).

        The failed node succeeds the next time it runs, i.e. after a retry.
        """
        with self._lock:
            self._find_dag(generic_id).failures.clear()

    def _create(
        self,
        name: str,
        specs: tuple[NodeSpec, ...],
        *,
        maintenance_type: int,
        failures: dict[int, str],
        upgrade: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        def create() -> dict[str, Any]:
            if maintenance_type == GLOBAL_MAINTENANCE:
                self._start_maintenance(name)
            dag = self._new_dag(name, specs, maintenance_type, failures)
            if upgrade is not None:
                dag.version, dag.release = upgrade
                dag.is_upgrade = True
            logger.debug("mock DAG %s created: %s", dag.dag_id, name)
            return self._render_dag(dag, show_details=False)

        return self._locked(create)

    def _start_maintenance(self, name: str) -> None:
        if "concurrent-upgrade" in self._faults:
            return
        if self._maintenance_dags(unfinished=True):
            last = self._maintenance_dags(unfinished=False)[-1]
            raise agent_error(
                "OB.Cluster.UnderMaintenanceWithDag", name, last.name, data_null=True
            )

    def _new_dag(
        self,
        name: str,
        specs: tuple[NodeSpec, ...],
        maintenance_type: int,
        failures: dict[int, str],
    ) -> _Dag:
        nodes = [self._new_node(spec, stage) for stage, spec in enumerate(specs, 1)]
        dag = _Dag(
            dag_id=next(self._dag_ids),
            name=name,
            nodes=nodes,
            maintenance_type=maintenance_type,
            failures=dict(failures),
            origin=self._clock(),
        )

        self._dags[dag.dag_id] = dag
        for node in nodes:
            self._nodes[node.node_id] = (dag, node)
            for sub in node.sub_tasks:
                self._sub_tasks[sub.task_id] = (dag, node, sub)
        return dag

    def _new_node(self, spec: NodeSpec, stage: int) -> _Node:
        subs = [
            _SubTask(task_id=next(self._task_ids), name=spec.name, agent=agent)
            for agent in self._agents
        ]
        node_id = next(self._node_ids)
        return _Node(node_id=node_id, spec=spec, stage=stage, sub_tasks=subs)

    # -- reads -----------------------------------------------------------------------

    def dag_dto(self, generic_id: str, *, show_details: bool = True) -> dict[str, Any]:
        """``GET /api/v1/task/dag/{id}``: the DAG, with its nodes if asked."""
        return self._locked(
            lambda: self._render_dag(
                self._find_dag(generic_id), show_details=show_details
            )
        )

    def node_dto(self, generic_id: str, *, show_details: bool = True) -> dict[str, Any]:
        """``GET /api/v1/task/node/{id}``.

        With ``show_details=False`` the real agent dereferences nil and answers
        with its recovery 500 (§6); the engine returns the node without its
        sub-tasks, and the server decides what to send.
        """

        def read() -> dict[str, Any]:
            _, node = self._find_node(generic_id)
            return self._render_node(node, view="node", details=show_details)

        return self._locked(read)

    def sub_task_dto(self, generic_id: str) -> dict[str, Any]:
        """``GET /api/v1/task/sub_task/{id}``."""

        def read() -> dict[str, Any]:
            return self._render_sub_task(self._find_sub_task(generic_id))

        return self._locked(read)

    def unfinished_dtos(self, *, show_details: bool = True) -> list[dict[str, Any]]:
        """``GET /api/v1/task/dag/unfinish``: failed maintenance DAGs included."""
        return self._locked(
            lambda: [
                self._render_dag(dag, show_details=show_details)
                for dag in self._dags.values()
                if not dag.is_finished
            ]
        )

    def last_maintenance_dto(self, *, show_details: bool = True) -> dict[str, Any]:
        """``GET /api/v1/task/dag/maintain/ob``: the newest maintenance DAG."""

        def read() -> dict[str, Any]:
            dags = self._maintenance_dags(unfinished=False)
            if not dags:
                raise agent_error("Task.NotFound", "Cluster is not under maintenance")
            return self._render_dag(dags[-1], show_details=show_details)

        return self._locked(read)

    @property
    def under_maintenance(self) -> bool:
        """True while a maintenance DAG is unfinished (running, or failed)."""
        return self._locked(lambda: bool(self._maintenance_dags(unfinished=True)))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every DAG with its details, oldest first, as a poll would show it now."""
        return self._locked(
            lambda: [
                self._render_dag(dag, show_details=True) for dag in self._dags.values()
            ]
        )

    def _maintenance_dags(self, *, unfinished: bool) -> list[_Dag]:
        return [
            dag
            for dag in self._dags.values()
            if dag.is_maintenance and not (unfinished and dag.is_finished)
        ]

    def _find_dag(self, generic_id: str) -> _Dag:
        dag_id = parse_generic_id(generic_id)
        dag = self._dags.get(dag_id)
        if dag is None:
            raise agent_error("Task.NotFound", "record not found")
        # The handler refuses ids that do not round-trip, e.g. "1007" (§5.2).
        if f"1{dag.dag_id}" != generic_id:
            raise agent_error("Task.NotFound", "dag id not match")
        return dag

    def _find_node(self, generic_id: str) -> tuple[_Dag, _Node]:
        found = self._nodes.get(parse_generic_id(generic_id))
        if found is None:
            raise agent_error("Task.NotFound", "record not found")
        return found

    def _find_sub_task(self, generic_id: str) -> _SubTask:
        found = self._sub_tasks.get(parse_generic_id(generic_id))
        if found is None:
            raise agent_error("Task.NotFound", "record not found")
        return found[2]

    # -- operators -------------------------------------------------------------------

    def operate(self, generic_id: str, operator: str) -> None:
        """``POST /api/v1/task/dag/{id}`` with ``{"operator": …}`` (case-insensitive).

        Raises the agent's 404/400 errors of §6; on success the change is
        carried out by the following ticks.
        """
        actions = {
            RETRY: self._retry,
            ROLLBACK: self._rollback,
            CANCEL: self._cancel,
            PASS: self._pass,
        }

        def apply() -> None:
            dag = self._find_dag(generic_id)
            action = actions.get(operator.upper())
            if action is None:
                raise agent_error("Task.Dag.Operator.NotSupport", operator)
            action(dag)
            logger.debug("mock DAG %s: operator %s", dag.dag_id, operator.upper())

        self._locked(apply)

    def _retry(self, dag: _Dag) -> None:
        if dag.state != FAILED:
            raise agent_error("Task.Dag.Operator.RetryNotFailedDag")
        node = dag.current_node
        if not node.spec.can_retry:
            raise agent_error("Task.Dag.Operator.RetryNotAllowed", node.spec.name)

        self._reset_dag(dag, RUN)
        self._reset_node(node, RETRY)

    def _rollback(self, dag: _Dag) -> None:
        if dag.state != FAILED:
            raise agent_error("Task.Dag.Operator.RollbackNotFailedDag")
        count = self._rollback_count(dag)

        self._reset_dag(dag, ROLLBACK)
        for node in dag.nodes[:count]:
            if node.finished:
                self._reset_node(node, ROLLBACK)

    def _rollback_count(self, dag: _Dag) -> int:
        # The agent's getNodesCanRollback, including its loop-variable quirk:
        # the nodes up to the failed one, each of which must allow rollback.
        count = 0
        for index, node in enumerate(dag.nodes):
            count = index
            if node.operator != ROLLBACK and node.state == PENDING:
                break
            if not node.spec.can_rollback:
                raise agent_error(
                    "Task.Dag.Operator.RollbackNotAllowed", node.spec.name
                )
            if node.state == FAILED:
                count += 1
                break
        if count == 0:
            raise agent_error(
                "Common.Unexpected", "failed to set dag rollback: no node failed"
            )
        return count

    def _cancel(self, dag: _Dag) -> None:
        if dag.state in _FINISHED:
            raise agent_error("Task.Dag.Operator.CancelFinishedDag")
        target = dag.nodes[0]
        for node in dag.nodes:
            target = node
            if not node.spec.can_cancel:
                raise agent_error("Task.Dag.Operator.CancelNotAllowed", node.spec.name)
            if not node.finished:
                break

        self._reset_dag(dag, CANCEL)
        self._reset_node(target, CANCEL)

    def _pass(self, dag: _Dag) -> None:
        if dag.state != FAILED:
            raise agent_error("Task.Dag.Operator.PassNotFailedDag")
        # Every node from the failed one on must allow passing, including the
        # ones that never ran (the agent's getNodesCanPass).
        first = len(dag.nodes)
        for index, node in enumerate(dag.nodes):
            if node.state == SUCCEED:
                continue
            if node.state == FAILED:
                first = index
            if not node.spec.can_pass:
                raise agent_error("Task.Dag.Operator.PassNotAllowed", node.spec.name)

        end = self._wall(self._clock())
        self._finish_dag(dag, SUCCEED, end)
        dag.operator = PASS
        for node in dag.nodes[first:]:
            self._pass_node(node, end)

    def _pass_node(self, node: _Node, end: datetime) -> None:
        node.state, node.operator, node.end_time = SUCCEED, PASS, end
        for sub in node.sub_tasks:
            if sub.state != SUCCEED:
                sub.state, sub.operator, sub.end_time = SUCCEED, PASS, end

    def _reset_dag(self, dag: _Dag, operator: str) -> None:
        # updateDagOperator: READY, times reset to the Unix epoch (§5.1).
        dag.state, dag.operator, dag.is_finished = READY, operator, False
        dag.start_time = dag.end_time = self._epoch()
        self._reschedule(dag)

    def _reset_node(self, node: _Node, operator: str) -> None:
        node.state, node.operator = PENDING, operator
        node.start_time = node.end_time = self._epoch()

    def _reschedule(self, dag: _Dag) -> None:
        # The next tick comes one quantum from now; tick numbers keep growing
        # so that the sub-tasks' bookkeeping stays comparable.
        dag.origin, dag.origin_tick = self._clock(), dag.last_tick
        dag.next_tick = dag.last_tick + 1

    # -- progress --------------------------------------------------------------------

    def _locked(self, read: Callable[[], _T]) -> _T:
        # Advance every DAG to now, then read. A callback that became due is
        # run outside the lock, and its DAG stays frozen until it returns.
        while True:
            with self._lock:
                due = self._advance_all(self._clock())
                if not due:
                    return read()
            self._fire(due)

    def _fire(self, due: list[_Dag]) -> None:
        # Every due DAG is thawed even if a callback raises; the first error
        # then reaches the caller.
        errors: list[Exception] = []
        for dag in due:
            try:
                if self._on_upgrade_succeeded is not None:
                    self._on_upgrade_succeeded(dag.version, dag.release)
            except Exception as error:
                errors.append(error)
            finally:
                with self._lock:
                    dag.callback_pending = False
        if errors:
            raise errors[0]

    def _advance_all(self, now: float) -> list[_Dag]:
        return [dag for dag in self._dags.values() if self._advance(dag, now)]

    def _advance(self, dag: _Dag, now: float) -> bool:
        """Run the DAG's due ticks; True when it stopped for a fresh callback."""
        for _ in range(_MAX_TICKS_PER_READ):
            if dag.next_tick is None or dag.callback_pending:
                return False
            tick = dag.next_tick
            at = dag.origin + (tick - dag.origin_tick) * self._quantum
            if at > now:
                return False

            self._tick(dag, tick, at)
            dag.last_tick = tick
            if dag.next_tick is not None:
                dag.next_tick = tick + 1
            if dag.callback_pending:
                return True
        raise RuntimeError(
            f"DAG {dag.dag_id} did not settle after {_MAX_TICKS_PER_READ} ticks"
        )

    def _tick(self, dag: _Dag, tick: int, at: float) -> None:
        self._run_executor(dag, tick, at)
        self._run_scheduler(dag, tick, at)

        if dag.state in _FINISHED or self._stalled(dag):
            dag.next_tick = None

    def _stalled(self, dag: _Dag) -> bool:
        node = dag.current_node
        return (
            self._hangs(dag, node)
            and node.operator != CANCEL
            and all(sub.state == RUNNING for sub in node.sub_tasks)
        )

    def _hangs(self, dag: _Dag, node: _Node) -> bool:
        return (
            "dag-never-finishes" in self._faults
            and dag.is_upgrade
            and node.stage == _STALL_STAGE
            and dag.operator == RUN
        )

    # The executor: sub-tasks made READY by the scheduler start one tick later
    # and finish two ticks after that.

    def _run_executor(self, dag: _Dag, tick: int, at: float) -> None:
        node = dag.current_node
        if node.operator == CANCEL:
            return  # the agent cancels the executor's tasks
        hangs = self._hangs(dag, node)
        for sub in node.sub_tasks:
            if sub.state == READY and tick > sub.since_tick:
                self._start_sub_task(node, sub, tick, at)
            elif sub.state == RUNNING and tick >= sub.since_tick + 2 and not hangs:
                self._finish_sub_task(dag, node, sub, tick, at)

    def _start_sub_task(self, node: _Node, sub: _SubTask, tick: int, at: float) -> None:
        sub.state, sub.since_tick = RUNNING, tick
        sub.start_time, sub.start_seq = self._wall(at), next(self._seq)
        sub.logs.append(f"{_verb(sub, 'Start')}: {node.spec.name.lower()}")

    def _finish_sub_task(
        self, dag: _Dag, node: _Node, sub: _SubTask, tick: int, at: float
    ) -> None:
        sub.since_tick, sub.end_time = tick, self._wall(at)
        failure = dag.failures.get(node.stage)
        if sub.operator == RUN and failure is not None:
            sub.state = FAILED
            sub.logs.append(failure)
            return
        sub.state = SUCCEED
        sub.logs.append(f"{_verb(sub, 'Finish')}: {node.spec.name.lower()}")

    # The scheduler: one step of the agent's advanceDag per tick.

    def _run_scheduler(self, dag: _Dag, tick: int, at: float) -> None:
        if dag.state == READY:
            dag.state, dag.start_time = RUNNING, self._wall(at)
            dag.stage = min(dag.stage, len(dag.nodes))
        if dag.state in _FINISHED:
            return

        node = dag.current_node
        self._advance_node(node, tick, at)
        if node.finished:
            self._after_node(dag, node, at)

    def _advance_node(self, node: _Node, tick: int, at: float) -> None:
        if node.state == PENDING:
            node.state, node.start_seq = RUNNING, next(self._seq)
            # StartNode writes the start time into both columns.
            node.start_time = node.end_time = self._wall(at)
        if node.finished:
            return

        handlers = {
            RUN: self._handle_run,
            RETRY: self._handle_retry,
            ROLLBACK: self._handle_rollback,
            CANCEL: self._handle_cancel,
        }
        done, succeeded = handlers[node.operator](node, tick, at)
        if done:
            node.state = SUCCEED if succeeded else FAILED
            node.end_time = self._wall(at)

    def _after_node(self, dag: _Dag, node: _Node, at: float) -> None:
        if node.state == FAILED:
            self._finish_dag(dag, FAILED, self._wall(at))
            return

        self._report_version(dag, node)
        step = -1 if dag.operator == ROLLBACK else 1
        next_stage = dag.stage + step
        if 1 <= next_stage <= len(dag.nodes):
            dag.stage = next_stage
        else:
            self._finish_dag(dag, SUCCEED, self._wall(at))

    def _finish_dag(self, dag: _Dag, state: str, end: datetime) -> None:
        dag.state, dag.end_time = state, end
        # A failed maintenance DAG keeps the cluster locked (§5.5).
        dag.is_finished = state == SUCCEED or not dag.is_maintenance
        dag.next_tick = None

    def _report_version(self, dag: _Dag, node: _Node) -> None:
        if (
            dag.is_upgrade
            and node.spec.name == _RESTART_NODE
            and node.operator in (RUN, RETRY)
            and not dag.version_reported
            and "version-not-updated" not in self._faults
        ):
            dag.version_reported = dag.callback_pending = True

    # Sub-task handlers, one per node operator (scheduler/task_handler.go).
    # Each returns (node finished, node succeeded).

    def _handle_run(self, node: _Node, tick: int, at: float) -> tuple[bool, bool]:
        done, succeeded = True, True
        for sub in node.sub_tasks:
            if sub.state == PENDING:
                self._set_ready(sub, RUN, tick)
            if sub.state in (READY, RUNNING):
                done = False
            elif sub.state == FAILED:
                succeeded = False
        return done, succeeded

    def _handle_retry(self, node: _Node, tick: int, at: float) -> tuple[bool, bool]:
        # A sub-task that failed before this retry is first rolled back, then
        # run again; one that failed during it fails the node.
        done, succeeded = True, True
        for sub in node.sub_tasks:
            fresh = sub.start_seq > node.start_seq
            if sub.state == PENDING or (
                sub.state == SUCCEED and fresh and sub.operator == ROLLBACK
            ):
                self._set_ready(sub, RUN, tick)
            elif sub.state == FAILED and not fresh:
                self._set_ready(sub, ROLLBACK, tick)
            elif sub.state == FAILED:
                succeeded = False
            if sub.state in (READY, RUNNING):
                done = False
        return done, succeeded

    def _handle_rollback(self, node: _Node, tick: int, at: float) -> tuple[bool, bool]:
        done, succeeded = True, True
        for sub in node.sub_tasks:
            if sub.operator == RUN and sub.state == PENDING:
                continue  # never ran: nothing to undo
            if sub.state not in (READY, RUNNING) and (
                sub.operator != ROLLBACK or sub.start_seq < node.start_seq
            ):
                self._set_ready(sub, ROLLBACK, tick)
            if sub.state in (READY, RUNNING):
                done = False
            elif sub.state == FAILED:
                succeeded = False
        return done, succeeded

    def _handle_cancel(self, node: _Node, tick: int, at: float) -> tuple[bool, bool]:
        for sub in node.sub_tasks:
            if sub.state in (READY, RUNNING):
                sub.state, sub.since_tick = FAILED, tick
                sub.end_time = self._wall(at)
                sub.logs.append(CANCELLED_LOG)
        return True, False

    def _set_ready(self, sub: _SubTask, operator: str, tick: int) -> None:
        sub.state, sub.operator, sub.since_tick = READY, operator, tick
        sub.execute_times += 1

    # -- time ------------------------------------------------------------------------

    def _wall(self, at: float) -> datetime:
        return self._wall0 + timedelta(seconds=at - self._clock0)

    def _epoch(self) -> datetime:
        return datetime.fromtimestamp(0, tz=self._wall0.tzinfo)

    # -- rendering -------------------------------------------------------------------

    def _render_dag(self, dag: _Dag, *, show_details: bool) -> dict[str, Any]:
        max_stage = len(dag.nodes)
        dto: dict[str, Any] = {
            "id": f"1{dag.dag_id}",
            # dag-id-mismatch: dag_id drifts, so that the id still resolves.
            "dag_id": dag.dag_id + int("dag-id-mismatch" in self._faults),
            "name": dag.name,
            "stage": self._shown_stage(dag),
            "max_stage": max_stage - int("dag-wrong-max-stage" in self._faults),
            "maintenance_type": dag.maintenance_type,
            "maintenance_key": "",
            "state": dag.state,
            "operator": dag.operator,
            "start_time": go_time(dag.start_time),
            "end_time": go_time(dag.end_time),
            "additional_data": None,
            "nodes": None,
        }
        if show_details:
            dto["nodes"] = [
                self._render_node(node, view="dag", details=True) for node in dag.nodes
            ]
            # SetVisible merges the nodes' data: {} as soon as there are two.
            dto["additional_data"] = {} if max_stage > 1 else None
        return dto

    def _shown_stage(self, dag: _Dag) -> int:
        node = dag.current_node
        slips = (
            "dag-stage-backwards" in self._faults
            and dag.state == RUNNING
            and dag.operator == RUN
            and dag.stage == _BACKWARDS_STAGE
            and node.state == RUNNING
            and all(sub.state not in (PENDING, READY) for sub in node.sub_tasks)
        )
        return dag.stage - 1 if slips else dag.stage

    def _render_node(self, node: _Node, *, view: str, details: bool) -> dict[str, Any]:
        subs = (
            [self._render_sub_task(sub) for sub in node.sub_tasks] if details else None
        )
        several = subs is not None and len(subs) > 1
        return {
            "id": f"1{node.node_id}",
            "node_id": node.node_id,
            "name": node.spec.name,
            "state": self._shown_node_state(node),
            "operator": node.operator,
            "start_time": go_time(node.start_time),
            "end_time": go_time(node.end_time),
            # Inside a DAG the nodes are made invisible again; alone, a node
            # shows the merge of its sub-tasks' data ({} from two on).
            "additional_data": {} if view == "node" and several else None,
            "sub_tasks": subs,
        }

    def _shown_node_state(self, node: _Node) -> str:
        if (
            "node-state-disagrees" in self._faults
            and node.state == RUNNING
            and any(sub.state == RUNNING for sub in node.sub_tasks)
        ):
            return SUCCEED
        if "dag-state-outside-enum" in self._faults and node.state == SUCCEED:
            return "DONE"
        return node.state

    def _render_sub_task(self, sub: _SubTask) -> dict[str, Any]:
        logs = None if sub.state in (PENDING, READY) else list(sub.logs)
        return {
            "id": f"1{sub.task_id}",
            "task_id": sub.task_id,
            "name": sub.name,
            "state": sub.state,
            "operator": sub.operator,
            "start_time": go_time(sub.start_time),
            "end_time": go_time(sub.end_time),
            "additional_data": None,
            "execute_times": sub.execute_times,
            "execute_agent": {"ip": sub.agent[0], "port": sub.agent[1]},
            "task_logs": logs,
        }


def _failures(
    specs: Sequence[NodeSpec], package_present: bool, fail_at_stage: int | None
) -> dict[int, str]:
    failures: dict[int, str] = {}
    if fail_at_stage is not None:
        if not 1 <= fail_at_stage <= len(specs):
            raise ValueError(
                f"fail_at_stage must be between 1 and {len(specs)}, "
                f"got {fail_at_stage!r}"
            )
        name = specs[fail_at_stage - 1].name.lower()
        failures[fail_at_stage] = (
            f"ERROR: [Common.Unexpected]: Unexpected error: {name} failed "
            "(a failure injected by the mock)"
        )
    if not package_present:
        failures[2] = MISSING_PACKAGE_LOG
    return failures


def _verb(sub: _SubTask, verb: str) -> str:
    return f"{verb} rollback" if sub.operator == ROLLBACK else verb
