"""Fifty encrypted clients hammer one mock agent for ten seconds.

Each thread has its own :class:`ObshellClient` (own key fetch, own session) and
mixes unauthenticated reads, upgrade attempts, DAG polls and operator calls. A
monitor thread samples the engine meanwhile. Afterwards: every request got an
envelope and was logged by the mock, no handler failed, and the DAGs never broke
the maintenance rules.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from obshell_contract.client import ObshellClient, Reply
from obshell_contract.mock import MockAgent
from obshell_contract.mock.dag import OPERATORS, STATES
from obshell_contract.mock.upgrade import compare_version

CLIENTS = 50
SECONDS = 10.0
PASSWORD = "root-pass"
# Enough newer packages for an upgrade every half second or so.
PACKAGES = tuple(f"4.5.0.{n}-1000000120260509{n:02d}.el7" for n in range(1, 80))
LEGAL = {
    ("GET", "/api/v1/info"): {200},
    ("GET", "/api/v1/secret"): {200},
    ("POST", "/api/v1/agent/upgrade"): {200, 400, 500},
    ("GET", "/api/v1/task/dag/maintain/ob"): {200, 404},
    ("GET", "/api/v1/task/dag"): {200},
    ("POST", "/api/v1/task/dag"): {200, 400},
}

AgentFactory = Callable[..., MockAgent]


@dataclass
class Tally:
    """What one client sent and what looked wrong to it."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    stages: dict[str, int] = field(default_factory=dict)

    def note(self, method: str, reply: Reply) -> None:
        path = _route(urllib.parse.urlsplit(reply.exchange.url).path)
        self.sent[(method, path)] += 1
        envelope = reply.envelope
        if envelope.get("status") != reply.http_status or "successful" not in envelope:
            self.problems.append(f"{method} {path}: no envelope: {reply.text[:200]!r}")
        elif reply.http_status not in LEGAL[(method, path)]:
            self.problems.append(
                f"{method} {path}: {reply.http_status} {reply.err_code}"
            )


def _route(path: str) -> str:
    # The request log has the raw path; DAG ids are folded into their route.
    if path.startswith("/api/v1/task/dag/") and path != "/api/v1/task/dag/maintain/ob":
        return "/api/v1/task/dag"
    return path


