"""The commands a failure offers: run the test again, replay its cases."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

__all__ = ["replay_command", "reproduce_command"]

# Options of the run that a rerun needs too (booleans are flags).
_RERUN_OPTIONS = (
    ("allow_upgrade", "--allow-upgrade"),
    ("hypothesis_seed", "--hypothesis-seed"),
    ("hypothesis_profile", "--hypothesis-profile"),
)


def reproduce_command(
    config: pytest.Config, nodeid: str, target: dict[str, Any] | None
) -> str:
    """``cd <root> && python -m pytest <nodeid> <target options>``; never a password."""
    args = ["python", "-m", "pytest", nodeid, *_target_args(target)]
    for name, flag in _RERUN_OPTIONS:
        value = config.getoption(name, default=None)
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    return f"cd {shlex.quote(str(config.rootpath))} && {shlex.join(args)}"


def replay_command(cases_file: str, target: dict[str, Any] | None) -> str:
    """``obshell-contract-replay`` for a cases file; a mock target needs a new mock."""
    target = target or {}
    if target.get("mock_profile") or not target.get("url"):
        mock = shlex.join(["obshell-mock", *_mock_args(target)])
        return (
            f"{mock}  # prints its URL; the embedded mock of the run is gone\n"
            f"obshell-contract-replay {shlex.quote(cases_file)} --url URL"
        )
    url = shlex.quote(str(target["url"]))
    return f"obshell-contract-replay {shlex.quote(cases_file)} --url {url}"


def _target_args(target: dict[str, Any] | None) -> list[str]:
    if not target:
        return []
    if target.get("mock_profile"):
        return _mock_args(target, prefix="--mock-")
    return ["--obshell-url", str(target["url"])] if target.get("url") else []


def _mock_args(target: dict[str, Any], prefix: str = "--") -> list[str]:
    args = [f"{prefix}profile", str(target.get("mock_profile") or "reference")]
    for fault in target.get("mock_faults") or []:
        args += [f"{prefix}fault", str(fault)]
    return args
