"""The HTTP client for an obshell agent: typed calls, replies, DAG following.

The client never raises on an HTTP error status: contract tests inspect failures
through :class:`Reply`. It raises :class:`TransportError` only when the agent
cannot be reached (connection refused, reset, timed out).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from obshell_contract.auth import ObshellAuth, exchange_of, signature_of
from obshell_contract.crypto import load_public_key
from obshell_contract.errors import ContractError, TransportError, UsageError
from obshell_contract.recording import (
    Exchange,
    Recorder,
    Signature,
    exchange_from_failure,
    exchange_from_response,
    response_text,
)

__all__ = [
    "DAG_FINISHED_STATES",
    "DagPoll",
    "DagTrace",
    "ObshellClient",
    "Reply",
]

DAG_FINISHED_STATES = frozenset({"SUCCEED", "FAILED"})

# While an agent restarts it refuses connections, resets them or stalls.
_UNREACHABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

# Agents before 4.3.1 said "task not found" with this legacy code.
_LEGACY_TASK_NOT_FOUND = 2300


@dataclass
class Reply:
    """An agent's answer: HTTP facts, the parsed envelope and the evidence."""

    http_status: int
    headers: Mapping[str, str]
    text: str
    body: Any
    exchange: Exchange

    @classmethod
    def from_response(cls, response: requests.Response, exchange: Exchange) -> Reply:
        text = response_text(response)
        return cls(response.status_code, response.headers, text, _parse(text), exchange)

    def __repr__(self) -> str:
        # The raw text may echo a secret; the redacted record may not.
        return (
            f"Reply(http_status={self.http_status!r}, err_code={self.err_code!r}, "
            f"text={self.exchange.response_text[:300]!r})"
        )

    @property
    def envelope(self) -> dict[str, Any]:
        """The body if it is a JSON object, else an empty dict."""
        return self.body if isinstance(self.body, dict) else {}

    @property
    def successful(self) -> bool:
        return self.envelope.get("successful") is True

    @property
    def has_data_key(self) -> bool:
        return "data" in self.envelope

    @property
    def data(self) -> Any:
        return self.envelope.get("data")

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.envelope.get("error")
        return error if isinstance(error, dict) else None

    @property
    def err_code(self) -> str | None:
        value = (self.error or {}).get("errCode")
        return value if isinstance(value, str) else None

    @property
    def code(self) -> int | None:
        """The legacy numeric ``error.code``, absent on most errors since 4.3.1."""
        value = (self.error or {}).get("code")
        return value if type(value) is int else None

    @property
    def message(self) -> str | None:
        value = (self.error or {}).get("message")
        return value if isinstance(value, str) else None

    @property
    def trace_id(self) -> str | None:
        value = self.envelope.get("traceId")
        return value if isinstance(value, str) else None


@dataclass
class DagPoll:
    """One poll of a DAG: seconds since following began, and the DTO if any."""

    offset_s: float
    dag: dict[str, Any] | None
    note: str = ""


@dataclass
class DagTrace:
    """Everything seen while following a DAG to its end."""

    generic_id: str
    polls: list[DagPoll] = field(default_factory=list)
    final: dict[str, Any] | None = None
    timed_out: bool = False
    # An error answer that was neither "agent restarting" nor "task not found".
    stopped_by: Reply | None = None

    @property
    def states(self) -> list[str]:
        return [str(poll.dag.get("state")) for poll in self.polls if poll.dag]

    def stage_timeline(self) -> list[tuple[int, str, float, float]]:
        """``(stage, node name, first seen s, last seen s)`` per run of a stage.

        A stage seen again after another one (a retry) starts a new row.
        """
        rows: list[tuple[int, str, float, float]] = []
        for poll in self.polls:
            if poll.dag is None:
                continue
            stage, name = _current_node(poll.dag)
            if rows and rows[-1][:2] == (stage, name):
                rows[-1] = (stage, name, rows[-1][2], poll.offset_s)
            else:
                rows.append((stage, name, poll.offset_s, poll.offset_s))
        return rows


