"""The agent's error catalogue: errCode, HTTP status, legacy code and message.

Messages are the agent's English templates (its ``en.json``), filled with
``str.format``. Wrapped security errors keep the inner errCode and gain the
``Unauthorized: `` prefix, as the agent's ``WrapRetain`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CATALOGUE", "AgentError", "ErrorKind", "agent_error"]


@dataclass(frozen=True)
class ErrorKind:
    """One entry of the catalogue."""

    err_code: str
    status: int
    template: str
    code: int | None = None


def _kind(
    err_code: str, status: int, template: str, code: int | None = None
) -> ErrorKind:
    return ErrorKind(err_code, status, template, code)


# One entry per line reads as a table; the formatter would split them.
# fmt: off
CATALOGUE: dict[str, ErrorKind] = {
    kind.err_code: kind
    for kind in (
        _kind("Common.NotFound", 404, "Element not found: {0}"),
        _kind("Common.BindJsonFailed", 400, "Bind JSON failed: {0}"),
        _kind("Common.Unexpected", 500, "Unexpected error: {0}"),
        _kind("Common.InvalidPath", 400, "Path '{0}' is not valid: {1}"),
        _kind("Request.Header.NotFound", 400, "X-OCS-Agent-Header or X-OCS-Header not found in http request header"),
        _kind("Request.Body.Decrypt.AES.KeyAndIv.Invalid", 500, "Unauthorized: AES key and IV size error"),
        _kind("Request.Body.Decrypt.AES.ContentLength.Invalid", 500, "Unauthorized: Decrypted string length is not a multiple of the block size"),
        _kind("Security.Authentication.Header.DecryptFailed", 401, "Decrypt http header failed: {0}", 1),
        _kind("Security.Authentication.Header.UriMismatch", 401, "URI mismatch", 10008),
        _kind("Security.Authentication.IncorrectOceanbasePassword", 401, "Unauthorized: OceanBase password is incorrect", 10008),
        _kind("Security.Authentication.IncorrectAgentPassword", 401, "Unauthorized: Agent password is incorrect", 10008),
        _kind("Security.Authentication.WithOceanBasePassword", 401, "Unauthorized: Should use oceanbase_password to verify: {0}", 10008),
        _kind("Security.Authentication.Expired", 401, "Unauthorized: Authentication expired", 10008),
        _kind("Security.Authentication.Timestamp.Invalid", 401, "Unauthorized: Invalid timestamp: {0}, err: strconv.ParseInt: parsing \"{0}\": invalid syntax", 10008),
        _kind("Security.Authentication.SessionInvalid", 401, "Session is invalid", 10008),
        _kind("Agent.Identify.NotSupportOperation", 400, "'{0}' is '{1}', instead of 'CLUSTER AGENT', does not support this operation"),
        _kind("Agent.Upgrade.ToLowerVersion", 400, "Target version {0} is not greater than current version {1}. Please verify if the parameters have been filled out correctly"),
        _kind("Agent.Package.NotFound", 400, "Package {0} is not found"),
        _kind("Package.ReleaseFormat.Invalid", 400, "Release format {0} is illegal"),
        _kind("Agent.Version.Invalid", 400, "Version {0} is illegal: expected four dot-separated integers"),
        _kind("OB.Cluster.UnderMaintenanceWithDag", 500, "Create task '{0}' failed: OceanBase cluster is under maintenance by DAG: {1}, please try again later"),
        _kind("Task.NotFound", 404, "Task not found: {0}"),
        _kind("Task.GenericID.Invalid", 400, "Invalid ID: {0}"),
        _kind("Task.Dag.Operator.NotSupport", 400, "Operator {0} is not supported"),
        _kind("Task.Dag.Operator.RetryNotFailedDag", 400, "Failed to set DAG retry: DAG state is not failed"),
        _kind("Task.Dag.Operator.RollbackNotFailedDag", 400, "Failed to set DAG rollback: DAG state is not failed"),
        _kind("Task.Dag.Operator.PassNotFailedDag", 400, "Failed to pass DAG: DAG is not failed"),
        _kind("Task.Dag.Operator.CancelFinishedDag", 400, "Failed to cancel DAG: DAG is finished"),
        _kind("Task.Dag.Operator.RollbackNotAllowed", 400, "Failed to set DAG rollback: node {0} cannot rollback"),
        _kind("Task.Dag.Operator.PassNotAllowed", 400, "Failed to pass DAG: node {0} cannot pass"),
        _kind("Task.Dag.Operator.RetryNotAllowed", 400, "Failed to set DAG retry: node {0} cannot retry"),
        _kind("Task.Dag.Operator.CancelNotAllowed", 400, "Failed to cancel DAG: node {0} cannot cancel"),
        _kind("Security.Authentication.WithAgentPassword", 401, "Unauthorized: Should use agent_password to verify: {0}", 10008),
        _kind("Security.Authentication.AgentPasswordNotInitialized", 401, "Unauthorized: Agent password is not initialized", 10008),
        _kind("Request.Query.Param.Illegal", 400, "Query parameter '{0}' is illegal"),
        _kind("Request.Forward.MasterAgent.NotFound", 500, "Master agent not found when auto-forwarding request to master"),
        # Not the agent's: the reference profile's answer to a body that is not
        # base64 or whose PKCS#7 padding is wrong (the agent panics, §2.4 e3/e5).
        _kind("Request.Body.Decrypt.AES.Failed", 400, "Unauthorized: Decrypt http body failed: {0}"),
    )
}
# fmt: on


class AgentError(Exception):
    """An error the mock answers with, rendered as the envelope's ``error``."""

    def __init__(
        self,
        err_code: str,
        status: int,
        message: str,
        code: int | None = None,
        *,
        data_null: bool = False,
    ) -> None:
        super().__init__(message)
        self.err_code = err_code
        self.status = status
        self.message = message
        self.code = code
        # Business errors of the upgrade handler carry "data": null (a typed nil
        # in the agent); middleware and bind errors carry no data key at all.
        self.data_null = data_null

    def to_api_error(self) -> dict[str, Any]:
        """The ``ApiError`` object, keys in the agent's order, ``code`` omitted if 0."""
        error: dict[str, Any] = {}
        if self.code:
            error["code"] = self.code
        error["errCode"] = self.err_code
        error["message"] = self.message
        return error


def agent_error(err_code: str, *args: Any, data_null: bool = False) -> AgentError:
    """Build the catalogued error ``err_code`` with its message filled in."""
    kind = CATALOGUE[err_code]
    return AgentError(
        kind.err_code,
        kind.status,
        kind.template.format(*args),
        kind.code,
        data_null=data_null,
    )
