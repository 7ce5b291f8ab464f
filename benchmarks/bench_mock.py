"""Encrypted upgrade requests per second against the mock agent, two clients.

Usage: ``python benchmarks/bench_mock.py [--seconds N] [--output PATH]``

The mock runs in its own process (``python -m obshell_contract.mock``, profile
``obshell-4.5``), so that client and mock do not share an interpreter. Every
timed request is ``POST /api/v1/agent/upgrade`` to a newer version whose package
was never uploaded: the first one creates a DAG that fails at stage 2 and keeps
the cluster under maintenance, and every later one is answered 500
``OB.Cluster.UnderMaintenanceWithDag``. So each request goes the whole way:
header decryption, ``Verify``, body decryption, JSON binding, the business
checks and the engine's maintenance lock.

Three clients are timed with 1, 4 and 16 threads, one client per thread:
``raw`` (our crypto module and a bare ``requests.Session``: the least a client
can do), ``ours`` (``ObshellClient``, which also records and redacts every
exchange) and ``sdk`` (the official SDK 0.0.9, ``ClientSet``). Beside each, the
raw client-side crypto cost of one request is measured in the same run (header
and body encryption only, no network). The SDK sends a failed POST twice (its
retry on any error), so requests are counted from the mock's own request log.
Results are printed as a table and written to ``reports/bench_mock.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from obshell import ClientSet, OBShellHandleError
from obshell.auth import PasswordAuth
from obshell.auth.password import PasswordAuthMethodV2
from obshell.request import BaseRequest

from obshell_contract import crypto
from obshell_contract.client import ObshellClient

PASSWORD = "root-pass"
ABSENT = ("4.5.0.2", "100000012026050803.el7")  # newer than the agent, no package
UPGRADE = "/api/v1/agent/upgrade"
BODY = {"version": ABSENT[0], "release": ABSENT[1], "upgradeDir": None}
EXPECTED = (500, "OB.Cluster.UnderMaintenanceWithDag")
THREADS = (1, 4, 16)
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "reports" / "bench_mock.json"
_LISTENING = re.compile(r"listening on (http://\S+)")
_REQUEST_LINE = re.compile(r"obshell-mock: [A-Z]+ /")


@dataclass
class Cell:
    """One client kind at one thread count."""

    client: str
    threads: int
    seconds: float
    calls: int
    requests: int
    unexpected: int
    mean_call_ms: float
    p95_call_ms: float
    crypto_us_per_request: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def ratio(self) -> float:
        """Wall time per request at this concurrency over the raw crypto cost."""
        return (1e6 / self.requests_per_s) / self.crypto_us_per_request


class MockProcess:
    """The mock agent as a child process; counts the requests it logs."""

    def __init__(self) -> None:
        self.url = ""
        self._answered = 0
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> MockProcess:
        command = [sys.executable, "-m", "obshell_contract.mock", "--port", "0"]
        command += ["--profile", "obshell-4.5", "--stage-seconds", "0.05"]
        command += ["--password", PASSWORD]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.url = self._wait_for_url()
        threading.Thread(target=self._count, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    def answered(self) -> int:
        """Requests answered so far (one stderr line each)."""
        with self._lock:
            return self._answered

    def _wait_for_url(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        found = _LISTENING.search(line)
        if found is None:
            raise RuntimeError(f"the mock did not start: {line!r}")
        return found.group(1)

    def _count(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        for line in self._process.stderr:
            if _REQUEST_LINE.match(line):
                with self._lock:
                    self._answered += 1


# -- raw client-side crypto ----------------------------------------------------------


def ours_crypto(public_key_b64: str) -> Callable[[], None]:
    """One request's worth of our encryption: body (AES) and header (RSA)."""
    key = crypto.load_public_key(public_key_b64)
    body = json.dumps(BODY, separators=(",", ":")).encode()

    def encrypt() -> None:
        keys = crypto.AesKeys.random()
        crypto.aes_encrypt(keys, body)
        fields = {"Auth": PASSWORD, "Ts": crypto.expiry(), "Uri": UPGRADE}
        crypto.encrypt_header(key, {**fields, "Keys": keys.wire})

    return encrypt


def sdk_crypto(public_key_b64: str, url: str) -> Callable[[], None]:
    """The SDK's own ``auth`` step on an upgrade request, with no network."""
    method = PasswordAuthMethodV2(PASSWORD, None, 60)
    # Its identity check and key fetch are done once per client; skip them.
    method.pk, method.check_identity = public_key_b64, True
    host = urllib.parse.urlsplit(url)

    def encrypt() -> None:
        request = BaseRequest(
            UPGRADE, "POST", host.hostname or "", host.port or 0, need_auth=True
        )
        request.data = request.original_data = dict(BODY)
        method.auth(request)

    return encrypt


def per_call_us(work: Callable[[], None], seconds: float) -> float:
    """Mean microseconds per call of ``work``, run for about ``seconds``."""
    work()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work()
        count += 1
    return (time.perf_counter() - started) / count * 1e6


# -- clients -------------------------------------------------------------------------


def raw_call(url: str) -> Callable[[], bool]:
    session = requests.Session()
    session.trust_env = False
    secret = session.get(f"{url}/api/v1/secret", timeout=30).json()
    key = crypto.load_public_key(secret["data"]["public_key"])
    body = json.dumps(BODY, separators=(",", ":")).encode()

    def call() -> bool:
        keys = crypto.AesKeys.random()
        fields = {"Auth": PASSWORD, "Ts": crypto.expiry(), "Uri": UPGRADE}
        header = crypto.encrypt_header(key, {**fields, "Keys": keys.wire})
        reply = session.post(
            f"{url}{UPGRADE}",
            data=crypto.aes_encrypt(keys, body),
            headers={"X-OCS-Header": header, "Content-Type": "application/json"},
            timeout=30,
        )
        error = reply.json().get("error") or {}
        return (reply.status_code, error.get("errCode")) == EXPECTED

    return call


