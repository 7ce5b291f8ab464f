"""The mock agent's HTTP layer: a threaded server, the middleware chain, the envelope.

:class:`AgentApp` turns one request into one reply the way the agent's gin
stack does (protocol reference §2.1): ``HeaderDecrypt`` -> ``BodyDecrypt`` ->
``PaddingBody`` -> ``PreHandlers`` (trace id, body swallowing) ->
``SetContentType`` -> route -> ``Verify`` -> handler, and ``PostHandlers``
writing the envelope (§3). :class:`MockHTTPServer` carries it over real sockets.
"""

from __future__ import annotations

import contextlib
import http.server
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from obshell_contract.log import logger
from obshell_contract.mock.dag import parse_generic_id
from obshell_contract.mock.errors import AgentError, agent_error
from obshell_contract.mock.gostd import is_map_or_null, marshal
from obshell_contract.mock.security import (
    AgentPanic,
    HttpHeader,
    decrypt_body,
    decrypt_header,
)
from obshell_contract.mock.upgrade import (
    DAG_OPERATOR,
    UpgradeHandler,
    as_unexpected,
    bind_json,
)

if TYPE_CHECKING:
    from obshell_contract.mock import MockAgent

__all__ = [
    "JSON",
    "JSON_UTF8",
    "AgentApp",
    "MockHTTPServer",
    "Reply",
    "Request",
    "go_time_ns",
]

JSON = "application/json"
JSON_UTF8 = "application/json; charset=utf-8"
TRACE_HEADER = "X-OBSHELL-Trace-ID"
STATUS_URI = "/api/v1/status"
MARKUP = "<script>alert(1)</script><b>x</b>"
RECOVERY_MESSAGE = "Unexpected error: Internal Server Error"

