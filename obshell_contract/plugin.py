"""The contract suite's pytest plugin: options, targets, clause bookkeeping, evidence.

Loaded through the ``pytest11`` entry point, so ``pytest contract_tests`` needs
no configuration: with no ``--obshell-url`` the embedded mock agent starts on a
free port. The reporting side lives in :mod:`obshell_contract.report.plugin`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from obshell_contract import strategies
from obshell_contract.checks import ContractViolation, Observer
from obshell_contract.clauses import Clause, load_catalogue
from obshell_contract.client import ObshellClient
from obshell_contract.errors import UsageError
from obshell_contract.evidence import NOT_APPLICABLE_PREFIX, NOT_RUN_PREFIX, Evidence
from obshell_contract.redaction import Redactor
from obshell_contract.settings import WORKER_PASSWORD, RunSettings, read_settings
from obshell_contract.targets import Target, embedded_mock, probe

__all__ = ["MOCK", "RunSettings", "load_hypothesis_profile", "run_settings"]

pytest_plugins = ["obshell_contract.report.plugin"]

MOCK = "mock"

_settings_key = pytest.StashKey["RunSettings"]()
_evidence_key = pytest.StashKey[Evidence]()
_target_key = pytest.StashKey[Target]()


def run_settings(config: pytest.Config) -> RunSettings:
    """The run's validated options; a bad value is a one-line usage error."""
    if _settings_key not in config.stash:
        try:
            config.stash[_settings_key] = read_settings(config)
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_settings_key]


# -- options ---------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("obshell-contract", "obshell contract suite")
    group.addoption(
        "--obshell-url",
        action="append",
        default=[],
        metavar="URL",
        help="Agent to check (repeatable; env OBSHELL_URL). Default: the embedded mock.",
    )
    group.addoption(
        "--obshell-password",
        default=None,
        metavar="PASSWORD",
        help="root@sys password (env OBSHELL_PASSWORD). The embedded mock uses it too.",
    )
    group.addoption(
        "--obshell-agent-password",
        default=None,
        metavar="PASSWORD",
        help="Agent password, sent in X-OCS-Agent-Header (env OBSHELL_AGENT_PASSWORD).",
    )
    group.addoption(
        "--mock-profile",
        default="reference",
        metavar="NAME",
        help="Profile of the embedded mock: reference (default) or obshell-4.5.",
    )
    group.addoption(
        "--mock-fault",
        action="append",
        default=[],
        metavar="NAME",
        help="Break the embedded mock on purpose (repeatable); see obshell-mock --list-faults.",
    )
    group.addoption(
        "--allow-upgrade",
        action="store_true",
        help="Let the run start real upgrades on a live agent (needs --upgrade-version "
        "and --upgrade-release).",
    )
    group.addoption("--upgrade-version", default=None, metavar="VERSION")
    group.addoption("--upgrade-release", default=None, metavar="RELEASE")
    group.addoption(
        "--dag-timeout",
        default="60",
        metavar="SECONDS",
        help="Deadline for an upgrade DAG to finish (default 60).",
    )
    group.addoption(
        "--mock-stage-seconds",
        default="0.2",
        metavar="SECONDS",
        help="Time each DAG stage takes in the embedded mock (default 0.2).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(*ids): the contract clauses this test checks"
    )
    run_settings(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker runs with the controller's password."""
    node.workerinput[WORKER_PASSWORD] = run_settings(node.config).password


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """On a live agent, the tests that upgrade it run on one worker, in order."""
    if run_settings(config).embedded:
        return None
    from obshell_contract.scheduling import UpgradeScheduling

    return UpgradeScheduling(config, log)


# -- hypothesis profile, clause bookkeeping --------------------------------------


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    contract_items = [item for item in items if item.get_closest_marker("clause")]
    if not contract_items:
        return

    _check_markers(contract_items)


def load_hypothesis_profile(config: pytest.Config) -> None:
    """Pick the suite's profile unless ``--hypothesis-profile`` chose one.

    Called by the suite's conftest as it loads, before any ``@given`` test is
    collected, so the project's own tests keep Hypothesis' defaults.
    """
    strategies.register_profiles()
    if config.getoption("hypothesis_profile", None) is None:
        hypothesis_settings.load_profile(_default_profile(run_settings(config)))


def _default_profile(settings: RunSettings) -> str:
    if not settings.embedded:
        return strategies.PROFILE_LIVE
    if os.environ.get("CI"):
        return strategies.PROFILE_CI
    return strategies.PROFILE_MOCK


def _check_markers(items: list[pytest.Item]) -> None:
    catalogue = load_catalogue()
    for item in items:
        for clause_id in clause_ids(item):
            if clause_id not in catalogue:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.clause({clause_id!r}) names no clause "
                    f"of {len(catalogue)} in contract_tests/clauses.toml"
                )


