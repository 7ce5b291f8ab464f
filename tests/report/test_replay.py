"""``obshell-contract-replay`` against real mock agents: FIXED, FAILED, usage errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obshell_contract.mock import MockAgent
from obshell_contract.replay import main

PASSWORD = "Replay-Pw-71!"
PLAIN_BODY_CASE = {
    "method": "POST",
    "path": "/api/v1/agent/upgrade",
    "body": {"version": "4.5.0.1", "release": "100000012026050802.el7"},
    "forgery": "plain-body",
    "expect": {"rejected": True, "status_class": "4xx"},
}
MALFORMED_VERSION_CASE = {
    "method": "POST",
    "path": "/api/v1/agent/upgrade",
    "body": {"version": "abc", "release": "1.el7"},
    "forgery": None,
    "expect": {"status": 400, "err_code": "Agent.Version.Invalid"},
}


@pytest.fixture
def agent(request: pytest.FixtureRequest) -> Iterator[MockAgent]:
    overrides = getattr(request, "param", {})
    with MockAgent(password=PASSWORD, **overrides) as running:
        yield running


def cases_file(tmp_path: Path, *cases: dict[str, Any]) -> Path:
    path = tmp_path / "case.json"
    content = {
        "nodeid": "contract_tests/t.py::t",
        "clauses": ["ENC-14"],
        "cases": list(cases),
    }
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def replay(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(args), out=out)
    return status, out.getvalue()


def test_cases_a_compliant_agent_meets_are_fixed(
    agent: MockAgent, tmp_path: Path
) -> None:
    path = cases_file(tmp_path, PLAIN_BODY_CASE, MALFORMED_VERSION_CASE)

    status, out = replay(str(path), "--url", agent.url, "--password", PASSWORD)

    assert status == 0
    lines = out.splitlines()
    assert lines[1].startswith(
        "FIXED   case 1: POST /api/v1/agent/upgrade (forgery plain-body): HTTP 4"
    )
    assert lines[2].startswith(
        "FIXED   case 2: POST /api/v1/agent/upgrade: HTTP 400 Agent.Version.Invalid"
    )
    assert lines[-1].startswith(
        "obshell-contract-replay: 0 still failing, 2 fixed, 0 not rebuildable"
    )


@pytest.mark.parametrize("agent", [{"faults": ("accept-plain-body",)}], indirect=True)
def test_a_case_the_agent_still_breaks_fails_with_exit_1(
    agent: MockAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSHELL_PASSWORD", PASSWORD)
    path = cases_file(tmp_path, PLAIN_BODY_CASE, MALFORMED_VERSION_CASE)

    status, out = replay(str(path), "--url", agent.url)

    assert status == 1
    assert (
        "FAILED  case 1: POST /api/v1/agent/upgrade (forgery plain-body): expected rejected True; expected status_class '4xx'; got HTTP 200 successful"
        in out
    )
    assert "FIXED   case 2" in out


def test_each_replay_encrypts_afresh(agent: MockAgent, tmp_path: Path) -> None:
    path = cases_file(tmp_path, MALFORMED_VERSION_CASE)

    first = replay(str(path), "--url", agent.url, "--password", PASSWORD)
    second = replay(str(path), "--url", agent.url, "--password", PASSWORD)

    assert first[0] == second[0] == 0
    # The agent logged two authenticated requests that both reached the handler.
    answered = [e for e in agent.request_log() if e["path"] == "/api/v1/agent/upgrade"]
    assert [e["errCode"] for e in answered] == ["Agent.Version.Invalid"] * 2


@pytest.mark.parametrize(
    "agent",
    [{"faults": ("echo-password",), "agent_password": "Agent-Pw-3"}],
    indirect=True,
)
def test_secrets_echoed_by_the_agent_are_not_printed(
    agent: MockAgent, tmp_path: Path
) -> None:
    # The root password in the agent header is a wrong agent password, which
    # the faulty agent echoes back.
    case = {
        "method": "POST",
        "path": "/api/v1/agent/upgrade",
        "body": {},
        "forgery": "agent-header-instead",
        "expect": {"status": 400},
    }
    path = cases_file(tmp_path, case)

    status, out = replay(str(path), "--url", agent.url, "--password", PASSWORD)

    assert status == 1
    assert (
        "IncorrectAgentPassword 'Unauthorized: Agent password is incorrect: [redacted]'"
        in out
    )
    assert PASSWORD not in out


def test_a_forgery_that_cannot_be_rebuilt_is_a_usage_error(
    agent: MockAgent, tmp_path: Path
) -> None:
    path = cases_file(
        tmp_path, {**MALFORMED_VERSION_CASE, "forgery": "replayed-header"}
    )

    status, out = replay(str(path), "--url", agent.url, "--password", PASSWORD)

    assert status == 2
    assert "UNKNOWN case 1" in out
    assert (
        "forgery 'replayed-header' cannot be rebuilt; known: agent-header-instead,"
        in out
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ('{"cases": []}', "the 'cases' list is empty"),
        (
            '{"cases": [{"method": "GET"}]}',
            "case 1 is not a {method, path, body, forgery, expect} object",
        ),
        (
            '{"cases": [{"method": "GET", "path": "/x", "expect": {}}]}',
            "case 1 says nothing it expects",
        ),
        ('{"nodes": []}', "expected an object with a 'cases' list"),
    ],
)
def test_a_bad_cases_file_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")

    status, _ = replay(str(path), "--url", "http://127.0.0.1:9")

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"obshell-contract-replay: error: {path}: ")
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--url", "http://127.0.0.1:9"],
            "the following arguments are required: cases",
        ),
        (["x.json"], "the following arguments are required: --url"),
        (
            ["x.json", "--url", "h", "--timeout", "soon"],
            "argument --timeout: invalid float value: 'soon'",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        replay(*args)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == f"obshell-contract-replay: error: {message}\n"


def test_a_url_that_names_no_agent_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cases_file(tmp_path, MALFORMED_VERSION_CASE)

    status, _ = replay(str(path), "--url", "ftp://h")

    assert status == 2
    assert capsys.readouterr().err == (
        "obshell-contract-replay: error: --url 'ftp://h': expected http://HOST:PORT\n"
    )


def test_an_unreachable_agent_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cases_file(tmp_path, MALFORMED_VERSION_CASE)

    status, _ = replay(
        str(path),
        "--url",
        "http://127.0.0.1:9",
        "--password",
        PASSWORD,
        "--timeout",
        "2",
    )

    assert status == 2
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_the_entry_point_runs_as_a_command(agent: MockAgent, tmp_path: Path) -> None:
    path = cases_file(tmp_path, MALFORMED_VERSION_CASE)
    command = Path(sys.executable).with_name("obshell-contract-replay")

    done = subprocess.run(
        [str(command), str(path), "--url", agent.url],
        env={"OBSHELL_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "FIXED   case 1" in done.stdout
