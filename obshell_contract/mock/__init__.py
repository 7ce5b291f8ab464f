"""A faithful mock obshell agent, in-process: ``MockAgent(MockConfig(...)).start()``.

The mock speaks the agent's wire protocol over real sockets (hybrid RSA+AES
requests, the agent's envelopes and error codes) and runs upgrade DAGs on a
clock. ``docs/mock.md`` shows how to run it; ``docs/deviations.md`` lists where
the default ``reference`` profile is sounder than the real agent.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

from obshell_contract import crypto
from obshell_contract.errors import UsageError
from obshell_contract.log import logger
from obshell_contract.mock.dag import DagEngine
from obshell_contract.mock.faults import check_faults
from obshell_contract.mock.profiles import DEFAULT_PROFILE, Profile, get_profile
from obshell_contract.mock.security import IDENTITIES, Verifier
from obshell_contract.mock.server import (
    RECOVERY_MESSAGE,
    AgentApp,
    MockHTTPServer,
    go_time_ns,
)
from obshell_contract.mock.upgrade import compare_version

if TYPE_CHECKING:
    from obshell_contract.mock.server import Reply, Request

__all__ = ["MockAgent", "MockConfig", "default_package"]

HOME_PATH = "/home/admin/oceanbase"
OB_VERSION = "4.3.5.2"
ZONE = "zone1"
SQL_PORT = 2881
STATE_RUNNING = 2
OB_STATE_AVAILABLE = 3
# Agents from this version on hold a 1024-bit key and regenerate an older
# one when they start (protocol reference §1.1).
KEY_1024_SINCE = "4.4.2.0-0"

_AGENT_VERSION = re.compile(r"[0-9]+(\.[0-9]+)+-[0-9]+")
_PACKAGE = re.compile(r"[0-9]+(\.[0-9]+)+-[0-9]+\.[A-Za-z0-9_.]+")


@dataclass
class MockConfig:
    """Everything that makes one mock agent; ``MockAgent`` validates it."""

    host: str = "127.0.0.1"
    port: int = 0
    # root@sys; empty is allowed (then Auth "" passes without a Ts check).
    password: str = field(default="root-pass", repr=False)
    agent_password: str | None = field(default=None, repr=False)
    identity: str = "CLUSTER AGENT"
    agent_version: str = "4.5.0.0-100000012026050801"
    # "VERSION-RELEASE" of packages present; empty: one newer than the agent.
    packages: tuple[str, ...] = ()
    stage_seconds: float = 0.05
    key_bits: int = 1024
    # PEM of the RSA key to use (the agent keeps its key across restarts);
    # None makes a fresh key of ``key_bits``.
    key_pem: bytes | None = field(default=None, repr=False)
    profile: str = DEFAULT_PROFILE
    faults: tuple[str, ...] = ()
    # Sub-tasks per DAG node (agents in the cluster).
    agents: int = 1
    # Zone of envelope and DAG timestamps; None is the host's local zone.
    timezone: tzinfo | None = None


def default_package(agent_version: str) -> str:
    """One package newer than ``agent_version``: last number +1, build +1, el7."""
    version, build = agent_version.split("-", 1)
    parts = version.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return f"{'.'.join(parts)}-{int(build) + 1}.el7"


def _validate(config: MockConfig) -> Profile:
    checks = (
        (0 <= config.port <= 65535, f"--port {config.port}: expected 0 to 65535"),
        (bool(config.host), f"--host {config.host!r}: expected an address"),
        (
            config.identity in IDENTITIES,
            f"--identity {config.identity!r}: expected one of {', '.join(IDENTITIES)}",
        ),
        (
            bool(_AGENT_VERSION.fullmatch(config.agent_version)),
            f"--agent-version {config.agent_version}: expected VERSION-BUILD "
            "like 4.5.0.0-100000012026050801",
        ),
        (
            math.isfinite(config.stage_seconds) and config.stage_seconds >= 0,
            f"--stage-seconds {config.stage_seconds}: expected a number >= 0",
        ),
        (
            config.key_bits in (512, 1024),
            f"--key-bits {config.key_bits}: expected 512 or 1024",
        ),
        (config.agents >= 1, f"--agents {config.agents}: expected an integer >= 1"),
    )
    for ok, message in checks:
        if not ok:
            raise UsageError(message)

    for package in config.packages:
        if not _PACKAGE.fullmatch(package):
            raise UsageError(
                f"--package {package}: expected VERSION-RELEASE like "
                "4.5.1.0-100000012026050801.el7"
            )
    check_faults(config.faults)
    return get_profile(config.profile)


def _load_key(config: MockConfig) -> rsa.RSAPrivateKey:
    if config.key_pem is None:
        return crypto.generate_private_key(config.key_bits)
    try:
        key = crypto.load_private_key_pem(config.key_pem)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"--key-file: expected an RSA private key in PEM: {exc}"
        ) from None
    if key.key_size != config.key_bits:
        raise UsageError(
            f"--key-file holds a {key.key_size}-bit key, expected {config.key_bits} "
            "bits (--key-bits)"
        )
    return key


class MockAgent:
    """One mock obshell agent: keys, version, DAG engine and HTTP server.

    ``MockAgent(config, **overrides)`` validates the configuration (raising
    :class:`UsageError` naming the bad value) and makes the RSA key;
    :meth:`start` binds the socket and returns the base URL.
    """

    def __init__(self, config: MockConfig | None = None, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or MockConfig(), **overrides)
        self.profile = _validate(self.config)
        self.faults = frozenset(self.config.faults)
        self.verifier = Verifier(
            self.config.identity,
            self.config.password,
            self.config.agent_password,
            self.faults,
        )
        self.packages = frozenset(
            self.config.packages or (default_package(self.config.agent_version),)
        )

        self._lock = threading.Lock()
        self._key = _load_key(self.config)
        self._version = self.config.agent_version
        self._requests: list[dict[str, Any]] = []
        self.handler_errors: list[BaseException] = []
        self.pid = os.getpid()
        self.started_ns = time.time_ns()
        self.recovery_envelope = self._build_recovery_envelope()

        self.url = ""
        self.port = self.config.port
        self._server: MockHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._engine: DagEngine | None = None

    def __repr__(self) -> str:
        return (
            f"MockAgent(url={self.url!r}, profile={self.profile.name!r}, "
            f"version={self.version!r}, faults={sorted(self.faults)!r})"
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> str:
        """Bind, start serving in a daemon thread, return the base URL."""
        if self._server is not None:
            raise RuntimeError(f"{self!r} is already started")

        server = MockHTTPServer((self.config.host, self.config.port), AgentApp(self))
        self.port = server.server_address[1]
        self._engine = self._build_engine()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"obshell-mock:{self.port}",
            daemon=True,
        )
        self._thread.start()

        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{host}:{self.port}"
        logger.debug("mock agent listening on %s (%s)", self.url, self.profile.name)
        return self.url

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stop_serving()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> MockAgent:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _build_engine(self) -> DagEngine:
        zone = self.config.timezone
        agents = [(self.ip, self.port + index) for index in range(self.config.agents)]
        return DagEngine(
            agents=agents,
            stage_seconds=self.config.stage_seconds,
            faults=self.faults,
            wall_clock=lambda: datetime.now(zone).astimezone(zone),
            on_upgrade_succeeded=self._upgrade_succeeded,
        )

    def _build_recovery_envelope(self) -> dict[str, Any]:
        # Built once, like the agent's, so its timestamp is the start time.
        return {
            "successful": False,
            "timestamp": go_time_ns(self.started_ns, self.config.timezone),
            "duration": 0,
            "status": 500,
            "traceId": "",
            "error": {
                "errCode": "Common.Unexpected",
                "message": RECOVERY_MESSAGE,
            },
        }

    # -- state ---------------------------------------------------------------

    @property
    def engine(self) -> DagEngine:
        """The DAG engine; it exists once :meth:`start` has run."""
        if self._engine is None:
            raise RuntimeError("MockAgent.engine exists after start(); call start()")
        return self._engine

    @property
    def version(self) -> str:
        """What ``/api/v1/info`` reports now (``VERSION-BUILD``)."""
        with self._lock:
            return self._version

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            return self._key

    @property
    def public_key(self) -> str:
        """The public key as ``/api/v1/secret`` sends it (base64 PKCS#1 DER)."""
        return crypto.public_key_b64(self.private_key.public_key())

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def ip(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    @property
    def address(self) -> str:
        """``ip:port`` as the agent prints itself (IPv6 in brackets)."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{ip}:{self.port}"

    @property
    def home_path(self) -> str:
        return HOME_PATH

    @property
    def architecture(self) -> str:
        machine = platform.machine().lower()
        return "aarch64" if machine in ("aarch64", "arm64") else "x86_64"

    def dags(self) -> list[dict[str, Any]]:
        """Every DAG with its details, as a poll would show it now."""
        return self.engine.snapshot()

    def info(self) -> dict[str, Any]:
        """``data`` of ``GET /api/v1/info``, keys in the agent's order (§7)."""
        return {
            "pid": self.pid,
            "state": STATE_RUNNING,
            "startAt": self.started_ns,
            "homePath": self.home_path,
            "obVersion": OB_VERSION,
            "architecture": self.architecture,
            "ip": self.ip,
            "port": self.port,
            "zone": ZONE,
            "identity": self.identity,
            "version": self.version,
            "isObproxyAgent": False,
            "security": self.config.agent_password is not None,
            "supportedAuth": ["v2"],
        }

    def status(self) -> dict[str, Any]:
        """``data`` of ``GET /api/v1/status``, keys in the agent's order (§7)."""
        return {
            "agent": {"ip": self.ip, "port": self.port, "identity": self.identity},
            "state": STATE_RUNNING,
            "version": self.version,
            "pid": self.pid,
            "startAt": self.started_ns,
            "port": self.port,
            "obState": OB_STATE_AVAILABLE,
            "sqlPort": SQL_PORT,
            "underMaintenance": False,
        }

    def _upgrade_succeeded(self, version: str, release: str) -> None:
        new_version = f"{version}-{release.split('.')[0]}"
        with self._lock:
            old_version, self._version = self._version, new_version
            if self._key.key_size < 1024 and _crosses_key_upgrade(
                old_version, new_version
            ):
                self._key = crypto.generate_private_key(1024)
        logger.info("mock agent upgraded: %s -> %s", old_version, new_version)

    # -- evidence for tests --------------------------------------------------

    def request_log(self) -> list[dict[str, Any]]:
        """One entry per request: method, path, status, errCode, ms."""
        with self._lock:
            return list(self._requests)

    def record_request(self, request: Request, reply: Reply, seconds: float) -> None:
        """Log one answered request (never a header, body or password)."""
        path = urllib.parse.urlsplit(request.target).path
        entry = {
            "method": request.method,
            "path": path,
            "status": reply.status,
            "errCode": reply.err_code,
            "ms": round(seconds * 1000, 3),
        }
        with self._lock:
            self._requests.append(entry)
        logger.info(
            "%s %s %d %s %.1fms",
            request.method,
            path,
            reply.status,
            reply.err_code or "-",
            seconds * 1000,
        )

    def record_handler_error(self, error: BaseException) -> None:
        with self._lock:
            self.handler_errors.append(error)


def _crosses_key_upgrade(old_version: str, new_version: str) -> bool:
    return (
        compare_version(old_version, KEY_1024_SINCE) < 0
        and compare_version(new_version, KEY_1024_SINCE) >= 0
    )
