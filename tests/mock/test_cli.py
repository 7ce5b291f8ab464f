"""The ``obshell-mock`` command, run as a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from obshell_contract import crypto
from obshell_contract.mock.cli import main
from obshell_contract.mock.faults import FAULTS
from obshell_contract.mock.profiles import PROFILES

COMMAND = [sys.executable, "-m", "obshell_contract.mock"]
SECRET = "s3cr3t-cli-pw"

# Run as subprocesses, all at once: interpreter start-up dominates.
BAD_OPTIONS = {
    "unknown fault": (
        ["--fault", "foo"],
        "--fault 'foo' is not a known fault; known: ",
    ),
    "key bits": (["--key-bits", "2048"], "--key-bits 2048: expected 512 or 1024"),
    "package": (
        ["--package", "4.5"],
        "--package 4.5: expected VERSION-RELEASE like 4.5.1.0-100000012026050801.el7",
    ),
    "agent version": (
        ["--agent-version", "x"],
        "--agent-version x: expected VERSION-BUILD like 4.5.0.0-100000012026050801",
    ),
    "port": (["--port", "x"], "argument --port: invalid int value: 'x'"),
    "unknown option": (["--bogus"], "unrecognized arguments: --bogus"),
}
# The same path in-process, for the rest.
MORE_BAD_OPTIONS = {
    "profile": (["--profile", "nope"], "--profile 'nope' is not a known profile"),
    "stage seconds": (
        ["--stage-seconds", "-1"],
        "--stage-seconds -1.0: expected a number >= 0",
    ),
    "not finite": (
        ["--stage-seconds", "nan"],
        "--stage-seconds nan: expected a number >= 0",
    ),
    "agents": (["--agents", "0"], "--agents 0: expected an integer >= 1"),
    "identity": (["--identity", "BOSS"], "--identity 'BOSS': expected one of MASTER"),
    "port range": (["--port", "70000"], "--port 70000: expected 0 to 65535"),
    "key file": (
        ["--key-file", "/nonexistent/key.pem"],
        "--key-file /nonexistent/key.pem: cannot read it",
    ),
    "junk key": (
        ["--key-file", "{junk}"],
        "--key-file: expected an RSA private key in PEM: ",
    ),
    "key size": (
        ["--key-file", "{pem}", "--key-bits", "1024"],
        "--key-file holds a 512-bit key, expected 1024 bits",
    ),
}


@pytest.fixture(scope="module")
def bad_option_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every bad command line, run at once: interpreter start-up dominates."""
    processes = {
        name: subprocess.Popen(
            [*COMMAND, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (argv, _) in BAD_OPTIONS.items()
    }
    runs = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        runs[name] = subprocess.CompletedProcess(
            process.args, process.returncode, out, err
        )
    return runs


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_a_bad_option_is_one_line_and_exit_code_2(
    bad_option_runs: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    run = bad_option_runs[case]
    expected = BAD_OPTIONS[case][1]

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"obshell-mock: error: {expected}"), run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("case", list(MORE_BAD_OPTIONS))
def test_more_bad_options_in_process(
    case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pem = tmp_path / "agent.pem"
    pem.write_bytes(crypto.private_key_pem(crypto.generate_private_key(512)))
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key")
    argv, expected = MORE_BAD_OPTIONS[case]

    with pytest.raises(SystemExit) as caught:
        main([arg.format(pem=pem, junk=junk) for arg in argv])

    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.startswith(f"obshell-mock: error: {expected}"), err
    assert err.count("\n") == 1


def test_list_faults_prints_one_line_per_fault() -> None:
    run = subprocess.run(
        [*COMMAND, "--list-faults"], capture_output=True, text=True, timeout=60
    )

    lines = run.stdout.splitlines()
    assert run.returncode == 0
    assert [line.split()[0] for line in lines] == list(FAULTS)
    assert all(FAULTS[line.split()[0]].description in line for line in lines)


def test_list_profiles_through_the_console_script() -> None:
    script = Path(sys.executable).with_name("obshell-mock")
    if not script.exists():
        pytest.skip(f"the console script is not installed next to {sys.executable}")

    run = subprocess.run(
        [str(script), "--list-profiles"], capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 0
    assert [line.split()[0] for line in run.stdout.splitlines()] == list(PROFILES)


class _Running:
    """A started ``obshell-mock`` and its ready line."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._watchdog = threading.Timer(30, self.process.kill)
        self._watchdog.start()
        assert self.process.stdout is not None
        self.ready_line = self.process.stdout.readline()
        self.url = self.ready_line.strip().rpartition(" ")[2]

    def get(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return dict(json.load(response))

    def stop(self, signum: int) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=20)
        self._watchdog.cancel()
        return self.process.returncode, out, err


@pytest.fixture
def running() -> Iterator[list[_Running]]:
    started: list[_Running] = []
    yield started
    for mock in started:
        if mock.process.poll() is None:
            mock.process.kill()
            mock.process.communicate()
        mock._watchdog.cancel()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_serving_and_a_clean_stop(
    running: list[_Running], signum: int
) -> None:
    mock = _Running("--password", SECRET, "--stage-seconds", "0")
    running.append(mock)

    info = mock.get("/api/v1/info")
    code, out, err = mock.stop(signum)

    assert mock.ready_line.startswith("obshell-mock listening on http://127.0.0.1:")
    assert info["successful"] is True
    assert (code, out) == (0, "")
    assert "Traceback" not in err


def test_the_request_log_goes_to_stderr_without_secrets(
    running: list[_Running],
) -> None:
    mock = _Running("--password", SECRET, "--agent-password", SECRET + "-agent")
    running.append(mock)
    key = crypto.load_public_key(
        str(dict(mock.get("/api/v1/secret")["data"])["public_key"])
    )
    header = crypto.encrypt_header(
        key,
        {"Auth": SECRET, "Ts": crypto.expiry(60), "Uri": "/api/v1/task/dag/unfinish"},
    )
    request = urllib.request.Request(
        mock.url + "/api/v1/task/dag/unfinish", headers={"X-OCS-Header": header}
    )

    with urllib.request.urlopen(request, timeout=10) as response:
        status = response.status
    code, _, err = mock.stop(signal.SIGTERM)

    assert (status, code) == (200, 0)
    assert "obshell-mock: packages present: 4.5.0.1-100000012026050802.el7" in err
    assert "obshell-mock: GET /api/v1/secret 200 - " in err
    assert "obshell-mock: GET /api/v1/task/dag/unfinish 200 - " in err
    assert SECRET not in err


def test_a_key_file_is_used_as_the_agents_key(
    running: list[_Running], tmp_path: Path
) -> None:
    key = crypto.generate_private_key(512)
    path = tmp_path / "agent.pem"
    path.write_bytes(crypto.private_key_pem(key))
    mock = _Running("--key-file", str(path))
    running.append(mock)

    served = str(dict(mock.get("/api/v1/secret")["data"])["public_key"])
    mock.stop(signal.SIGTERM)

    assert served == crypto.public_key_b64(key.public_key())


def test_a_busy_port_is_one_line_and_exit_code_1(running: list[_Running]) -> None:
    first = _Running()
    running.append(first)
    port = first.url.rpartition(":")[2]

    run = subprocess.run(
        [*COMMAND, "--port", port], capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 1
    assert run.stderr.startswith(
        f"obshell-mock: error: cannot listen on 127.0.0.1:{port}: "
    )
    assert run.stderr.count("\n") == 1
