"""``POST /api/v1/agent/upgrade`` (and ``/check``): body binding, then business checks.

Binding follows gin's ``BindJSON`` with validator v10 (protocol reference §4.1);
the checks follow ``preCheckForAgentUpgrade`` in the agent's order (§4.2). The
profile decides where the mock is stricter than the agent.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from obshell_contract.mock.errors import AgentError, agent_error
from obshell_contract.mock.gostd import (
    GoJSONError,
    StructField,
    StructType,
    decode_first,
    decode_struct,
    go_atoi,
)
from obshell_contract.mock.profiles import Profile
from obshell_contract.mock.security import CLUSTER_AGENT

__all__ = [
    "DAG_OPERATOR",
    "UPGRADE_CHECK_PARAM",
    "AgentFacts",
    "UpgradeEngine",
    "UpgradeHandler",
    "UpgradeRequest",
    "as_unexpected",
    "bind_json",
    "check_path_valid",
    "compare_version",
    "split_release",
]

UPGRADE_CHECK_PARAM = StructType(
    "UpgradeCheckParam",
    "param.UpgradeCheckParam",
    (
        StructField("version", "string"),
        StructField("release", "string"),
        StructField("upgradeDir", "string"),
    ),
)
_UPGRADE_REQUIRED = (("version", "Version"), ("release", "Release"))

DAG_OPERATOR = StructType(
    "DagOperator", "task.DagOperator", (StructField("operator", "string"),)
)

_VERSION = re.compile(r"[0-9]+(\.[0-9]+){3}")
# ``utils.CheckPathValid``: Go's ``$`` is the end of text, hence fullmatch.
_PATH_CHARS = re.compile("[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*")
_PATH_PATTERN_TEXT = "^[a-zA-Z0-9\u4e00-\u9fa5\\-_:@/\\.]*$"


# -- binding ---------------------------------------------------------------------


def bind_json(
    body: str,
    struct: StructType,
    required: Sequence[tuple[str, str]],
    *,
    blank_is_missing: bool = False,
) -> dict[str, Any]:
    """gin's ``c.BindJSON``: decode ``body`` into ``struct``, then ``required``.

    ``required`` pairs each JSON name with its Go field name. Raises the 400
    ``Common.BindJsonFailed`` (no ``data`` key) with gin's message.
    """
    try:
        value = decode_first(body)
    except GoJSONError as exc:
        raise agent_error("Common.BindJsonFailed", exc) from None
    fields, error = decode_struct(value, struct)
    if error is not None:
        raise agent_error("Common.BindJsonFailed", error)

    missing = [
        go_name
        for json_name, go_name in required
        if not _has_value(fields.get(json_name, ""), blank_is_missing)
    ]
    if missing:
        raise agent_error(
            "Common.BindJsonFailed",
            "\n".join(_required_failure(struct.name, name) for name in missing),
        )
    return fields


def _has_value(value: str, blank_is_missing: bool) -> bool:
    return bool(value.strip() if blank_is_missing else value)


def _required_failure(struct: str, field: str) -> str:
    return (
        f"Key: '{struct}.{field}' Error:Field validation for '{field}' "
        "failed on the 'required' tag"
    )


def as_unexpected(error: AgentError) -> AgentError:
    """The ``500-on-bad-input`` fault: a client error dressed as a server one."""
    return AgentError(
        "Common.Unexpected",
        500,
        f"Unexpected error: {error.message}",
        data_null=error.data_null,
    )


# -- the agent's helpers ---------------------------------------------------------


def split_release(release: str) -> tuple[str, str] | None:
    """``pkg.SplitRelease``: (build number, distribution), or None without a dot."""
    parts = release.split(".")
    if len(parts) < 2:
        return None
    return parts[0], parts[-1]


def compare_version(left: str, right: str) -> int:
    """``pkg.CompareVersion`` on two ``VERSION-BUILD`` strings: -1, 0 or 1.

    Dotted parts compare as integers (non-numeric ones count as 0); on a tie
    more parts win; then the build numbers compare as integers.
    """
    left_parts, left_build = _version_and_build(left)
    right_parts, right_build = _version_and_build(right)
    for a, b in zip(left_parts, right_parts, strict=False):
        if go_atoi(a) != go_atoi(b):
            return 1 if go_atoi(a) > go_atoi(b) else -1
    if len(left_parts) != len(right_parts):
        return 1 if len(left_parts) > len(right_parts) else -1
    if left_build != right_build:
        return 1 if left_build > right_build else -1
    return 0


def _version_and_build(text: str) -> tuple[list[str], int]:
    info = text.split("-")
    build = go_atoi(info[1]) if len(info) > 1 else 0
    return info[0].split("."), build


def check_path_valid(path: str, *, strict: bool = False) -> str | None:
    """``utils.CheckPathValid``: None, or why ``path`` is refused.

    ``strict`` refuses every ``..`` segment, not only those that escape.
    """
    if not path.startswith("/"):
        return "should start with '/'"
    if not _PATH_CHARS.fullmatch(path):
        return f"should match pattern {_PATH_PATTERN_TEXT}"

    parent = f"/{uuid.uuid4()}"
    escapes = not posixpath.normpath(f"{parent}/{path}").startswith(parent)
    if escapes or (strict and ".." in path.split("/")):
        return (
            "should not lead to directory traversal issues when joined with "
            "a generated parent path"
        )
    return None


# -- the handler -----------------------------------------------------------------


class AgentFacts(Protocol):
    """What the checks read from the agent."""

    @property
    def identity(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def home_path(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def packages(self) -> Collection[str]: ...


class UpgradeEngine(Protocol):
    """The two DAG-creating calls of the engine the handler needs."""

    def create_upgrade_dag(
        self, version: str, release: str, *, upgrade_dir: str, package_present: bool
    ) -> dict[str, Any]: ...

    def create_upgrade_check_dag(
        self, version: str, release: str, *, upgrade_dir: str
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UpgradeRequest:
    """A bound and checked upgrade request."""

    version: str
    release: str
    upgrade_dir: str
    package_present: bool


@dataclass(frozen=True)
class UpgradeHandler:
    """``agentUpgradeHandler`` / ``agentUpgradeCheckHandler`` of one mock agent."""

    profile: Profile
    facts: AgentFacts
    engine: UpgradeEngine
    faults: Collection[str] = ()

    def upgrade(self, body: str) -> dict[str, Any]:
        """Bind, check, create the upgrade DAG; its immediate ``DagDetailDTO``."""
        request = self.check(body)
        return self.engine.create_upgrade_dag(
            request.version,
            request.release,
            upgrade_dir=request.upgrade_dir,
            package_present=request.package_present,
        )

    def upgrade_check(self, body: str) -> dict[str, Any]:
        """The same checks, then the non-maintenance upgrade-check DAG."""
        request = self.check(body)
        return self.engine.create_upgrade_check_dag(
            request.version, request.release, upgrade_dir=request.upgrade_dir
        )

    def check(self, body: str) -> UpgradeRequest:
        """Bind ``body`` and run the business checks, in the agent's order."""
        try:
            fields = bind_json(
                body,
                UPGRADE_CHECK_PARAM,
                _UPGRADE_REQUIRED,
                blank_is_missing=self.profile.blank_counts_as_missing,
            )
            return self._check_fields(fields)
        except AgentError as exc:
            if "500-on-bad-input" in self.faults and exc.status == 400:
                raise as_unexpected(exc) from None
            raise

    def _check_fields(self, fields: dict[str, Any]) -> UpgradeRequest:
        version, release = fields["version"], fields["release"]

        self._check_identity()
        upgrade_dir = self._check_upgrade_dir(fields.get("upgradeDir", ""))
        build = self._check_release(release)
        if self._waved_through(version):
            present = f"{version}-{release}" in self.facts.packages
            return UpgradeRequest(version, release, upgrade_dir, present)

        self._check_version(version, build)
        present = self._check_package(version, release)
        return UpgradeRequest(version, release, upgrade_dir, present)

    def _waved_through(self, version: str) -> bool:
        # accept-malformed-version: a malformed version skips every check that
        # would stop it, so that a DAG is created (it fails later, at stage 2).
        malformed = not _VERSION.fullmatch(version)
        return malformed and "accept-malformed-version" in self.faults

    def _check_identity(self) -> None:
        if self.facts.identity != CLUSTER_AGENT:
            raise agent_error(
                "Agent.Identify.NotSupportOperation",
                self.facts.address,
                self.facts.identity,
                data_null=True,
            )

    def _check_upgrade_dir(self, path: str) -> str:
        # The agent decides "blank" after trimming but validates the raw text.
        trimmed = path.strip()
        if not path or (not trimmed and self.profile.blank_upgrade_dir_is_default):
            return f"{self.facts.home_path}/upgrade"
        reason = check_path_valid(path, strict=self.profile.reject_dot_dot_segments)
        if reason is not None:
            raise agent_error("Common.InvalidPath", path, reason, data_null=True)
        return trimmed

    def _check_release(self, release: str) -> str:
        parts = split_release(release)
        if parts is None:
            raise agent_error("Package.ReleaseFormat.Invalid", release, data_null=True)
        return parts[0]

    def _check_version(self, version: str, build: str) -> None:
        malformed = not _VERSION.fullmatch(version)
        if malformed and self.profile.check_version_format:
            raise agent_error("Agent.Version.Invalid", version, data_null=True)

        target = f"{version}-{build}"
        if compare_version(target, self.facts.version) <= 0:
            raise agent_error(
                "Agent.Upgrade.ToLowerVersion",
                target,
                self.facts.version,
                data_null=True,
            )

    def _check_package(self, version: str, release: str) -> bool:
        present = f"{version}-{release}" in self.facts.packages
        if not present and self.profile.package_precheck:
            rpm = f"obshell-{version}-{release}.{self.facts.architecture}.rpm"
            raise agent_error("Agent.Package.NotFound", rpm, data_null=True)
        return present