# A handler's answer without a data key, and an envelope field left out.
_NO_DATA: Any = object()
_ABSENT: Any = object()
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_time_ns(nanoseconds: int, zone: tzinfo | None = None) -> str:
    """Go's ``time.Time`` JSON: RFC 3339, nanoseconds trimmed, ``Z`` for +00:00.

    ``zone`` None means the host's local zone (with its daylight saving).
    """
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, zone).astimezone(zone)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + _offset(moment)


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    seconds = int(offset.total_seconds()) if offset else 0
    if seconds == 0:
        return "Z"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{'+' if seconds > 0 else '-'}{hours:02d}:{rest // 60:02d}"


# -- request and reply -----------------------------------------------------------


@dataclass
class Request:
    """One HTTP request as the agent's middleware sees it."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    # Go's ContentLength == 0: no body announced at all (not chunked).
    empty_length: bool = True
    started: float = field(default_factory=time.monotonic)
    received_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def path(self) -> str:
        """The decoded path gin routes on (``URL.Path``)."""
        return urllib.parse.unquote(urllib.parse.urlsplit(self.target).path)

    @property
    def query(self) -> dict[str, list[str]]:
        raw = urllib.parse.urlsplit(self.target).query
        return urllib.parse.parse_qs(raw, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), as Go's ``Header.Get``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass
class Reply:
    """What goes back on the wire."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    err_code: str | None = None


@dataclass
class _Context:
    """State the middleware chain builds up for one request."""

    request: Request
    header: HttpHeader | None = None
    body: str = ""
    trace_id: str = ""
    content_type: str = JSON_UTF8
    params: dict[str, str] = field(default_factory=dict)


# -- routing ---------------------------------------------------------------------

Handler = Callable[["AgentApp", _Context], Any]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: str
    handler: Handler
    # None: no Verify; "api": Verify(); "task": Verify(ROUTE_TASK).
    guard: str | None = None

    def match(self, path: str) -> dict[str, str] | None:
        wanted, given = self.pattern.split("/"), path.split("/")
        if len(wanted) != len(given):
            return None
        params: dict[str, str] = {}
        for want, got in zip(wanted, given, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                params[want.strip("{}")] = got
            elif want != got:
                return None
        return params


class AgentApp:
    """Request in, reply out: the agent's middleware chain and handlers."""

    def __init__(self, agent: MockAgent) -> None:
        self.agent = agent
        self.profile = agent.profile
        self.faults = agent.faults

    # -- the chain -----------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Answer ``request``; never raises (a handler error becomes a 500)."""
        context = _Context(request)
        try:
            return self._run(context)
        except Exception as exc:
            return self._handler_error(context, exc)

    def _run(self, context: _Context) -> Reply:
        request = context.request
        route, params = _find_route(request.method, request.path)
        if route is None and self.profile.redirect_trailing_slash:
            redirect = _trailing_slash_redirect(request)
            if redirect is not None:
                return redirect

        early = self._decrypt(context)
        if early is not None:
            return early
        self._pre_handlers(context)

        if route is None:
            return self._error(context, agent_error("Common.NotFound", "404 not found"))
        context.params = params
        try:
            self._verify(context, route)
        except AgentError as exc:
            return self._error(context, self._auth_failure(exc))
        return self._dispatch(context, route)

    def _decrypt(self, context: _Context) -> Reply | None:
        # HeaderDecrypt and BodyDecrypt run before PreHandlers: no trace id
        # yet, and gin's default content type.
        request = context.request
        try:
            context.header = decrypt_header(request.header, self.agent.private_key)
        except AgentError as exc:
            return self._error(context, self._auth_failure(exc))

        try:
            body = decrypt_body(
                context.header,
                request.body,
                strict=self.profile.strict_body_decryption,
                accept_plain="accept-plain-body" in self.faults,
            )
        except AgentError as exc:
            return self._error(context, exc)
        except AgentPanic:
            return self._recovery(context)

        # PaddingBody: an announced-empty body reads as "{}".
        if request.empty_length:
            body = b"{}"
        context.body = body.decode("utf-8", "replace")
        return None

    def _pre_handlers(self, context: _Context) -> None:
        request = context.request
        if request.target != STATUS_URI:
            context.trace_id = request.header(TRACE_HEADER) or secrets.token_hex(8)
            # The logging middleware keeps the body only if it parses as a map.
            if not is_map_or_null(context.body):
                context.body = ""
        if request.target.startswith(("/api/v1", "/rpc/v1")):
            context.content_type = JSON

    def _verify(self, context: _Context, route: _Route) -> None:
        if route.guard is None:
            return
        task_id = context.params.get("id") if route.guard == "task" else None
        self.agent.verifier.verify(
            context.header,
            request_uri=context.request.target,
            received_at=context.request.received_at,
            task_id=task_id,
        )

    def _auth_failure(self, error: AgentError) -> AgentError:
        if "wrong-errcode" not in self.faults:
            return error
        return AgentError("Common.Unexpected", error.status, error.message, error.code)

    def _dispatch(self, context: _Context, route: _Route) -> Reply:
        try:
            data = route.handler(self, context)
        except AgentError as exc:
            return self._error(context, exc)
        except AgentPanic:
            return self._recovery(context)
        if data is _NO_DATA:
            return self._success(context)
        return self._success(context, data)

    # -- handlers ------------------------------------------------------------

    def secret(self, context: _Context) -> Any:
        agent = self.agent
        return {"ip": agent.ip, "port": agent.port, "public_key": agent.public_key}

    def info(self, context: _Context) -> Any:
        return self.agent.info()

    def status(self, context: _Context) -> Any:
        return self.agent.status()

    def time(self, context: _Context) -> Any:
        return go_time_ns(time.time_ns(), self.agent.config.timezone)

    def upgrade(self, context: _Context) -> Any:
        return self._upgrade_handler().upgrade(context.body)

    def upgrade_check(self, context: _Context) -> Any:
        return self._upgrade_handler().upgrade_check(context.body)

    def _upgrade_handler(self) -> UpgradeHandler:
        return UpgradeHandler(self.profile, self.agent, self.agent.engine, self.faults)

    def get_dag(self, context: _Context) -> Any:
        engine, generic_id = self.agent.engine, context.params["id"]
        show_details = self._show_details(context, lambda: engine.dag_dto(generic_id))
        return engine.dag_dto(generic_id, show_details=show_details)

    def operate_dag(self, context: _Context) -> Any:
        # DagHandler: the id is parsed before the body is bound.
        generic_id = context.params["id"]
        _check_generic_id(generic_id)
        try:
            fields = bind_json(context.body, DAG_OPERATOR, [("operator", "Operator")])
        except AgentError as exc:
            if "500-on-bad-input" in self.faults:
                raise as_unexpected(exc) from None
            raise
        self.agent.engine.operate(generic_id, fields["operator"])
        return _NO_DATA

    def get_node(self, context: _Context) -> Any:
        engine, generic_id = self.agent.engine, context.params["id"]
        show_details = self._show_details(context, lambda: engine.node_dto(generic_id))
        if not show_details and self.profile.query_panics:
            # GetNodeDetail leaves the DTO nil without details, then uses it.
            raise AgentPanic("runtime error: invalid memory address")
        return engine.node_dto(generic_id, show_details=show_details)

    def get_sub_task(self, context: _Context) -> Any:
        return self.agent.engine.sub_task_dto(context.params["id"])

    def unfinished_dags(self, context: _Context) -> Any:
        show_details = self._show_details(context)
        return _contents(self.agent.engine.unfinished_dtos(show_details=show_details))

    def last_maintenance_dag(self, context: _Context) -> Any:
        engine = self.agent.engine
        show_details = self._show_details(context, engine.last_maintenance_dto)
        return engine.last_maintenance_dto(show_details=show_details)

    def _show_details(
        self, context: _Context, find: Callable[[], Any] | None = None
    ) -> bool:
        """The ``show_details`` query flag (default true), as ``ShouldBindQuery``.

        A value that is not a Go bool leaves the agent a nil pointer that it
        dereferences once the record is found (``find``); the reference
        profile refuses it with a 400 instead.
        """
        values = context.request.query.get("show_details", [""])
        value = values[0] or "true"
        if value in _GO_TRUE or value in _GO_FALSE:
            return value in _GO_TRUE
        if not self.profile.query_panics:
            raise agent_error("Request.Query.Param.Illegal", "show_details")
        if find is not None:
            find()
        raise AgentPanic("runtime error: invalid memory address")

    # -- envelopes -----------------------------------------------------------

    def _success(self, context: _Context, data: Any = _ABSENT) -> Reply:
        envelope = self._envelope(context, 200, data=data)
        return self._reply(context, 200, envelope)

    def _error(self, context: _Context, error: AgentError) -> Reply:
        if "markup-in-errors" in self.faults:
            error = AgentError(
                error.err_code,
                error.status,
                f"{error.message} {MARKUP}",
                error.code,
                data_null=error.data_null,
            )
        status = 200 if "error-with-200" in self.faults else error.status
        data = None if error.data_null else _ABSENT
        envelope = self._envelope(context, status, data=data, error=error)
        return self._reply(context, status, envelope, error.err_code)

    def _envelope(
        self,
        context: _Context,
        status: int,
        *,
        data: Any = _ABSENT,
        error: AgentError | None = None,
    ) -> dict[str, Any]:
        elapsed = time.monotonic() - context.request.started
        envelope: dict[str, Any] = {
            "successful": error is None,
            "timestamp": go_time_ns(time.time_ns(), self.agent.config.timezone),
            "duration": int(elapsed * 1000),
            "status": status,
            "traceId": context.trace_id,
        }
        if data is not _ABSENT:
            envelope["data"] = data
        if error is not None:
            envelope["error"] = error.to_api_error()
        return envelope

    def _recovery(self, context: _Context) -> Reply:
        # The agent's recovery body, built once at start (§2.4); the reference
        # profile never panics on purpose, so only a real bug gets here.
        if not self.profile.recovery_response:
            error = agent_error("Common.Unexpected", "Internal Server Error")
            return self._error(context, error)
        status = 200 if "error-with-200" in self.faults else 500
        envelope = dict(self.agent.recovery_envelope, status=status)
        return self._reply(context, status, envelope, "Common.Unexpected")

    def _handler_error(self, context: _Context, exc: Exception) -> Reply:
        request = context.request
        self.agent.record_handler_error(exc)
        logger.error(
            "mock agent: %s %s raised %s",
            request.method,
            urllib.parse.urlsplit(request.target).path,
            type(exc).__name__,
            exc_info=exc,
        )
        try:
            return self._recovery(context)
        except Exception as second:
            # The error path itself failed: answer with the bare recovery bytes.
            self.agent.record_handler_error(second)
            envelope = dict(self.agent.recovery_envelope)
            return Reply(500, marshal(envelope), JSON, err_code="Common.Unexpected")

    def _reply(
        self,
        context: _Context,
        status: int,
        envelope: dict[str, Any],
        err_code: str | None = None,
    ) -> Reply:
        envelope = self._apply_envelope_faults(envelope)
        return Reply(status, marshal(envelope), context.content_type, err_code=err_code)

    def _apply_envelope_faults(self, envelope: dict[str, Any]) -> dict[str, Any]:
        faults = self.faults
        if "status-mismatch" in faults:
            envelope["status"] += 1
        if "drop-trace-id" in faults:
            envelope.pop("traceId", None)
        if "bad-timestamp" in faults:
            envelope["timestamp"] = time.strftime("%Y-%m-%d %H:%M:%S")
        return envelope


_ROUTES = (
    _Route("GET", "/api/v1/secret", AgentApp.secret),
    _Route("GET", "/api/v1/info", AgentApp.info),
    _Route("GET", "/api/v1/status", AgentApp.status),
    _Route("POST", "/api/v1/status", AgentApp.status),
    _Route("GET", "/api/v1/time", AgentApp.time),
    _Route("POST", "/api/v1/agent/upgrade", AgentApp.upgrade, "api"),
    _Route("POST", "/api/v1/agent/upgrade/check", AgentApp.upgrade_check, "api"),
    # gin prefers static segments to parameters, hence this order.
    _Route("GET", "/api/v1/task/dag/unfinish", AgentApp.unfinished_dags, "task"),
    _Route(
        "GET", "/api/v1/task/dag/maintain/ob", AgentApp.last_maintenance_dag, "task"
    ),
    _Route("GET", "/api/v1/task/dag/{id}", AgentApp.get_dag, "task"),
    _Route("POST", "/api/v1/task/dag/{id}", AgentApp.operate_dag, "task"),
    _Route("GET", "/api/v1/task/node/{id}", AgentApp.get_node, "task"),
    _Route("GET", "/api/v1/task/sub_task/{id}", AgentApp.get_sub_task, "task"),
)


def _find_route(method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
    for route in _ROUTES:
        if route.method != method:
            continue
        params = route.match(path)
        if params is not None:
            return route, params
    return None, {}


def _trailing_slash_redirect(request: Request) -> Reply | None:
    # gin's RedirectTrailingSlash: 301 for GET, 307 otherwise, no envelope.
    path = request.path
    other = path[:-1] if path.endswith("/") else path + "/"
    if _find_route(request.method, other)[0] is None:
        return None

    query = urllib.parse.urlsplit(request.target).query
    location = other + (f"?{query}" if query else "")
    status = 301 if request.method == "GET" else 307
    body = b""
    if request.method == "GET":
        body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
    headers = (("Location", location),)
    return Reply(status, body, "text/html; charset=utf-8", headers)


def _check_generic_id(generic_id: str) -> None:
    try:
        parse_generic_id(generic_id)
    except AgentError as exc:
        if exc.err_code == "Task.GenericID.Invalid":
            raise
        # Not found is decided after the body is bound.


def _contents(items: list[Any]) -> dict[str, Any]:
    # Go wraps slices as {"contents": ...}; an empty result is a nil slice.
    return {"contents": items or None}


# -- the socket server -----------------------------------------------------------


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every method goes to the app."""

    protocol_version = "HTTP/1.1"
    server: MockHTTPServer
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60
    # Headers and body go out in two writes; with Nagle on, the client's
    # delayed ACK holds the body back ~40 ms on every keep-alive request.
    disable_nagle_algorithm = True

    def __getattr__(self, name: str) -> Any:
        # http.server dispatches to do_<METHOD>; gin answers any method.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        started = time.monotonic()
        received_at = int(time.time())
        body, empty_length = self._read_body()
        if body is None:
            return

        request = Request(
            method=self.command,
            target=self.path,
            headers=tuple(self.headers.items()),
            body=body,
            empty_length=empty_length,
            started=started,
            received_at=received_at,
        )
        reply = self.server.app.handle(request)
        # Recorded before the client can see the answer, so that a test that
        # has its reply also finds it in the log.
        self.server.agent.record_request(request, reply, time.monotonic() - started)
        self._write(reply)

    def _read_body(self) -> tuple[bytes | None, bool]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            try:
                return self._read_chunked(), False
            except ValueError:
                self._bad_request()
                return None, False
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b"", True
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._bad_request()
            return None, True
        return self.rfile.read(length), length == 0

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
            size = int(size_line or b"0", 16)
            if size == 0:
                # Trailers end with an empty line.
                while self.rfile.readline(65537).strip():
                    pass
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline(65537)

    def _bad_request(self) -> None:
        # Go's net/http answers a malformed request before any handler.
        self.close_connection = True
        self._write(Reply(400, b"400 Bad Request", "text/plain; charset=utf-8"))

    def _write(self, reply: Reply) -> None:
        try:
            self.send_response_only(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # http.server would print to stderr; the agent's own line is enough.
        logger.debug("mock http: " + format, *args)


class MockHTTPServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that can close its keep-alive connections on stop."""

    daemon_threads = True
    # socketserver listens with a backlog of 5: clients opening a connection
    # per request (the SDK does) then wait for 1 s SYN retransmits. Go uses
    # the system's somaxconn.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: AgentApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.agent = app.agent
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print a traceback to stderr. A client that hangs
        # up is its own business; anything else is a bug worth failing on.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("mock http: connection from %s: %r", client_address, error)
            return
        if isinstance(error, Exception):
            self.agent.record_handler_error(error)
            logger.error("mock http: connection handling failed", exc_info=error)

    def stop_serving(self) -> None:
        """``shutdown()`` without waiting for ``serve_forever``'s poll interval.

        ``serve_forever`` checks its stop flag each time ``select()`` returns, so
        connecting to the listening socket wakes it at once.
        """
        stopper = threading.Thread(target=self.shutdown, daemon=True)
        stopper.start()
        while stopper.is_alive():
            self._wake()
            stopper.join(0.005)

    def _wake(self) -> None:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.05).close()

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones too)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
