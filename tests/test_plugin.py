"""The suite's options and targets: usage errors, live agents, several agents, xdist."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from obshell_contract.mock import MockAgent
from tests.support.suite import clause_statuses, run_pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mock-fault", "nope"], "--mock-fault 'nope' is not a known fault; known: "),
        (
            ["--mock-profile", "obshell-9"],
            "--mock-profile 'obshell-9': expected one of ",
        ),
        (
            ["--obshell-url", "ftp://x", "--obshell-password", "p"],
            "--obshell-url 'ftp://x': expected http://HOST:PORT",
        ),
        (
            ["--obshell-url", "http://127.0.0.1:1"],
            "--obshell-password (or OBSHELL_PASSWORD) is required",
        ),
        (
            ["--dag-timeout", "soon"],
            "--dag-timeout 'soon': expected a number of seconds",
        ),
        (["--dag-timeout", "-1"], "--dag-timeout '-1': expected a positive number"),
        (
            ["--upgrade-version", "4.5.1.0"],
            "--upgrade-version and --upgrade-release go together",
        ),
        (
            ["--upgrade-version", "4.5", "--upgrade-release", "1.el7"],
            "--upgrade-version '4.5'",
        ),
    ],
    ids=[
        "fault",
        "profile",
        "url",
        "password",
        "timeout-text",
        "timeout-negative",
        "half-package",
        "bad-version",
    ],
)
def test_bad_option_is_one_line_usage_error(args: list[str], message: str) -> None:
    result = run_pytest("contract_tests/test_discovery.py", *args)

    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def live_agent() -> Iterator[MockAgent]:
    """A mock started on its own, reached as a live agent by URL."""
    with MockAgent(password="live-Secret-1", stage_seconds=0.05) as agent:
        yield agent


def test_live_run_without_allow_upgrade_sends_no_upgrade(
    live_agent: MockAgent, tmp_path: Path
) -> None:
    report = tmp_path / "c.json"

    result = run_pytest(
        "contract_tests",
        "--obshell-url",
        live_agent.url,
        "--obshell-password",
        "live-Secret-1",
        "--hypothesis-profile",
        "obshell-quick",
        "--compliance-json",
        str(report),
        "--compliance-report",
        str(tmp_path / "c.html"),
    )

    statuses = clause_statuses(report)
    assert result.returncode == 0, result.stdout[-2000:]
    assert statuses["ACC-01"] == "not run"
    assert statuses["DAG-05"] == "not run"
    assert statuses["ENC-01"] == "passed"
    assert live_agent.dags() == []


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_live_run_with_allow_upgrade_follows_the_dag(
    tmp_path: Path, workers: list[str]
) -> None:
    """On one live agent the upgrade tests share its one upgrade, even on xdist."""
    with MockAgent(password="live-Secret-2", stage_seconds=0.05) as agent:
        version, _, release = sorted(agent.packages)[0].partition("-")
        report = tmp_path / "c.json"

        result = run_pytest(
            "contract_tests",
            "--obshell-url",
            agent.url,
            "--obshell-password",
            "live-Secret-2",
            "--allow-upgrade",
            "--upgrade-version",
            version,
            "--upgrade-release",
            release,
            "--hypothesis-profile",
            "obshell-quick",
            "--compliance-json",
            str(report),
            "--compliance-report",
            str(tmp_path / "c.html"),
            *workers,
        )
        final_version = agent.version
        upgrades = [dag for dag in agent.dags() if dag["operator"] == "RUN"]

    statuses = clause_statuses(report)
    assert result.returncode == 0, result.stdout[-3000:]
    assert statuses["DAG-06"] == "passed"
    assert statuses["CON-01"] == "passed"
    assert final_version.startswith(version)
    # One real upgrade (and one upgrade check); the rest were rolled back.
    assert sorted(dag["name"].split()[1] for dag in upgrades) == ["check", "obshell"]


def test_two_agents_in_one_run(live_agent: MockAgent, tmp_path: Path) -> None:
    with MockAgent(password="live-Secret-1", profile="obshell-4.5") as second:
        result = run_pytest(
            "contract_tests/test_discovery.py",
            "contract_tests/test_envelope.py",
            "--obshell-url",
            live_agent.url,
            "--obshell-url",
            second.url,
            "--obshell-password",
            "live-Secret-1",
            "-q",
            "--no-compliance-report",
        )

    assert result.returncode == 0, result.stdout[-2000:]
    assert f"[{live_agent.url}]" in result.stdout or "passed" in result.stdout
    assert "22 passed" in result.stdout


def test_suite_under_xdist(tmp_path: Path) -> None:
    report = tmp_path / "c.json"

    result = run_pytest(
        "contract_tests",
        "-n",
        "2",
        "--hypothesis-profile",
        "obshell-quick",
        "--compliance-json",
        str(report),
        "--compliance-report",
        str(tmp_path / "c.html"),
    )

    assert result.returncode == 0, result.stdout[-2000:]
    assert set(clause_statuses(report).values()) == {"passed"}


def test_failing_case_replays_with_fresh_encryption(tmp_path: Path) -> None:
    suite = run_pytest(
        "contract_tests/test_encryption.py",
        "-k",
        "refused_without_a_dag and wrong-password",
        "--mock-fault",
        "ignore-password",
        "--compliance-report",
        str(tmp_path / "c.html"),
        "--compliance-json",
        str(tmp_path / "c.json"),
    )
    cases = sorted((tmp_path / "cases").glob("*.json"))

    outcomes = {}
    for faults in ((), ("ignore-password",)):
        with MockAgent(password="replay-Pw", faults=faults) as agent:
            replay = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "obshell_contract.replay",
                    *map(str, cases),
                    "--url",
                    agent.url,
                    "--password",
                    "replay-Pw",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        outcomes[faults] = (replay.returncode, replay.stdout)

    assert suite.returncode == 1, suite.stdout[-2000:]
    assert len(cases) == 1
    fixed, still_failing = outcomes[()], outcomes[("ignore-password",)]
    assert fixed[0] == 0, fixed[1]
    assert "FIXED" in fixed[1]
    assert still_failing[0] == 1, still_failing[1]
    assert "FAILED" in still_failing[1]


def test_clauses_newer_than_the_agent_are_not_applicable(tmp_path: Path) -> None:
    """A 4.2.5 agent predates the errCode scheme: its SHOULD clauses do not apply."""
    old = MockAgent(
        password="old-Pw-1", agent_version="4.2.5.0-100000012024112601", key_bits=512
    )
    report = tmp_path / "c.json"

    with old:
        run_pytest(
            "contract_tests/test_discovery.py",
            "contract_tests/test_encryption.py",
            "--obshell-url",
            old.url,
            "--obshell-password",
            "old-Pw-1",
            "--compliance-json",
            str(report),
            "--compliance-report",
            str(tmp_path / "c.html"),
        )

    statuses = clause_statuses(report)
    assert statuses["ENC-02"] == "skipped"
    assert statuses["ENC-04"] == "skipped"
    assert statuses["ENC-01"] == "passed"
    assert statuses["DISC-02"] == "passed"  # 512 bits is right before 4.4.2
