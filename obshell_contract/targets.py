"""The agents a run checks, live or the embedded mock, and what a probe learns.

A probe reads ``/api/v1/info`` and ``/api/v1/secret`` and sends one deliberately
unauthenticated request to learn the error scheme: agents from 4.3.1.0 answer
with a dotted ``errCode``, older ones only with ``401``/``10008``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from obshell_contract.errors import TransportError, UsageError

if TYPE_CHECKING:
    from obshell_contract.mock import MockAgent, MockConfig

__all__ = [
    "SCHEME_ERRCODE",
    "SCHEME_LEGACY",
    "Target",
    "TargetFacts",
    "UpgradePackage",
    "check_url",
    "embedded_mock",
    "probe",
]

SCHEME_ERRCODE = "errCode"
SCHEME_LEGACY = "legacy"
UPGRADE_PATH = "/api/v1/agent/upgrade"


@dataclass(frozen=True)
class UpgradePackage:
    """A package the run may upgrade to, as the API names it."""

    version: str
    release: str

    @property
    def dag_name(self) -> str:
        return f"Upgrade obshell {self.version}-{self.release}"


@dataclass
class TargetFacts:
    """What the probe learned; shown in the report's header."""

    url: str
    agent_version: str | None = None
    identity: str | None = None
    key_bits: int | None = None
    error_scheme: str | None = None
    mock_profile: str | None = None
    mock_faults: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Target:
    """One agent under test, with the credentials the run was given."""

    url: str
    password: str
    agent_password: str | None = None
    is_mock: bool = False
    mock_profile: str | None = None
    mock_faults: tuple[str, ...] = ()
    # The package a real upgrade goes to; None when the run may not upgrade.
    package: UpgradePackage | None = None
    facts: TargetFacts | None = None
    mock: MockAgent | None = field(default=None, repr=False)

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.agent_password) if s]

    @property
    def may_upgrade(self) -> bool:
        return self.package is not None

    def __repr__(self) -> str:
        # Passwords stay out of test ids, logs and tracebacks.
        return f"Target({self.url!r}, mock={self.is_mock})"


def check_url(value: str) -> str:
    """Validate an ``--obshell-url`` value; returns it without a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--obshell-url {value!r}: expected http://HOST:PORT or https://HOST:PORT"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"--obshell-url {value!r}: the port is not a number") from None
    if parts.path not in ("", "/") or parts.query:
        raise UsageError(
            f"--obshell-url {value!r}: expected no path or query, only scheme, host and port"
        )
    return value.rstrip("/")


def random_password() -> str:
    """A password for the embedded mock when the run was given none."""
    return "mock-" + secrets.token_urlsafe(12)


def probe(target: Target) -> TargetFacts:
    """Learn the target's version, identity, key size and error scheme.

    Only side-effect-free calls are made: two discovery GETs and a GET on the
    upgrade route, which every agent answers with a 404 of its error scheme.
    """
    from obshell_contract.client import ObshellClient
    from obshell_contract.crypto import load_public_key

    with ObshellClient(target.url, target.password, timeout=10) as client:
        info = client.info()
        secret = client.secret()
        not_found = client.request("GET", UPGRADE_PATH, authenticated=False)

    if not isinstance(info.data, dict) or not isinstance(secret.data, dict):
        raise TransportError(
            f"{target.url}: expected agent info and a public key from /api/v1/info "
            f"and /api/v1/secret, got HTTP {info.http_status} and {secret.http_status}"
        )
    facts = TargetFacts(
        url=target.url,
        agent_version=_text(info.data.get("version")),
        identity=_text(info.data.get("identity")),
        key_bits=_key_bits(secret.data.get("public_key"), load_public_key),
        error_scheme=SCHEME_ERRCODE if not_found.err_code else SCHEME_LEGACY,
        mock_profile=target.mock_profile,
        mock_faults=list(target.mock_faults),
    )
    target.facts = facts
    return facts


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _key_bits(value: Any, loader: Any) -> int | None:
    try:
        return int(loader(value).key_size)
    except Exception:
        # A key that does not load is reported by DISC-02; the probe goes on.
        return None


@contextmanager
def embedded_mock(config: MockConfig) -> Iterator[Target]:
    """Start a mock agent on a free loopback port and probe it."""
    from obshell_contract.mock import MockAgent

    agent = MockAgent(config)
    url = agent.start()
    try:
        target = Target(
            url=url,
            password=config.password,
            agent_password=config.agent_password,
            is_mock=True,
            mock_profile=config.profile,
            mock_faults=tuple(config.faults),
            package=_package_of(agent),
            mock=agent,
        )
        probe(target)
        yield target
    finally:
        agent.stop()


def _package_of(agent: MockAgent) -> UpgradePackage:
    # The first package named, or the one the mock makes up: one newer than itself.
    version, _, release = sorted(agent.packages)[0].partition("-")
    return UpgradePackage(version, release)