class ObshellClient:
    """A client for one agent, sharing one ``requests.Session`` and one auth.

    ``password`` is root@sys's (sent in ``X-OCS-Header``); with
    ``agent_password`` the client uses ``X-OCS-Agent-Header`` instead.
    ``on_reply`` sees every reply, forged sends included (not transport errors).
    """

    def __init__(
        self,
        base_url: str,
        password: str = "",
        *,
        agent_password: str | None = None,
        timeout: float = 10.0,
        lifetime: float = 10.0,
        recorder: Recorder | None = None,
        on_reply: Callable[[Reply], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Sees every reply, forged sends included: the suite checks envelopes here.
        self.on_reply = on_reply
        self.timeout = timeout
        self.recorder = recorder if recorder is not None else Recorder()
        self.auth = ObshellAuth(
            password,
            agent_password=agent_password,
            lifetime=lifetime,
            recorder=self.recorder,
            timeout=timeout,
        )
        self.session = requests.Session()
        # Proxies from the environment would put an absolute URL on the request
        # line, which the agent compares with the signed Uri.
        self.session.trust_env = False

    def __repr__(self) -> str:
        return f"ObshellClient({self.base_url!r}, header={self.auth.header_name!r})"

    def __enter__(self) -> ObshellClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # -- sending ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: bytes | None = None,
        authenticated: bool = True,
        headers: Mapping[str, str] | None = None,
        label: str = "",
        timeout: float | None = None,
    ) -> Reply:
        """Send one request; ``path`` is the request-target (path and query).

        ``json_body`` is encoded compactly, as Go would; ``raw_body`` is sent as
        given (before encryption, when authenticated). Use one of them.
        """
        plaintext = _encode_body(json_body, raw_body)
        prepared = self.prepare(method, path, plaintext, headers)
        if not authenticated:
            return self._send(prepared, Signature(plaintext=plaintext), label, timeout)

        self.auth.apply(prepared, label=label)
        return self._send(prepared, signature_of(prepared), label, timeout)

    def send_raw(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        signature: Signature | None = None,
        label: str = "",
        forgery: str | None = None,
    ) -> Reply:
        """Send headers and body exactly as given, without encrypting anything.

        ``signature`` describes what they mean (for the record only).
        """
        prepared = self.prepare(method, path, body, headers)
        return self._send(prepared, signature, label, None, forgery)

    def prepare(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.PreparedRequest:
        """A prepared request to ``base_url + path``, not yet encrypted."""
        if not path.startswith("/"):
            raise UsageError(f"path must start with '/', got {path!r}")
        merged = dict(headers or {})
        if body and not any(name.lower() == "content-type" for name in merged):
            merged["Content-Type"] = "application/json"

        request = requests.Request(
            method.upper(), self.base_url + path, data=body, headers=merged
        )
        return self.session.prepare_request(request)

    def _send(
        self,
        prepared: requests.PreparedRequest,
        signature: Signature | None,
        label: str,
        timeout: float | None,
        forgery: str | None = None,
    ) -> Reply:
        started = time.perf_counter()
        try:
            response = self.session.send(
                prepared, timeout=timeout or self.timeout, allow_redirects=False
            )
        except _UNREACHABLE as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            raise self._unreachable(
                prepared, signature, exc, elapsed_ms, label, forgery
            ) from exc

        exchange = exchange_of(response)
        if exchange is None:
            exchange = self.recorder.add(
                exchange_from_response(
                    response,
                    signature,
                    redactor=self.recorder.redactor,
                    label=label,
                    forgery=forgery,
                )
            )
        reply = Reply.from_response(response, exchange)
        if self.on_reply is not None:
            self.on_reply(reply)
        return reply

    def _unreachable(
        self,
        prepared: requests.PreparedRequest,
        signature: Signature | None,
        exc: Exception,
        elapsed_ms: float,
        label: str,
        forgery: str | None,
    ) -> TransportError:
        error = self.recorder.redactor.text(f"{type(exc).__name__}: {exc}")
        self.recorder.add(
            exchange_from_failure(
                prepared,
                signature,
                error,
                redactor=self.recorder.redactor,
                elapsed_ms=elapsed_ms,
                label=label,
                forgery=forgery,
            )
        )
        return TransportError(
            f"{prepared.method} {prepared.url}: the agent could not be reached: {error}"
        )

    # -- unauthenticated calls -------------------------------------------------------

    def secret(self) -> Reply:
        """``GET /api/v1/secret``: the agent's public key."""
        return self.request("GET", "/api/v1/secret", authenticated=False)

    def public_key(self) -> RSAPublicKey:
        """The agent's RSA public key, from :meth:`secret`."""
        reply = self.secret()
        try:
            return load_public_key(reply.data["public_key"])
        except (TypeError, KeyError, ContractError):
            raise TransportError(
                f"GET {self.base_url}/api/v1/secret: expected data.public_key as "
                f"base64 DER, got HTTP {reply.http_status} {reply.text[:300]!r}"
            ) from None

    def info(self) -> Reply:
        return self.request("GET", "/api/v1/info", authenticated=False)

    def status(self) -> Reply:
        return self.request("GET", "/api/v1/status", authenticated=False)

    def time(self) -> Reply:
        return self.request("GET", "/api/v1/time", authenticated=False)

    # -- the upgrade ------------------------------------------------------------------

    def upgrade_agent(
        self,
        version: str,
        release: str,
        upgrade_dir: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Reply:
        """``POST /api/v1/agent/upgrade``; ``extra`` adds (or overrides) body keys."""
        body = _upgrade_body(version, release, upgrade_dir, extra)
        return self.request(
            "POST", "/api/v1/agent/upgrade", json_body=body, label=label
        )

    def upgrade_check(
        self,
        version: str,
        release: str,
        upgrade_dir: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Reply:
        """``POST /api/v1/agent/upgrade/check``, same body as :meth:`upgrade_agent`."""
        body = _upgrade_body(version, release, upgrade_dir, extra)
        return self.request(
            "POST", "/api/v1/agent/upgrade/check", json_body=body, label=label
        )

    # -- DAGs, nodes, sub-tasks --------------------------------------------------------

    def get_dag(
        self,
        generic_id: str,
        show_details: bool = True,
        *,
        label: str = "",
        timeout: float | None = None,
    ) -> Reply:
        """``GET /api/v1/task/dag/{id}?show_details=…``; the Uri signs the query."""
        details = "true" if show_details else "false"
        path = f"/api/v1/task/dag/{_segment(generic_id)}?show_details={details}"
        return self.request("GET", path, label=label, timeout=timeout)

    def operate_dag(self, generic_id: str, operator: str, *, label: str = "") -> Reply:
        """``POST /api/v1/task/dag/{id}`` with ``{"operator": …}``."""
        path = f"/api/v1/task/dag/{_segment(generic_id)}"
        return self.request("POST", path, json_body={"operator": operator}, label=label)

    def get_node(self, generic_id: str, *, label: str = "") -> Reply:
        path = f"/api/v1/task/node/{_segment(generic_id)}"
        return self.request("GET", path, label=label)

    def get_sub_task(self, generic_id: str, *, label: str = "") -> Reply:
        path = f"/api/v1/task/sub_task/{_segment(generic_id)}"
        return self.request("GET", path, label=label)

    def unfinished_dags(self, *, label: str = "") -> Reply:
        return self.request("GET", "/api/v1/task/dag/unfinish", label=label)

    def last_maintenance_dag(self, *, label: str = "") -> Reply:
        return self.request("GET", "/api/v1/task/dag/maintain/ob", label=label)

    def follow_dag(
        self,
        generic_id: str,
        *,
        deadline: float,
        poll_interval: float = 0.2,
        on_poll: Callable[[Reply], None] | None = None,
    ) -> DagTrace:
        """Poll a DAG until it is SUCCEED or FAILED, or ``deadline`` seconds pass.

        ``deadline`` counts from the call. Refused connections and
        ``Task.NotFound`` are tolerated (the agent restarts during an upgrade);
        any other error answer stops the following and is kept as
        :attr:`DagTrace.stopped_by`. ``on_poll`` sees every reply.
        """
        trace = DagTrace(str(generic_id))
        start = time.monotonic()
        end = start + deadline

        while True:
            remaining = max(end - time.monotonic(), 0.001)
            reply = self._poll_dag(trace, generic_id, start, remaining)
            if reply is not None and on_poll is not None:
                on_poll(reply)
            if trace.final is not None or trace.stopped_by is not None:
                return trace
            if time.monotonic() >= end:
                trace.timed_out = True
                return trace
            time.sleep(min(poll_interval, max(end - time.monotonic(), 0)))

    def _poll_dag(
        self, trace: DagTrace, generic_id: str, start: float, remaining: float
    ) -> Reply | None:
        offset = time.monotonic() - start
        try:
            reply = self.get_dag(
                generic_id,
                label="follow DAG",
                timeout=min(self.timeout, remaining),
            )
        except TransportError as exc:
            trace.polls.append(DagPoll(round(offset, 3), None, f"unreachable: {exc}"))
            return None

        dag = reply.data if _is_dag_reply(reply) else None
        note = (
            str(dag["state"]) if dag else f"HTTP {reply.http_status} {reply.err_code}"
        )
        trace.polls.append(DagPoll(round(offset, 3), dag, note))

        if dag is not None and dag.get("state") in DAG_FINISHED_STATES:
            trace.final = dag
        elif dag is None and not _is_task_not_found(reply):
            trace.stopped_by = reply
        return reply


def _encode_body(json_body: Any, raw_body: bytes | None) -> bytes | None:
    if json_body is not None and raw_body is not None:
        raise UsageError("give json_body or raw_body, not both")
    if raw_body is not None:
        return raw_body
    if json_body is None:
        return None
    # Compact and UTF-8, as Go's encoding/json writes it.
    return json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()


def _upgrade_body(
    version: str,
    release: str,
    upgrade_dir: str | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"version": version, "release": release}
    if upgrade_dir is not None:
        body["upgradeDir"] = upgrade_dir
    body.update(extra or {})
    return body


def _segment(generic_id: str) -> str:
    # Ids come from tests too ("9abc", "../x"): keep each one a single segment.
    return quote(str(generic_id), safe="")


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _is_dag_reply(reply: Reply) -> bool:
    data = reply.data
    return reply.successful and isinstance(data, dict) and "state" in data


def _is_task_not_found(reply: Reply) -> bool:
    return reply.err_code == "Task.NotFound" or reply.code == _LEGACY_TASK_NOT_FOUND


def _current_node(dag: Mapping[str, Any]) -> tuple[int, str]:
    stage = dag.get("stage")
    stage = stage if type(stage) is int else 0
    nodes = dag.get("nodes") or []

    # Nodes come ordered by stage, so the current one is at index stage - 1.
    if 1 <= stage <= len(nodes) and isinstance(nodes[stage - 1], dict):
        return stage, str(nodes[stage - 1].get("name", ""))
    return stage, ""