def ours_call(url: str) -> Callable[[], bool]:
    client = ObshellClient(url, PASSWORD, timeout=30)

    def call() -> bool:
        reply = client.upgrade_agent(*ABSENT)
        return (reply.http_status, reply.err_code) == EXPECTED

    return call


def sdk_call(url: str) -> Callable[[], bool]:
    # A PasswordAuth per client: the default one is shared by every ClientSet.
    host = urllib.parse.urlsplit(url)
    client = ClientSet(host.hostname, host.port, PasswordAuth(PASSWORD), timeout=30)

    def call() -> bool:
        try:
            client.v1.upgrade_agent(*ABSENT)
        except OBShellHandleError as error:
            return bool(error.err_code == EXPECTED[1])
        return False

    return call


def run_cell(
    name: str,
    make: Callable[[str], Callable[[], bool]],
    threads: int,
    mock: MockProcess,
    seconds: float,
    crypto_us: float,
) -> Cell:
    calls = [make(mock.url) for _ in range(threads)]
    for call in calls:
        call()  # warm up: key fetch, the SDK's version and identity checks

    results: list[list[float]] = [[] for _ in calls]
    unexpected = [0] * threads
    start, stop = threading.Barrier(threads + 1), threading.Event()
    workers = [
        threading.Thread(
            target=_work, args=(call, results[n], unexpected, n, start, stop)
        )
        for n, call in enumerate(calls)
    ]
    for worker in workers:
        worker.start()

    start.wait()
    before, started = mock.answered(), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    time.sleep(0.2)  # the mock logs just after answering
    return _cell(
        name,
        threads,
        elapsed,
        results,
        sum(unexpected),
        mock.answered() - before,
        crypto_us,
    )


def _work(
    call: Callable[[], bool],
    latencies: list[float],
    unexpected: list[int],
    n: int,
    start: threading.Barrier,
    stop: threading.Event,
) -> None:
    start.wait()
    while not stop.is_set():
        began = time.perf_counter()
        if not call():
            unexpected[n] += 1
        latencies.append(time.perf_counter() - began)


def _cell(
    name: str,
    threads: int,
    elapsed: float,
    results: list[list[float]],
    unexpected: int,
    answered: int,
    crypto_us: float,
) -> Cell:
    latencies = sorted(x for per_thread in results for x in per_thread)
    return Cell(
        client=name,
        threads=threads,
        seconds=round(elapsed, 3),
        calls=len(latencies),
        requests=answered,
        unexpected=unexpected,
        mean_call_ms=round(statistics.fmean(latencies) * 1000, 3),
        p95_call_ms=round(latencies[int(len(latencies) * 0.95)] * 1000, 3),
        crypto_us_per_request=round(crypto_us, 1),
    )


# -- report --------------------------------------------------------------------------


def table(cells: list[Cell]) -> str:
    head = (
        f"{'client':<7}{'threads':>8}{'calls/s':>9}{'req/s':>8}{'ms/call':>9}"
        f"{'p95 ms':>8}{'crypto us/req':>15}{'req:crypto':>12}"
    )
    rows = [
        f"{c.client:<7}{c.threads:>8}{c.calls / c.seconds:>9.1f}{c.requests_per_s:>8.1f}"
        f"{c.mean_call_ms:>9.2f}{c.p95_call_ms:>8.2f}{c.crypto_us_per_request:>15.1f}"
        f"{c.ratio:>11.1f}x"
        for c in cells
    ]
    return "\n".join([head, "-" * len(head), *rows])


def document(cells: list[Cell], seconds: float) -> dict[str, Any]:
    return {
        "benchmark": "bench_mock",
        "request": f"POST {UPGRADE} {json.dumps(BODY)} -> {EXPECTED[0]} {EXPECTED[1]}",
        "mock": "python -m obshell_contract.mock --profile obshell-4.5 (own process)",
        "seconds_per_cell": seconds,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "results": [
            {
                **asdict(c),
                "requests_per_s": round(c.requests_per_s, 1),
                "ratio": round(c.ratio, 1),
            }
            for c in cells
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="per cell (default 3)"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error(f"--seconds {args.seconds}: expected a number > 0")

    with MockProcess() as mock:
        public_key = requests.get(f"{mock.url}/api/v1/secret", timeout=10).json()[
            "data"
        ]["public_key"]
        budget = min(args.seconds, 2.0)
        ours_us = per_call_us(ours_crypto(public_key), budget)
        sdk_us = per_call_us(sdk_crypto(public_key, mock.url), budget)
        # raw and ours encrypt with the same module; only the SDK differs.
        crypto_us = {"raw": ours_us, "ours": ours_us, "sdk": sdk_us}
        makers = {"raw": raw_call, "ours": ours_call, "sdk": sdk_call}
        cells = [
            run_cell(name, make, threads, mock, args.seconds, crypto_us[name])
            for name, make in makers.items()
            for threads in THREADS
        ]

    print(table(cells))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document(cells, args.seconds), indent=2) + "\n")
    print(f"\nwritten: {args.output}")
    return 1 if any(c.unexpected for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
