"""Fixtures for the mock agent's tests: started agents, one per profile.

``agent_factory`` starts mock agents and, at teardown, stops them and fails the
test if any handler raised. The byte-exact client lives in ``wire.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from obshell_contract import crypto
from obshell_contract.mock import MockAgent
from tests.mock.wire import PROFILES, AgentFactory, Wire


@functools.cache
def _key_pem(bits: int) -> bytes:
    # Key generation is most of an agent's start-up; tests share one per size.
    return crypto.private_key_pem(crypto.generate_private_key(bits))


@pytest.fixture
def agent_factory() -> Iterator[AgentFactory]:
    """Start mock agents with overrides; stop them and check for handler errors."""
    started: list[MockAgent] = []

    def start(**overrides: Any) -> MockAgent:
        # Fast DAGs; a test that needs one to keep running asks for LONG_STAGE.
        overrides.setdefault("stage_seconds", 0.005)
        overrides.setdefault("key_pem", _key_pem(overrides.get("key_bits", 1024)))
        agent = MockAgent(**overrides)
        agent.start()
        started.append(agent)
        return agent

    yield start

    for agent in started:
        agent.stop()
    errors = [error for agent in started for error in agent.handler_errors]
    assert errors == [], f"the mock's handlers raised: {errors!r}"


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def agent(agent_factory: AgentFactory, profile: str) -> MockAgent:
    """A started agent with the default configuration, once per profile."""
    return agent_factory(profile=profile)


@pytest.fixture
def wire(agent: MockAgent) -> Wire:
    return Wire(agent)