def clause_ids(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for marker in item.iter_markers("clause"):
        ids.extend(str(arg) for arg in marker.args)
    return ids


def item_clauses(item: pytest.Item) -> list[Clause]:
    catalogue = load_catalogue()
    return [catalogue[clause_id] for clause_id in clause_ids(item)]


# -- evidence --------------------------------------------------------------------


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """What this test observed; the report shows it for failures."""
    return request.node.stash.setdefault(_evidence_key, Evidence())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not item.get_closest_marker("clause"):
        return report

    _keep_case(item, call)
    settings = run_settings(item.config)
    redactor = Redactor(settings.secrets)
    found = item.stash.get(_evidence_key, None)
    if found is not None and not found.is_empty():
        compact = redactor.text(found.compacted().to_json())
        report.obshell_evidence = compact  # type: ignore[attr-defined]
    target = item.stash.get(_target_key, None)
    if target is not None and target.facts is not None:
        facts = json.dumps(target.facts.to_dict())
        report.obshell_target = facts  # type: ignore[attr-defined]
    return report


def _keep_case(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    # The request that broke the clause, in plaintext, for the replay command.
    if call.excinfo is None or not isinstance(call.excinfo.value, ContractViolation):
        return
    case = call.excinfo.value.case
    if case is not None:
        item.stash.setdefault(_evidence_key, Evidence()).cases.append(case)


def remember_target(item: pytest.Item, target: Target) -> None:
    item.stash[_target_key] = target


# -- targets ---------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Several --obshell-url values: every test runs once per agent.
    settings = run_settings(metafunc.config)
    if "target" in metafunc.fixturenames and len(settings.urls) > 1:
        metafunc.parametrize(
            "target", settings.urls, indirect=True, scope="session", ids=settings.urls
        )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The agent under test, probed; the embedded mock when no URL was given."""
    settings = run_settings(request.config)
    url = getattr(request, "param", None) or (
        settings.urls[0] if settings.urls else MOCK
    )
    if url == MOCK:
        with embedded_mock(settings.mock_config()) as mock_target:
            yield mock_target
        return

    live = Target(
        url=url,
        password=settings.password,
        agent_password=settings.agent_password,
        package=settings.upgrade if settings.allow_upgrade else None,
    )
    probe(live)
    yield live


@pytest.fixture
def fresh_target(request: pytest.FixtureRequest, target: Target) -> Iterator[Target]:
    """An agent with no DAG history: a new embedded mock, or the live agent itself."""
    if not target.is_mock:
        yield target
        return
    with embedded_mock(run_settings(request.config).mock_config()) as mock_target:
        yield mock_target


@pytest.fixture(autouse=True)
def _clause_applicability(request: pytest.FixtureRequest) -> None:
    """Skip, with the reason, clauses the agent's version or the options exclude."""
    if not request.node.get_closest_marker("clause"):
        return
    target: Target = request.getfixturevalue("target")
    remember_target(request.node, target)
    version = target.facts.agent_version if target.facts else None

    for clause in item_clauses(request.node):
        if not clause.applies_to(version):
            pytest.skip(
                f"{NOT_APPLICABLE_PREFIX}{clause.id} applies from {clause.since}, "
                f"the agent is {version}"
            )
        if clause.needs == "upgrade" and not target.may_upgrade:
            pytest.skip(
                f"{NOT_RUN_PREFIX}{clause.id} starts a real upgrade; pass --allow-upgrade "
                "with --upgrade-version and --upgrade-release to run it"
            )


@pytest.fixture
def client_factory(
    request: pytest.FixtureRequest, evidence: Evidence
) -> Iterator[Callable[..., ObshellClient]]:
    """Make clients whose every reply is checked against the envelope clauses."""
    made: list[ObshellClient] = []

    def make(target: Target, **overrides: Any) -> ObshellClient:
        options: dict[str, Any] = {
            "password": target.password,
            "agent_password": target.agent_password,
        }
        options.update(overrides)
        client = ObshellClient(
            target.url, on_reply=Observer(evidence, target.secrets), **options
        )
        made.append(client)
        return client

    yield make
    for client in made:
        evidence.exchanges.extend(client.recorder.to_list())
        client.close()


@pytest.fixture
def client(
    client_factory: Callable[..., ObshellClient], target: Target
) -> ObshellClient:
    """An encrypting client for the shared target."""
    return client_factory(target)
