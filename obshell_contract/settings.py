"""The run's options, read and checked once: which agents, which secrets, which mock.

Every defect is a :class:`UsageError` whose one line names the option, the
value given and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from obshell_contract import schemas
from obshell_contract.errors import UsageError
from obshell_contract.targets import UpgradePackage, check_url, random_password

if TYPE_CHECKING:
    import pytest

    from obshell_contract.mock import MockConfig

__all__ = ["WORKER_PASSWORD", "RunSettings", "read_settings"]

# xdist workers take the controller's random mock password (see the plugin).
WORKER_PASSWORD = "obshell_contract_password"


@dataclass
class RunSettings:
    """The run's options, validated once in ``pytest_configure``."""

    urls: list[str]
    password: str
    agent_password: str | None
    mock_profile: str
    mock_faults: tuple[str, ...]
    allow_upgrade: bool
    upgrade: UpgradePackage | None
    dag_timeout: float
    stage_seconds: float

    @property
    def embedded(self) -> bool:
        return not self.urls

    @property
    def secrets(self) -> list[str]:
        return [secret for secret in (self.password, self.agent_password) if secret]

    def mock_config(self) -> MockConfig:
        """How the embedded mock is made for this run."""
        from obshell_contract.mock import MockConfig

        return MockConfig(
            password=self.password,
            agent_password=self.agent_password,
            profile=self.mock_profile,
            faults=self.mock_faults,
            stage_seconds=self.stage_seconds,
        )

    def __repr__(self) -> str:
        return f"RunSettings(urls={self.urls!r}, mock_profile={self.mock_profile!r})"


def read_settings(config: pytest.Config) -> RunSettings:
    urls = [check_url(url) for url in _urls(config)]
    password = config.getoption("obshell_password") or os.environ.get(
        "OBSHELL_PASSWORD"
    )
    agent_password = config.getoption("obshell_agent_password") or os.environ.get(
        "OBSHELL_AGENT_PASSWORD"
    )
    if password is None:
        if urls:
            raise UsageError(
                "--obshell-password (or OBSHELL_PASSWORD) is required with --obshell-url"
            )
        # xdist workers take the controller's, so the report can mask it too.
        worker_input = getattr(config, "workerinput", {})
        password = worker_input.get(WORKER_PASSWORD) or random_password()

    profile, faults = _mock_choice(config)
    return RunSettings(
        urls=urls,
        password=password,
        agent_password=agent_password or None,
        mock_profile=profile,
        mock_faults=faults,
        allow_upgrade=bool(config.getoption("allow_upgrade")),
        upgrade=_upgrade_package(config, urls),
        dag_timeout=_positive_float(config, "dag_timeout", "--dag-timeout"),
        stage_seconds=_positive_float(
            config, "mock_stage_seconds", "--mock-stage-seconds", allow_zero=True
        ),
    )


def _urls(config: pytest.Config) -> list[str]:
    urls: list[str] = list(config.getoption("obshell_url") or [])
    if not urls and os.environ.get("OBSHELL_URL"):
        urls = os.environ["OBSHELL_URL"].split()
    return urls


def _mock_choice(config: pytest.Config) -> tuple[str, tuple[str, ...]]:
    from obshell_contract.mock.faults import FAULTS
    from obshell_contract.mock.profiles import PROFILES

    profile = str(config.getoption("mock_profile"))
    if profile not in PROFILES:
        raise UsageError(
            f"--mock-profile {profile!r}: expected one of {', '.join(sorted(PROFILES))}"
        )
    faults = tuple(config.getoption("mock_fault") or ())
    for fault in faults:
        if fault not in FAULTS:
            raise UsageError(
                f"--mock-fault {fault!r} is not a known fault; "
                f"known: {', '.join(sorted(FAULTS))}"
            )
    return profile, faults


def _upgrade_package(config: pytest.Config, urls: list[str]) -> UpgradePackage | None:
    version = config.getoption("upgrade_version")
    release = config.getoption("upgrade_release")
    allow = config.getoption("allow_upgrade")
    if (version is None) != (release is None):
        raise UsageError("--upgrade-version and --upgrade-release go together")
    if allow and urls and version is None:
        raise UsageError(
            "--allow-upgrade needs --upgrade-version and --upgrade-release naming a "
            "package the cluster holds"
        )
    if version is None:
        return None
    body = {"version": version, "release": release}
    for violation in schemas.violations(body, schemas.REQUEST):
        raise UsageError(
            f"--upgrade-{violation.pointer.lstrip('/')} "
            f"{body.get(violation.pointer.lstrip('/'))!r}: {violation.message}"
        )
    return UpgradePackage(str(version), str(release))


def _positive_float(
    config: pytest.Config, name: str, flag: str, *, allow_zero: bool = False
) -> float:
    raw = config.getoption(name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} {raw!r}: expected a number of seconds") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{flag} {raw!r}: expected a positive number of seconds")
    return value
