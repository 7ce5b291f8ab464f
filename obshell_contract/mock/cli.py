"""The ``obshell-mock`` command: run a mock obshell agent until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from obshell_contract import crypto
from obshell_contract.errors import UsageError
from obshell_contract.log import logger
from obshell_contract.mock import MockAgent, MockConfig
from obshell_contract.mock.faults import FAULTS
from obshell_contract.mock.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["main"]

PROG = "obshell-mock"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> _Parser:
    defaults = MockConfig()
    parser = _Parser(
        prog=PROG,
        description="A mock obshell agent speaking the Upgrade Agent API.",
    )
    add = parser.add_argument
    add("--host", default=defaults.host, help="address to bind (default %(default)s)")
    add("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    add("--password", default=defaults.password, help="root@sys password")
    add("--agent-password", default=None, help="agent password (default: none set)")
    add("--identity", default=defaults.identity, help="agent identity")
    add(
        "--agent-version",
        default=defaults.agent_version,
        metavar="VERSION-BUILD",
        help="version the agent reports (default %(default)s)",
    )
    add(
        "--package",
        action="append",
        default=[],
        metavar="VERSION-RELEASE",
        help="a package present in the cluster (repeatable; "
        "default: one newer than the agent)",
    )
    add("--stage-seconds", type=float, default=defaults.stage_seconds)
    add(
        "--key-bits",
        type=int,
        default=None,
        help="512 or 1024 (default: the key file's size, else 1024)",
    )
    add("--key-file", default=None, help="PEM private key to use instead of a new one")
    add("--profile", default=DEFAULT_PROFILE, help="see --list-profiles")
    add("--fault", action="append", default=[], metavar="NAME", help="repeatable")
    add("--agents", type=int, default=defaults.agents, help="sub-tasks per node")
    add("--list-faults", action="store_true", help="list the faults and exit")
    add("--list-profiles", action="store_true", help="list the profiles and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mock; returns the exit code (0 after SIGINT/SIGTERM)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_faults:
        _print_faults()
        return 0
    if args.list_profiles:
        _print_profiles()
        return 0

    try:
        agent = MockAgent(_config(args))
    except UsageError as exc:
        parser.error(str(exc))
    return _serve(agent)


def _config(args: argparse.Namespace) -> MockConfig:
    key_pem = _read_key_file(args.key_file)
    key_bits = args.key_bits
    if key_bits is None:
        key_bits = _key_size(key_pem) if key_pem else MockConfig.key_bits
    return MockConfig(
        host=args.host,
        port=args.port,
        password=args.password,
        agent_password=args.agent_password,
        identity=args.identity,
        agent_version=args.agent_version,
        packages=tuple(args.package),
        stage_seconds=args.stage_seconds,
        key_bits=key_bits,
        key_pem=key_pem,
        profile=args.profile,
        faults=tuple(args.fault),
        agents=args.agents,
    )


def _read_key_file(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"--key-file {path}: cannot read it: {exc.strerror}") from None


def _key_size(pem: bytes) -> int:
    try:
        return crypto.load_private_key_pem(pem).key_size
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"--key-file: expected an RSA private key in PEM: {exc}"
        ) from None


def _serve(agent: MockAgent) -> int:
    _log_to_stderr()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        url = agent.start()
    except OSError as exc:
        where = f"{agent.config.host}:{agent.config.port}"
        sys.stderr.write(f"{PROG}: error: cannot listen on {where}: {exc.strerror}\n")
        return 1

    logger.info("packages present: %s", ", ".join(sorted(agent.packages)))
    print(f"{PROG} listening on {url}", flush=True)
    # Short waits keep the main thread ready for the signal handlers.
    while not stop.wait(0.2):
        pass
    agent.stop()
    return 0


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _print_faults() -> None:
    width = max(len(name) for name in FAULTS)
    for fault in FAULTS.values():
        print(f"{fault.name:<{width}}  {fault.layer:<6}  {fault.description}")


def _print_profiles() -> None:
    width = max(len(name) for name in PROFILES)
    for profile in PROFILES.values():
        print(f"{profile.name:<{width}}  {profile.description}")
