"""The official Python SDK (``obshell`` 0.0.9) drives the mock agent end to end."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from obshell import ClientSet, OBShellHandleError, TaskExecuteFailedError
from obshell.auth import PasswordAuth
from obshell.service import client_v1

from obshell_contract import crypto
from obshell_contract.mock import MockAgent

PASSWORD = "root-pass"
AGENT_PASSWORD = "agent-pass"
NEWER = ("4.5.0.1", "100000012026050802.el7")  # the mock's default package
ABSENT = ("4.5.0.2", "100000012026050803.el7")  # never uploaded
MISSING = "ERROR: [Common.Unexpected]: Unexpected error: record not found"
UPGRADE = "/api/v1/agent/upgrade"

AgentFactory = Callable[..., MockAgent]


class _QuickTime:
    """Stands in for ``time`` inside the SDK's client module only.

    ``wait_dag_succeed`` sleeps 3 s between polls; the mock's DAG takes well
    under a second, so a 3 s nap would only make the test slow.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.05))


@pytest.fixture(autouse=True)
def _quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_v1, "time", _QuickTime())


def sdk(agent: MockAgent, password: str = PASSWORD, **auth: Any) -> Any:
    """An SDK client with its own ``PasswordAuth``: the default one is shared
    by every ``ClientSet`` and would keep the first agent's public key."""
    url = urllib.parse.urlsplit(agent.url)
    return ClientSet(
        url.hostname, url.port, PasswordAuth(password, **auth), timeout=10
    ).v1


def upgrade_posts(agent: MockAgent) -> int:
    return sum(
        1
        for entry in agent.request_log()
        if (entry["method"], entry["path"]) == ("POST", UPGRADE)
    )


def test_upgrade_agent_sync_reaches_succeed(agent_factory: AgentFactory) -> None:
    agent = agent_factory(stage_seconds=0.02)

    dag = sdk(agent).upgrade_agent_sync(*NEWER)

    assert (dag.state, dag.name) == ("SUCCEED", f"Upgrade obshell {'-'.join(NEWER)}")
    assert dag.stage == dag.max_stage == 9
    assert [node.state for node in dag.nodes] == ["SUCCEED"] * 9
    assert agent.version == "4.5.0.1-100000012026050802"
    assert upgrade_posts(agent) == 1


def test_a_wrong_password_is_a_handle_error_10008(agent_factory: AgentFactory) -> None:
    agent = agent_factory()

    with pytest.raises(OBShellHandleError) as caught:
        sdk(agent, "not-the-password").upgrade_agent(*NEWER)

    assert caught.value.code == 10008
    assert caught.value.err_code == "Security.Authentication.IncorrectOceanbasePassword"
    assert caught.value.message == "Unauthorized: OceanBase password is incorrect"
    # The SDK re-selects its auth method after a 10008 and sends once more.
    assert upgrade_posts(agent) == 2
    assert agent.dags() == []


def test_a_failed_dag_is_a_task_execute_failed_error(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(profile="obshell-4.5", stage_seconds=0.02)

    with pytest.raises(TaskExecuteFailedError) as caught:
        sdk(agent).upgrade_agent_sync(*ABSENT)

    name = f"Upgrade obshell {'-'.join(ABSENT)}"
    assert caught.value.message == f"{agent.address} {MISSING}\n"
    assert (
        str(caught.value)
        == f"Task '{name}' execution failed: {agent.address} {MISSING}\n"
    )
    assert (caught.value.dag.state, caught.value.dag.stage) == ("FAILED", 2)
    assert agent.version == "4.5.0.0-100000012026050801"


def test_the_agent_password_header_works(agent_factory: AgentFactory) -> None:
    agent = agent_factory(agent_password=AGENT_PASSWORD)

    # A wrong root password proves the SDK chose X-OCS-Agent-Header (the
    # agent reports "security": true) and the mock checked the agent password.
    dag = sdk(agent, "wrong-root", agent_password=AGENT_PASSWORD).upgrade_agent_sync(
        *NEWER
    )
    with pytest.raises(OBShellHandleError) as refused:
        sdk(agent, "wrong-root", agent_password="wrong-agent").get_dag(dag.generic_id)

    assert dag.state == "SUCCEED"
    assert refused.value.code == 10008
    assert refused.value.err_code == "Security.Authentication.IncorrectAgentPassword"


def test_a_512_bit_key_works_with_the_sdk(agent_factory: AgentFactory) -> None:
    agent = agent_factory(key_bits=512)

    dag = sdk(agent).upgrade_agent_sync(*NEWER)

    assert crypto.load_public_key(agent.public_key).key_size == 512
    assert dag.state == "SUCCEED"