def test_fifty_clients_for_ten_seconds(agent_factory: AgentFactory) -> None:
    agent = agent_factory(stage_seconds=0.05, packages=PACKAGES)
    stop = threading.Event()
    tallies = [Tally() for _ in range(CLIENTS)]
    clients = [ObshellClient(agent.url, PASSWORD, timeout=30) for _ in range(CLIENTS)]
    monitor = Tally()

    threads = [
        threading.Thread(target=_client, args=(agent, c, t, stop, n))
        for n, (c, t) in enumerate(zip(clients, tallies, strict=True))
    ]
    threads.append(threading.Thread(target=_monitor, args=(agent, monitor, stop)))
    for thread in threads:
        thread.start()
    stop.wait(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(30)

    assert not any(thread.is_alive() for thread in threads)
    assert [p for t in [*tallies, monitor] for p in t.problems] == []
    assert agent.handler_errors == []
    _assert_nothing_lost(agent, clients, tallies)
    _assert_dags_settle_legally(agent)


def _client(
    agent: MockAgent, client: ObshellClient, tally: Tally, stop: threading.Event, n: int
) -> None:
    rng = random.Random(n)
    actions = [_info, _secret, _upgrade, _upgrade, _poll, _poll, _poll, _operate]
    with client:
        while not stop.is_set():
            rng.choice(actions)(agent, client, tally, rng)


def _info(agent: MockAgent, client: ObshellClient, tally: Tally, rng: Any) -> None:
    tally.note("GET", client.info())


def _secret(agent: MockAgent, client: ObshellClient, tally: Tally, rng: Any) -> None:
    tally.note("GET", client.secret())


def _upgrade(agent: MockAgent, client: ObshellClient, tally: Tally, rng: Any) -> None:
    # Mostly the next few packages up, sometimes an old one (ToLowerVersion).
    newer = [
        p for p in PACKAGES if compare_version(p.split(".el7")[0], agent.version) > 0
    ]
    package = rng.choice(newer[:3] or PACKAGES) if rng.random() < 0.8 else PACKAGES[0]
    version, release = package.split("-", 1)
    tally.note("POST", client.upgrade_agent(version, release))


def _last_dag(client: ObshellClient, tally: Tally) -> str | None:
    reply = client.last_maintenance_dag()
    tally.note("GET", reply)
    return str(reply.data["id"]) if reply.http_status == 200 else None


def _poll(agent: MockAgent, client: ObshellClient, tally: Tally, rng: Any) -> None:
    gid = _last_dag(client, tally)
    if gid is None:
        return
    reply = client.get_dag(gid, show_details=rng.random() < 0.5)
    tally.note("GET", reply)
    if reply.http_status == 200:
        _check_dag(reply.data, tally)


def _operate(agent: MockAgent, client: ObshellClient, tally: Tally, rng: Any) -> None:
    gid = _last_dag(client, tally)
    if gid is not None:
        operator = rng.choice(["cancel", "retry", "rollback", "pass", "bogus"])
        tally.note("POST", client.operate_dag(gid, operator))


def _monitor(agent: MockAgent, tally: Tally, stop: threading.Event) -> None:
    while not stop.wait(0.01):
        dags = agent.dags()
        holding = [
            d["id"]
            for d in dags
            if d["maintenance_type"] == 2 and d["state"] != "SUCCEED"
        ]
        if len(holding) > 1:
            tally.problems.append(f"{holding} hold the maintenance lock together")
        for dto in dags:
            _check_dag(dto, tally)


def _check_dag(dto: dict[str, Any], tally: Tally) -> None:
    states = [dto["state"]] + [n["state"] for n in dto["nodes"] or ()]
    if not set(states) <= set(STATES) or dto["operator"] not in OPERATORS:
        tally.problems.append(f"{dto['id']}: {states} / {dto['operator']}")

    # A rollback walks the stage back; its marks stay on the DAG's nodes, so
    # only a DTO with its nodes can tell a rollback from a regression.
    if dto["nodes"] is None:
        return
    if "ROLLBACK" in {dto["operator"], *(n["operator"] for n in dto["nodes"])}:
        tally.stages.pop(dto["id"], None)
        return
    if dto["stage"] < tally.stages.get(dto["id"], 0):
        tally.problems.append(f"{dto['id']}: stage went back to {dto['stage']}")
    tally.stages[dto["id"]] = dto["stage"]


def _assert_nothing_lost(
    agent: MockAgent, clients: list[ObshellClient], tallies: list[Tally]
) -> None:
    __tracebackhide__ = True
    sent: Counter[tuple[str, str]] = sum((t.sent for t in tallies), Counter())
    sent[("GET", "/api/v1/secret")] += sum(c.auth.key_fetches for c in clients)
    assert sum(c.auth.resends for c in clients) == 0

    # The mock logs a request just after answering it: give the last ones time.
    deadline = time.monotonic() + 5
    while True:
        logged = Counter((e["method"], _route(e["path"])) for e in agent.request_log())
        if logged == sent or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged == sent
    # A sanity floor: about 2,000 go through on 2 cores, client and mock sharing
    # one interpreter.
    assert sum(sent.values()) > 500, f"only {sum(sent.values())} requests in 10 s"


def _assert_dags_settle_legally(agent: MockAgent) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + 5
    while any(d["state"] in ("READY", "RUNNING") for d in agent.dags()):
        assert time.monotonic() < deadline, "DAGs still running 5 s after the load"
        time.sleep(0.05)

    dags = agent.dags()
    assert len(dags) > 3, f"only {len(dags)} DAGs were created"
    assert {d["state"] for d in dags} <= {"SUCCEED", "FAILED"}
    # Only the newest maintenance DAG may still hold the lock (FAILED).
    assert all(d["state"] == "SUCCEED" for d in dags[:-1]), [d["state"] for d in dags]
